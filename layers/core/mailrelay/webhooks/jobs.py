"""One webhook delivery job on the webhook queue: an event for one endpoint (the contract between the
events function, the management API and the webhook function)."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict

from mailrelay.ports import OutgoingMessage


class WebhookJob(BaseModel):
    model_config = ConfigDict(frozen=True)

    v: int = 1
    client_id: str
    endpoint_id: str
    event: dict[str, Any]  # the envelope, sent as it is (its id is the webhook-id)
    # Attempts made before this copy was queued (a job put back because its endpoint was busy).
    attempts_before: int = 0

    def message(self) -> OutgoingMessage:
        key = f"{self.endpoint_id}\n{self.event['id']}".encode()
        return OutgoingMessage(id=hashlib.sha256(key).hexdigest()[:32], body=self.model_dump_json())
