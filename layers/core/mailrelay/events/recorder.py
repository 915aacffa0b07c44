"""One committed change of a status record -> its events, stored once, put on the event bus, and queued
for the client's webhook endpoints.

Store first, then publish: a failure anywhere fails the change record, which the stream delivers
again; the store keeps the first copy of each event (by id) and the bus may see an event twice,
with the same id, which is what consumers de-duplicate by.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from mailrelay.events.derive import events_for_change
from mailrelay.events.model import Event
from mailrelay.models.status import MessageStatus
from mailrelay.ports import EventBus, EventStore


class Fanout(Protocol):
    def enqueue(self, events: list[Event]) -> None: ...


class EventRecorder:
    def __init__(
        self, store: EventStore, bus: EventBus, clock: Callable[[], datetime], webhooks: Fanout | None = None
    ) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.webhooks = webhooks  # queues a job per subscribed webhook endpoint

    def record(self, old: MessageStatus | None, new: MessageStatus | None) -> list[Event]:
        events = events_for_change(old, new)
        for event in events:
            self.store.add(event, self.clock())
        if events:
            self.bus.publish(events)
            if self.webhooks is not None:
                self.webhooks.enqueue(events)
        return events
