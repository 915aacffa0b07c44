"""SMTP replies as status records keep them: code, enhanced status code (RFC 3463) and text."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailrelay.models.status import RecipientState, SmtpReply

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")
_MAX_TEXT = 512  # replies are shown to users, not archived in full


def reply_from(code: int, message: bytes | str) -> SmtpReply:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    text = " ".join(line.strip() for line in text.splitlines())[:_MAX_TEXT]
    match = _ENHANCED.match(text)
    enhanced = None
    if match and match.group(1) == str(code)[0]:
        enhanced = ".".join(match.groups())
    return SmtpReply(code=code, enhanced=enhanced, text=text)


def local_reply(code: int, enhanced: str, text: str) -> SmtpReply:
    """A reply decided here rather than by the upstream (e.g. the message exceeds its SIZE)."""
    return SmtpReply(code=code, enhanced=enhanced, text=f"{enhanced} {text} (mailrelay)")


def describe(reply: SmtpReply | None) -> str:
    return "no reply" if reply is None else f"{reply.code} {reply.text}".strip()


@dataclass(frozen=True)
class RecipientOutcome:
    state: RecipientState
    reply: SmtpReply | None = None
    provider_message_id: str | None = None


def outcome_of(reply: SmtpReply) -> RecipientOutcome:
    """2xx delivered, 5xx failed, anything else (4xx, odd codes) deferred."""
    if 200 <= reply.code < 300:
        return RecipientOutcome("delivered", reply)
    if 500 <= reply.code < 600:
        return RecipientOutcome("failed", reply)
    return RecipientOutcome("deferred", reply)
