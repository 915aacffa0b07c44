"""Events from one committed change of a status record: the record before and after the write.

Pure and deterministic: the same change always yields the same events with the same ids and times,
so a change-stream record delivered twice produces duplicates consumers can drop by id, never new
events. An event id is a digest of the message, the event type, the recipient and the attempt number.

Which changes are events:
- the record is created: ``message.accepted``, ``message.scheduled`` when it waits for ``send_at``, and one
  ``recipient.suppressed`` per recipient recorded ``suppressed`` (on the client's suppression list);
- a recipient reaches ``delivered`` or ``failed``: ``recipient.delivered`` / ``recipient.failed``;
- upstream feedback moves a recipient to ``bounced`` or ``complained``: ``recipient.bounced`` /
  ``recipient.complained``;
- a recipient is ``deferred`` by an attempt: one ``recipient.deferred`` per attempt (its number in ``attempt``);
- the message becomes ``expired``, ``uncertain`` or ``cancelled``: ``message.expired`` /
  ``message.uncertain`` / ``message.cancelled``.
A lease taken for sending (state ``sending``) and the record's removal by TTL are not events.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from mailrelay.events.model import Event, EventData, EventType
from mailrelay.models.status import MessageStatus, RecipientStatus

_RECIPIENT_EVENTS: dict[str, EventType] = {
    "delivered": "recipient.delivered",
    "failed": "recipient.failed",
    "deferred": "recipient.deferred",
    "suppressed": "recipient.suppressed",
    "bounced": "recipient.bounced",
    "complained": "recipient.complained",
}
_MESSAGE_EVENTS: dict[str, EventType] = {
    "expired": "message.expired",
    "uncertain": "message.uncertain",
    "cancelled": "message.cancelled",
}


def event_id(message_id: str, event_type: str, recipient: str | None, attempt: int) -> str:
    key = "\n".join((message_id, event_type, recipient or "", str(attempt)))
    return "evt_" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def events_for_change(old: MessageStatus | None, new: MessageStatus | None) -> list[Event]:
    """Every event the write from ``old`` to ``new`` commits (None: no record before / after)."""
    if new is None:
        return []  # removed (TTL): the record's events were committed before
    if old is None:
        accepted = [_message_event(new, "message.accepted", new.created_at)]
        if new.state == "scheduled":
            accepted.append(_message_event(new, "message.scheduled", new.created_at))
        accepted += [_recipient_event(new, r) for r in new.recipients if r.state == "suppressed"]
        return accepted
    before = {r.address: r for r in old.recipients}
    events = [
        _recipient_event(new, recipient)
        for recipient in new.recipients
        if _recipient_changed(before.get(recipient.address), recipient, old, new)
    ]
    if new.state in _MESSAGE_EVENTS and new.state != old.state:
        events.append(_message_event(new, _MESSAGE_EVENTS[new.state], new.updated_at))
    return events


def _recipient_changed(
    before: RecipientStatus | None, after: RecipientStatus, old: MessageStatus, new: MessageStatus
) -> bool:
    if after.state not in _RECIPIENT_EVENTS:
        return False
    if before is None or before.state != after.state:
        return True
    # deferred again: a new attempt wrote this recipient (its attempt count and reply time moved on)
    return after.state == "deferred" and new.attempts != old.attempts and after.updated_at != before.updated_at


def _message_event(status: MessageStatus, event_type: EventType, at: datetime) -> Event:
    return Event(
        id=event_id(status.id, event_type, None, status.attempts),
        type=event_type,
        created_at=at,
        data=_data(status, status.state, None),
    )


def _recipient_event(status: MessageStatus, recipient: RecipientStatus) -> Event:
    event_type = _RECIPIENT_EVENTS[recipient.state]
    return Event(
        id=event_id(status.id, event_type, recipient.address, status.attempts),
        type=event_type,
        created_at=recipient.updated_at or status.updated_at,
        data=_data(status, recipient.state, recipient),
    )


def _data(status: MessageStatus, state: str, recipient: RecipientStatus | None) -> EventData:
    return EventData(
        message_id=status.id,
        client_id=status.client_id,
        recipient=recipient.address if recipient else None,
        state=state,
        reply=recipient.reply if recipient else None,
        upstream=status.upstream,
        attempt=status.attempts,
        tags=status.tags,
        metadata=status.metadata,
    )
