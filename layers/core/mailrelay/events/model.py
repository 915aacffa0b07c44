"""The event envelope, as the events feed, the event bus and webhooks carry it."""

from __future__ import annotations

from datetime import UTC
from typing import Any, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict

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
