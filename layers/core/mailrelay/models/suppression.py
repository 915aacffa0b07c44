"""One entry of a client's suppression list: an address mailrelay will not send to, and why."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict

from mailrelay.models.status import SmtpReply

SuppressionReason = Literal["hard_bounce", "complaint", "manual", "unsubscribe"]
SUPPRESSION_REASONS: tuple[str, ...] = get_args(SuppressionReason)


class SuppressionSource(BaseModel):
    """What put the address on the list: a message and the reply that condemned it, or who added it."""

    model_config = ConfigDict(extra="ignore")

    message_id: str | None = None
    reply: SmtpReply | None = None
    added_by: str | None = None  # "api", "cli", "import", "ses-feedback"


class Suppression(BaseModel):
    model_config = ConfigDict(extra="ignore")

    address: str  # normalised: see mailrelay.suppression.addresses
    reason: SuppressionReason
    created_at: AwareDatetime
    source: SuppressionSource
    expires_at: AwareDatetime | None = None

    def view(self) -> dict[str, object]:
        return self.model_dump(mode="json", exclude_none=True)
