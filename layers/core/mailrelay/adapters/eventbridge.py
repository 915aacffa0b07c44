"""Events onto an EventBridge bus: source ``mailrelay``, detail-type the event type, detail the envelope.

PutEvents takes at most 10 entries per call and each entry must be under 256 KB, counted as the UTF-8
bytes of Source, DetailType, Detail and Resources plus 14 for Time
(https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html,
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevent-size.html). A call can succeed
while single entries fail (FailedEntryCount, an ErrorCode per entry:
https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevents.html); those are sent again
once, then reported as a failure so the change record is retried.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from mailrelay.adapters.aws import aws_call, lazy
from mailrelay.events.model import Event
from mailrelay.ports import StorageError

SOURCE = "mailrelay"
MAX_ENTRIES = 10
MAX_ENTRY_BYTES = 256 * 1024
_TIME_BYTES = 14


def entry_size(entry: dict[str, Any]) -> int:
    size = _TIME_BYTES if "Time" in entry else 0
    for key in ("Source", "DetailType", "Detail"):
        size += len(entry.get(key, "").encode("utf-8"))
    return size + sum(len(r.encode("utf-8")) for r in entry.get("Resources", []))


class EventBridgeBus:
    def __init__(self, bus_name: str, client: Any | None = None) -> None:
        self.bus_name = bus_name
        self._client = lazy("events", client)

    def entry(self, event: Event) -> dict[str, Any]:
        return self._entry(event.envelope(), event.created_at)

    def _entry(self, envelope: dict[str, Any], at: datetime) -> dict[str, Any]:
        entry = {
            "Source": SOURCE,
            "DetailType": envelope["type"],
            "Detail": json.dumps(envelope, separators=(",", ":")),
            "EventBusName": self.bus_name,
            "Time": at,
        }
        if entry_size(entry) >= MAX_ENTRY_BYTES:  # cannot happen with the status record's own limits
            raise StorageError(f"event {envelope['id']} is {entry_size(entry)} bytes; EventBridge takes under 256 KB")
        return entry

    def publish(self, events: list[Event]) -> None:
        self._put_all([self.entry(e) for e in events])

    def put(self, envelopes: list[dict[str, Any]]) -> None:
        """Envelopes not about a message (webhook.disabled); their created_at is the entry's time."""
        self._put_all([self._entry(e, datetime.fromisoformat(e["created_at"])) for e in envelopes])

    def _put_all(self, entries: list[dict[str, Any]]) -> None:
        for start in range(0, len(entries), MAX_ENTRIES):
            self._put(entries[start : start + MAX_ENTRIES])

    def _put(self, entries: list[dict[str, Any]]) -> None:
        for _ in range(2):
            with aws_call("EventBridge PutEvents"):
                response = self._client().put_events(Entries=entries)
            if not response.get("FailedEntryCount"):
                return
            entries = [e for e, r in zip(entries, response["Entries"], strict=True) if r.get("ErrorCode")]
        raise StorageError(f"EventBridge PutEvents failed for {len(entries)} entries")
