"""One delivery attempt: the open recipients of one message, to the first upstream that takes them."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace

from mailrelay.delivery.connections import SessionPool
from mailrelay.delivery.deadline import Deadline, DeadlineReached
from mailrelay.delivery.replies import RecipientOutcome
from mailrelay.delivery.smtp_session import Envelope, SmtpTimeouts, UpstreamUnavailable
from mailrelay.delivery.upstreams import Upstream
from mailrelay.feedback.model import Feedback
from mailrelay.feedback.ses import message_id_from_reply

logger = logging.getLogger(__name__)


@dataclass
class AttemptResult:
    outcomes: dict[str, RecipientOutcome]
    upstream: str | None = None
    error: str | None = None  # why no upstream took the message, or what made the outcome uncertain
    unavailable: list[UpstreamUnavailable] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)  # what the upstream reports once the outcome is recorded


def attempt_delivery(
    envelope: Envelope,
    data: bytes,
    candidates: list[Upstream],
    pool: SessionPool,
    deadline: Deadline,
    timeouts: SmtpTimeouts,
) -> AttemptResult:
    """Failover in priority order on connection, TLS, AUTH failures and 421; otherwise one transaction."""
    unavailable: list[UpstreamUnavailable] = []
    if not candidates:
        return _all_deferred(envelope, "no upstream is configured for this sender's domain", unavailable)
    for upstream in candidates:
        try:
            session = pool.session(upstream, deadline)
            outcomes = session.send(envelope, _for_upstream(data, upstream), deadline, timeouts)
        except UpstreamUnavailable as exc:
            pool.discard(upstream.name)
            unavailable.append(exc)
            logger.warning("upstream unavailable", extra={"upstream": upstream.name, "kind": exc.kind, "why": str(exc)})
            continue
        except DeadlineReached:
            return _all_deferred(envelope, "the invocation ran out of time", unavailable)
        pool.release(session)
        if upstream.is_ses:
            outcomes = {r: _with_ses_message_id(o) for r, o in outcomes.items()}
        return AttemptResult(outcomes, upstream.name, session.last_error, unavailable)
    return _all_deferred(envelope, "; ".join(str(e) for e in unavailable), unavailable)


def _for_upstream(data: bytes, upstream: Upstream) -> bytes:
    """The message as this upstream gets it: with its SES configuration set named first, when it has one."""
    if upstream.ses_configuration_set is None:
        return data
    return f"X-SES-CONFIGURATION-SET: {upstream.ses_configuration_set}\r\n".encode("ascii") + data


def _with_ses_message_id(outcome: RecipientOutcome) -> RecipientOutcome:
    """SES names the message in its 250 reply; its bounce and complaint notifications name it the same way."""
    if outcome.state != "delivered":
        return outcome
    return replace(outcome, provider_message_id=message_id_from_reply(outcome.reply))


def _all_deferred(envelope: Envelope, error: str, unavailable: list[UpstreamUnavailable]) -> AttemptResult:
    last_reply = next((e.reply for e in reversed(unavailable) if e.reply is not None), None)
    outcomes = {r: RecipientOutcome("deferred", last_reply) for r in envelope.rcpt_to}
    return AttemptResult(outcomes, None, error, unavailable)
