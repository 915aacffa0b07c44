"""A client's webhook endpoint, as stored and as the management API shows it, and what creates one."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from mailrelay.events.model import EventType
from mailrelay.models.fields import Instant

ROTATION_OVERLAP = timedelta(hours=24)  # the old secret keeps signing this long after a rotation
TEST_EVENT = "webhook.test"
DISABLED_EVENT = "webhook.disabled"  # on the event bus when an endpoint is disabled after failing too long


def new_endpoint_id() -> str:
    return "wh_" + secrets.token_hex(12)


class DeliveryAttempt(BaseModel):
    """One POST of one event to one endpoint, as GET /v1/webhooks/{id}/deliveries shows it."""

    event_id: str
    event_type: str
    attempt: int
    at: AwareDatetime
    status_code: int | None
    latency_ms: int
    error: str | None = None
    result: str  # delivered | retry | gave_up


class ReplayRequest(BaseModel):
    """The body of POST /v1/webhooks/{id}/replay: events recorded in [since, until)."""

    model_config = ConfigDict(extra="forbid")

    since: Instant
    until: Instant | None = None


class WebhookRequest(BaseModel):
    """The body of POST /v1/webhooks."""

    model_config = ConfigDict(extra="forbid")

    url: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    events: Annotated[list[EventType], Field(min_length=1, max_length=20)] | None = None  # None: every type
    description: Annotated[str, StringConstraints(max_length=200)] = ""

    @field_validator("description")
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(not c.isprintable() for c in value):
            raise ValueError("control characters are not allowed")
        return value


class Endpoint(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    client_id: str
    url: str
    events: list[str] | None = None
    description: str = ""
    secret: str
    previous_secret: str | None = None
    previous_secret_until: AwareDatetime | None = None
    created_at: AwareDatetime
    state: Literal["active", "disabled"] = "active"
    failing_since: AwareDatetime | None = None

    def wants(self, event_type: str) -> bool:
        return self.state == "active" and (self.events is None or event_type in self.events)

    def signing_secrets(self, now: datetime) -> list[str]:
        """The current secret, and the previous one while its overlap lasts."""
        keep_old = self.previous_secret and self.previous_secret_until and now < self.previous_secret_until
        return [self.secret, self.previous_secret] if keep_old and self.previous_secret else [self.secret]

    def public_view(self, *, with_secret: bool = False) -> dict[str, Any]:
        view = self.model_dump(mode="json", include={"id", "url", "events", "description", "created_at", "state"})
        if with_secret:
            view["secret"] = self.secret
        return view


def disabled_event(endpoint: Endpoint, failing_since: datetime, now: datetime, error: str) -> dict[str, Any]:
    """The webhook.disabled envelope. Its id is the endpoint's and its failure streak's, so the event put
    again (the disable retried after a failure) carries the same id."""
    key = f"{endpoint.id}\n{failing_since.isoformat()}".encode()
    return {
        "id": "evt_" + hashlib.sha256(key).hexdigest()[:32], "type": DISABLED_EVENT,
        "created_at": now.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "data": {"client_id": endpoint.client_id, "endpoint_id": endpoint.id, "url": endpoint.url,
                 "state": "disabled", "failing_since": failing_since.astimezone(UTC).isoformat(), "error": error},
    }  # fmt: skip
