"""The queued-message contract (v1) between the entry points and delivery: one SQS body."""

from __future__ import annotations

import base64
import hashlib
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from mailrelay.models.status import DeliveryMode


class InlinePayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["inline"] = "inline"
    data: str  # base64 of the canonical message (SQS bodies cannot carry raw bytes)


class S3Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["s3"] = "s3"
    bucket: str
    key: str


class QueuedMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    id: str
    client_id: str
    mail_from: str
    rcpt_to: list[str] = Field(min_length=1)
    size: int
    sha256: str
    smtputf8: bool = False
    payload: Annotated[InlinePayload | S3Payload, Field(discriminator="kind")]
    created_at: AwareDatetime
    send_at: AwareDatetime | None = None
    expires_at: AwareDatetime
    delivery: DeliveryMode = "at_least_once"

    def inline_bytes(self) -> bytes | None:
        if isinstance(self.payload, InlinePayload):
            return base64.b64decode(self.payload.data)
        return None


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
