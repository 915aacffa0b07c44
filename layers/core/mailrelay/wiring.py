"""Builds the services from settings: the one place that chooses concrete adapters (the API function,
the bridge and the local stack build their graph here; the delivery function in mailrelay.delivery.wiring)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from mailrelay.adapters.dynamo_clients import DynamoClientStore
from mailrelay.adapters.dynamo_events import DynamoEventStore
from mailrelay.adapters.dynamo_messages import DynamoStatusStore
from mailrelay.adapters.eventbridge import EventBridgeBus
from mailrelay.adapters.group_commit import GroupCommitQueue
from mailrelay.adapters.s3_payloads import S3PayloadStore
from mailrelay.adapters.s3_uploads import S3UploadStore
from mailrelay.adapters.sqs_queue import SqsQueue
from mailrelay.clients import ClientService
from mailrelay.events.feed import EventFeed
from mailrelay.events.recorder import EventRecorder
from mailrelay.events.settings import EventSettings, get_event_settings
from mailrelay.ports import Queue
from mailrelay.settings import Settings
from mailrelay.submission import SubmissionService, utcnow
from mailrelay.uploads import UploadService


@dataclass
class Services:
    settings: Settings
    sqs: Any | None = None
    s3: Any | None = None
    dynamodb: Any | None = None
    # Many concurrent submitters (the bridge's sessions) share SendMessageBatch calls: a write waits at most
    # this long (seconds) for the others ``expected_writers`` says are coming. 0: one SendMessage each.
    group_commit_wait: float = 0.0
    expected_writers: Callable[[], int] | None = None

    @cached_property
    def statuses(self) -> DynamoStatusStore:
        return DynamoStatusStore(self.settings.messages_table, self.settings.status_ttl_days, self.dynamodb)

    @cached_property
    def payloads(self) -> S3PayloadStore:
        return S3PayloadStore(self.settings.payload_bucket, self.s3)

    @cached_property
    def queue(self) -> Queue:
        queue = SqsQueue(self.settings.queue_url, self.sqs)
        if self.group_commit_wait <= 0:
            return queue
        return GroupCommitQueue(queue, self.group_commit_wait, expected=self.expected_writers or (lambda: 1))

    @cached_property
    def clients(self) -> ClientService:
        return ClientService(DynamoClientStore(self.settings.clients_table, self.dynamodb))

    @cached_property
    def uploads(self) -> UploadService:
        store = S3UploadStore(self.settings.payload_bucket, self.s3)
        return UploadService(store, self.settings.max_message_bytes, utcnow)

    @cached_property
    def submissions(self) -> SubmissionService:
        return SubmissionService(self.settings, self.queue, self.payloads, self.statuses)

    @cached_property
    def event_settings(self) -> EventSettings:
        return get_event_settings()

    @cached_property
    def event_feed(self) -> EventFeed:
        events = self.event_settings
        store = DynamoEventStore(events.events_table, events.retention_days, self.dynamodb)
        return EventFeed(store, events.feed_settle_seconds, utcnow)


def build_event_recorder(
    settings: EventSettings, *, dynamodb: Any | None = None, eventbridge: Any | None = None
) -> EventRecorder:
    """The events function's graph: the event store and the bus ``settings`` names."""
    store = DynamoEventStore(settings.events_table, settings.retention_days, dynamodb)
    return EventRecorder(store, EventBridgeBus(settings.event_bus_name, eventbridge), utcnow)
