"""Feedback from an upstream, whatever the provider: which of our messages, which recipients, what happened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mailrelay.models.status import SmtpReply


@dataclass(frozen=True)
class RecipientFeedback:
    address: str
    reply: SmtpReply | None = None  # the receiver's reply as the provider reports it, when it does


@dataclass(frozen=True)
class Feedback:
    kind: Literal["bounce", "complaint", "delivery"]
    permanent: bool  # a bounce the provider says will not go away (always True for a complaint)
    message_id: str | None  # ours, when the notification lets us find it
    provider_message_id: str
    recipients: tuple[RecipientFeedback, ...]
