"""What an attempt means for a message: recipient states, the message state, and when to retry."""

from __future__ import annotations

import math
import secrets
from datetime import datetime

from mailrelay.delivery.replies import RecipientOutcome, describe
from mailrelay.models.status import MessageState, MessageStatus, RecipientStatus

_jitter = secrets.SystemRandom()


def open_recipients(status: MessageStatus) -> list[str]:
    """Recipients still to be sent to: never the delivered or failed ones."""
    retry_uncertain = status.delivery == "at_least_once"
    return [
        r.address
        for r in status.recipients
        if r.state in ("pending", "deferred") or (r.state == "uncertain" and retry_uncertain)
    ]


def message_state(status: MessageStatus) -> MessageState:
    """From the recipients that were to be sent to: suppressed ones count only when there are no others."""
    still_open = set(open_recipients(status))
    states = {r.state for r in status.recipients if r.state != "suppressed"}
    if not states:
        return "failed"
    if still_open:
        open_states = {r.state for r in status.recipients if r.address in still_open}
        return "uncertain" if "uncertain" in open_states else "deferred"
    if "expired" in states:
        return "expired"
    if "uncertain" in states:
        return "uncertain"
    if "failed" in states:
        return "failed"
    return "delivered"


def apply_outcomes(
    status: MessageStatus, outcomes: dict[str, RecipientOutcome], error: str | None, upstream: str | None, now: datetime
) -> MessageStatus:
    recipients = [_recorded(r.address, outcomes[r.address], now) if r.address in outcomes else r
                  for r in status.recipients]  # fmt: skip
    updated = status.model_copy(
        update={"recipients": recipients, "attempts": status.attempts + 1, "updated_at": now, "upstream": upstream}
    )
    return _settle(updated, error or _summary(recipients), now)


def _recorded(address: str, outcome: RecipientOutcome, now: datetime) -> RecipientStatus:
    return RecipientStatus(address=address, state=outcome.state, reply=outcome.reply, updated_at=now,
                           provider_message_id=outcome.provider_message_id)  # fmt: skip


def expire(status: MessageStatus, now: datetime) -> MessageStatus:
    still_open = set(open_recipients(status))
    recipients = [
        r.model_copy(update={"state": "expired", "updated_at": now}) if r.address in still_open else r
        for r in status.recipients
    ]
    error = f"expired at {status.expires_at.isoformat()} before every recipient was delivered"
    return _settle(status.model_copy(update={"recipients": recipients, "updated_at": now}), error, now)


def interrupted(status: MessageStatus, now: datetime) -> MessageStatus:
    """An at-most-once message whose previous attempt stopped mid-send: its outcome is unknown."""
    still_open = set(open_recipients(status))
    recipients = [
        r.model_copy(update={"state": "uncertain", "updated_at": now}) if r.address in still_open else r
        for r in status.recipients
    ]
    error = "a previous attempt was interrupted during the send; not retried (at_most_once)"
    return _settle(status.model_copy(update={"recipients": recipients, "updated_at": now}), error, now)


def _settle(status: MessageStatus, error: str | None, now: datetime) -> MessageStatus:
    state = message_state(status)
    settled = status.model_copy(update={"state": state})
    final = settled.is_final
    return settled.model_copy(
        update={
            "last_error": None if state == "delivered" else error,
            "completed_at": now if final else None,
            "next_attempt_at": None if final else status.next_attempt_at,
        }
    )


def _summary(recipients: list[RecipientStatus]) -> str | None:
    problems = [
        f"{r.address}: {r.state}, {describe(r.reply)}" for r in recipients if r.state not in ("delivered", "suppressed")
    ]
    return "; ".join(problems)[:1000] or None


def retry_delay(attempts: int, base: int, cap: int) -> int:
    """Growing backoff: minutes at first, then hours, at most ``cap``; +-10 % so retries spread out."""
    exponent = min(max(attempts - 1, 0), 20)
    delay = min(base * 2**exponent, cap)
    jittered: int = math.ceil(delay * _jitter.uniform(0.9, 1.1))
    return max(1, min(cap, jittered))
