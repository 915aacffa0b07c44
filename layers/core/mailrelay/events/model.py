"""The event envelope, as the events feed, the event bus and webhooks carry it."""

from __future__ import annotations

import re
from datetime import UTC
from typing import Annotated, Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict

from mailrelay.models.status import SmtpReply

# What the messages table records today. The later ones (cancellation, suppression, bounces and
# complaints) are named here so that consumers and filters can be written against them already.
EventType = Literal[
    "message.accepted",
    "message.scheduled",
    "message.expired",
    "message.uncertain",
    "recipient.delivered",
    "recipient.deferred",
    "recipient.failed",
    "message.cancelled",
    "recipient.suppressed",
    "recipient.bounced",
    "recipient.complained",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventType)

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: object) -> object:
    """Only an RFC 3339 date-time with its offset: pydantic alone would also take Unix seconds ("0.5")."""
    if isinstance(value, str) and not _RFC3339.match(value):
        raise ValueError("an RFC 3339 date-time with a time zone, e.g. 2026-12-02T09:00:00Z")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


class EventData(BaseModel):
    model_config = ConfigDict(frozen=True)

    message_id: str
    client_id: str
    recipient: str | None = None  # recipient.* events only
    state: str
    reply: SmtpReply | None = None
    upstream: str | None = None
    attempt: int
    tags: dict[str, str] = {}
    metadata: dict[str, str] = {}


class Event(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    type: EventType
    created_at: AwareDatetime
    data: EventData

    def envelope(self) -> dict[str, Any]:
        """The JSON document consumers receive (``recipient`` only on recipient events)."""
        doc = self.model_dump(mode="json")
        if self.data.recipient is None:
            del doc["data"]["recipient"]
        created = self.created_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        doc["created_at"] = created
        return doc
