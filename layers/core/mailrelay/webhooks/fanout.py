"""Events -> one webhook job per subscribed endpoint of the event's client, on the webhook queue."""

from __future__ import annotations

from mailrelay.events.model import Event
from mailrelay.ports import OutgoingMessage, Queue, StorageError, WebhookStore
from mailrelay.webhooks.jobs import WebhookJob

_BATCH = 10  # SendMessageBatch takes at most 10 entries


class WebhookFanout:
    def __init__(self, store: WebhookStore, jobs: Queue) -> None:
        self.store = store
        self.jobs = jobs

    def enqueue(self, events: list[Event]) -> None:
        """Every job is written, or StorageError (the change record is then handled again: a job may be
        queued twice, with the same webhook-id, which receivers de-duplicate)."""
        endpoints = {c: self.store.list(c) for c in {e.data.client_id for e in events}}
        messages: list[OutgoingMessage] = [
            WebhookJob(client_id=e.data.client_id, endpoint_id=endpoint.id, event=e.envelope()).message()
            for e in events
            for endpoint in endpoints[e.data.client_id]
            if endpoint.wants(e.type)
        ]
        for start in range(0, len(messages), _BATCH):
            outcome = self.jobs.send_batch(messages[start : start + _BATCH])
            failed = [m for m, error in outcome.items() if error is not None]
            if failed:
                raise StorageError(f"{len(failed)} webhook jobs were not queued")
