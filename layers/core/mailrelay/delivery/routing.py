"""Which upstream each recipient goes to: a simulator takes the recipients in its domain, the SMTP
upstreams (chosen by the sender's domain) take the rest; one attempt's results merged into one."""

from __future__ import annotations

from dataclasses import replace

from mailrelay.delivery.attempt import AttemptResult, attempt_delivery
from mailrelay.delivery.connections import SessionPool
from mailrelay.delivery.deadline import Deadline
from mailrelay.delivery.simulator import simulate
from mailrelay.delivery.smtp_session import Envelope, SmtpTimeouts
from mailrelay.delivery.upstreams import AnyUpstream, SimulatorUpstream, candidates_for, simulator_for


def deliver_to_routes(
    envelope: Envelope,
    data: bytes,
    upstreams: tuple[AnyUpstream, ...],
    attempt: int,
    pool: SessionPool,
    deadline: Deadline,
    timeouts: SmtpTimeouts,
) -> AttemptResult:
    simulated: dict[SimulatorUpstream, list[str]] = {}
    rest: list[str] = []
    for rcpt in envelope.rcpt_to:
        simulator = simulator_for(upstreams, rcpt)
        if simulator is None:
            rest.append(rcpt)
        else:
            simulated.setdefault(simulator, []).append(rcpt)
    results = [
        simulate(sim, replace(envelope, rcpt_to=tuple(rcpts)), data, attempt) for sim, rcpts in simulated.items()
    ]
    if rest or not results:
        candidates = candidates_for(upstreams, envelope.mail_from)
        smtp_envelope = replace(envelope, rcpt_to=tuple(rest))
        results.append(attempt_delivery(smtp_envelope, data, candidates, pool, deadline, timeouts))
    return results[0] if len(results) == 1 else _merged(results)


def _merged(results: list[AttemptResult]) -> AttemptResult:
    outcomes = {rcpt: outcome for result in results for rcpt, outcome in result.outcomes.items()}
    upstreams = ", ".join(r.upstream for r in results if r.upstream)
    errors = "; ".join(r.error for r in results if r.error)
    unavailable = [u for r in results for u in r.unavailable]
    feedback = [f for r in results for f in r.feedback]
    return AttemptResult(outcomes, upstreams or None, errors or None, unavailable, feedback)
