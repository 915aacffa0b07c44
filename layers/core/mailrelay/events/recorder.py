"""One committed change of a status record -> its events, stored once and put on the event bus.

Store first, then publish: a failure anywhere fails the change record, which the stream delivers
again; the store keeps the first copy of each event (by id) and the bus may see an event twice,
with the same id, which is what consumers de-duplicate by.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from mailrelay.events.derive import events_for_change
from mailrelay.events.model import Event
from mailrelay.models.status import MessageStatus
from mailrelay.ports import EventBus, EventStore


class EventRecorder:
    def __init__(self, store: EventStore, bus: EventBus, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock

    def record(self, old: MessageStatus | None, new: MessageStatus | None) -> list[Event]:
        events = events_for_change(old, new)
        for event in events:
            self.store.add(event, self.clock())
        if events:
            self.bus.publish(events)
        return events
