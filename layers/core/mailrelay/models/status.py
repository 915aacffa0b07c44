"""The status record of one message, as stored and as GET /v1/messages/{id} shows it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

DeliveryMode = Literal["at_least_once", "at_most_once"]
MessageState = Literal[
    "queued", "scheduled", "sending", "delivered", "deferred", "failed", "expired", "uncertain", "cancelled"
]
# suppressed: on the client's suppression list at acceptance; recorded, never sent to.
# bounced / complained: delivered, then the upstream reported a permanent bounce or a complaint.
RecipientState = Literal[
    "pending", "delivered", "deferred", "failed", "expired", "uncertain", "suppressed", "bounced", "complained"
]
FINAL_MESSAGE_STATES: frozenset[str] = frozenset({"delivered", "failed", "expired", "cancelled"})
# What POST /v1/messages/{id}/cancel may stop: nothing is being sent and nothing is final.
CANCELLABLE_STATES: frozenset[str] = frozenset({"queued", "scheduled", "deferred"})


class SmtpReply(BaseModel):
    code: int
    enhanced: str | None = None
    text: str = ""


class RecipientStatus(BaseModel):
    address: str
    state: RecipientState = "pending"
    reply: SmtpReply | None = None
    updated_at: AwareDatetime | None = None
    # The upstream's own id for the transaction that delivered it (SES: from its 250 reply); its
    # bounce and complaint notifications name the message by it.
    provider_message_id: str | None = None


class MessageStatus(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str
    client_id: str
    state: MessageState
    mail_from: str
    recipients: list[RecipientStatus]
    size: int
    sha256: str
    created_at: AwareDatetime
    updated_at: AwareDatetime
    send_at: AwareDatetime | None = None
    expires_at: AwareDatetime
    delivery: DeliveryMode = "at_least_once"
    attempts: int = 0
    last_error: str | None = None
    upstream: str | None = None  # the upstream that took the last attempt
    next_attempt_at: AwareDatetime | None = None
    completed_at: AwareDatetime | None = None
    source: Literal["api", "smtp"] = "api"
    tags: dict[str, str] = {}
    metadata: dict[str, str] = {}
    subject: str | None = None  # as the recipients will read it (decoded), for history listings
    retain_content_days: int = 0  # the content is kept this long for GET /v1/messages/{id}/content

    @property
    def is_final(self) -> bool:
        """No more attempts: an uncertain at-most-once send is final, an at-least-once one is retried."""
        if self.state in FINAL_MESSAGE_STATES:
            return True
        return self.state == "uncertain" and self.delivery == "at_most_once"

    def public_view(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"client_id"})
