"""X-Mailrelay-* header fields: how an SMTP client sets what the HTTP API takes as fields.

Tags, metadata, an idempotency key, a scheduled time and the delivery mode are read from these
fields, validated by the API's own models (so the same values pass and fail), and the fields are
removed before the message is relayed. An unknown X-Mailrelay-* field is refused (a misspelt control
must not be relayed as an ordinary header).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from mailrelay.errors import InvalidControlHeader
from mailrelay.message_headers import HeaderField
from mailrelay.models.fields import BodyText
from mailrelay.models.send_request import Tag
from mailrelay.models.status import DeliveryMode

PREFIX = "x-mailrelay-"
_METADATA = "x-mailrelay-metadata-"
_FIELDS = {
    "x-mailrelay-tags": "tags",
    "x-mailrelay-idempotency-key": "idempotency_key",
    "x-mailrelay-send-at": "send_at",
    "x-mailrelay-delivery": "delivery",
}
_TAG = re.compile(r"\s*([^=,\s]+)\s*=\s*([^,]*?)\s*(?:,|$)")


class _Controls(BaseModel):
    """The API's rules for the same values (SendRequest's tags, metadata, send_at, delivery)."""

    model_config = ConfigDict(extra="forbid")

    tags: Annotated[list[Tag], Field(max_length=50)] = []
    metadata: Annotated[
        dict[Annotated[BodyText, Field(min_length=1, max_length=64)], Annotated[BodyText, Field(max_length=1024)]],
        Field(max_length=50),
    ] = {}
    idempotency_key: Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,255}$")] | None = None
    send_at: AwareDatetime | None = None
    delivery: DeliveryMode = "at_least_once"


@dataclass(frozen=True)
class SmtpControls:
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    send_at: datetime | None = None
    delivery: DeliveryMode = "at_least_once"


def control_keys(fields: tuple[HeaderField, ...]) -> frozenset[str]:
    """The lower-case names of the control fields present (to remove before relaying)."""
    return frozenset(f.key for f in fields if f.key.startswith(PREFIX))


def read_controls(fields: tuple[HeaderField, ...]) -> SmtpControls:
    """The controls the header section sets; InvalidControlHeader naming the field for a bad one."""
    values: dict[str, object] = {}
    metadata: dict[str, str] = {}
    names: dict[str, str] = {}  # model field or metadata key -> the header as written, for errors
    for item in fields:
        if not item.key.startswith(PREFIX):
            continue
        text = _text(item)
        if item.key.startswith(_METADATA) and len(item.key) > len(_METADATA):
            key = item.name[len(_METADATA) :]
            if key in metadata:
                raise InvalidControlHeader.at(item.name, "is given twice")
            metadata[key] = text
            names[f"metadata.{key}"] = item.name
            continue
        target = _FIELDS.get(item.key)
        if target is None:
            known = ", ".join(["X-Mailrelay-Tags", "X-Mailrelay-Metadata-<Name>", "X-Mailrelay-Idempotency-Key",
                               "X-Mailrelay-Send-At", "X-Mailrelay-Delivery"])  # fmt: skip
            raise InvalidControlHeader.at(item.name, f"is not a mailrelay control header (known: {known})")
        if target in values:
            raise InvalidControlHeader.at(item.name, "is given twice")
        values[target] = _tags(item, text) if target == "tags" else text
        names[target] = item.name
    if not values and not metadata:
        return SmtpControls()
    try:
        parsed = _Controls.model_validate({**values, "metadata": metadata})
    except ValidationError as exc:
        error = exc.errors(include_input=False, include_url=False)[0]
        loc = [str(p) for p in error["loc"] if p != "[key]"]
        where = names.get(".".join(loc[:2])) or names.get(loc[0]) or "X-Mailrelay-Metadata"
        raise InvalidControlHeader.at(where, str(error["msg"]).removeprefix("Value error, ")) from None
    return SmtpControls(
        tags={t.name: t.value for t in parsed.tags}, metadata=dict(parsed.metadata),
        idempotency_key=parsed.idempotency_key, send_at=parsed.send_at, delivery=parsed.delivery,
    )  # fmt: skip


def _text(item: HeaderField) -> str:
    try:
        return item.value.decode("utf-8").strip(" \t")
    except UnicodeDecodeError:
        raise InvalidControlHeader.at(item.name, "is not valid UTF-8") from None


def _tags(item: HeaderField, text: str) -> list[dict[str, str]]:
    """``name=value, name=value`` (a value may be empty)."""
    tags: list[dict[str, str]] = []
    position = 0
    while position < len(text):
        match = _TAG.match(text, position)
        if match is None or match.end() == position:
            raise InvalidControlHeader.at(item.name, "must be name=value pairs separated by commas")
        tags.append({"name": match[1], "value": match[2]})
        position = match.end()
    return tags
