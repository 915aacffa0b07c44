"""The delivery simulator: an upstream of type ``simulator`` that answers one mail transaction as an SMTP
server would, with no network, so that local and staging stacks can show bounces, deferrals and the
uncertain window on demand.

The recipient's local part chooses the behaviour (a ``+label`` is ignored, so one test run can use
``bounce+run42@...``). Replies go through the same outcome types as a real session's, so the status
records, retries and give-up are the ones production would produce. A ``complaint`` recipient is
delivered, then complained about: the complaint goes through the same feedback service as SES's.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from mailrelay.delivery.attempt import AttemptResult
from mailrelay.delivery.replies import RecipientOutcome, outcome_of, reply_from
from mailrelay.delivery.smtp_session import NO_REPLY_TO_DATA_END, Envelope
from mailrelay.delivery.upstreams import SimulatorUpstream
from mailrelay.feedback.model import Feedback, RecipientFeedback
from mailrelay.models.status import SmtpReply

AfterData = Literal["accept", "reject", "no_reply"]
DEFERRALS = 2  # `defer` is refused this many attempts, then accepted


@dataclass(frozen=True)
class Behaviour:
    after_data: AfterData = "accept"
    permanent_rcpt: str | None = None  # a 5xx reply to RCPT
    defer_attempts: int = 0  # 451 at RCPT on attempts up to this one (-1: always)
    complaint: bool = False


BEHAVIOURS: dict[str, Behaviour] = {
    "delivered": Behaviour(),
    "bounce": Behaviour(permanent_rcpt="550 5.1.1 Recipient address rejected: user unknown"),
    "policy": Behaviour(after_data="reject"),
    "defer": Behaviour(defer_attempts=DEFERRALS),
    "defer-always": Behaviour(defer_attempts=-1),
    "timeout": Behaviour(after_data="no_reply"),
    "complaint": Behaviour(complaint=True),
}

_SUFFIX = " (mailrelay simulator)"
_ACCEPTED = "250 2.0.0 Ok: queued" + _SUFFIX
_POLICY = "550 5.7.1 Message rejected: refused by the recipient's policy" + _SUFFIX
_DEFERRED = "451 4.3.0 Temporary failure, try again later" + _SUFFIX
_UNKNOWN = "550 5.1.1 No such simulator address; the local part chooses: " + ", ".join(BEHAVIOURS)


def behaviour_of(recipient: str) -> Behaviour | None:
    local = recipient.rpartition("@")[0].split("+", 1)[0].lower()
    return BEHAVIOURS.get(local)


def simulate(upstream: SimulatorUpstream, envelope: Envelope, data: bytes, attempt: int) -> AttemptResult:
    """One transaction for ``envelope`` (every recipient in the simulator's domain) on the message's
    ``attempt``-th try (1 for the first)."""
    if upstream.copy_to:
        _keep_copy(Path(upstream.copy_to), data)
    outcomes: dict[str, RecipientOutcome] = {}
    accepted: dict[str, Behaviour] = {}
    for rcpt in envelope.rcpt_to:
        behaviour = behaviour_of(rcpt)
        refusal = _rcpt_refusal(behaviour, attempt)
        if refusal is None and behaviour is not None:
            accepted[rcpt] = behaviour
        else:
            outcomes[rcpt] = outcome_of(refusal or _reply(_UNKNOWN))
    if not accepted:
        return AttemptResult(outcomes, upstream.name)
    # One reply to the final dot answers for every accepted recipient, as on a real server.
    after = {b.after_data for b in accepted.values()}
    if "no_reply" in after:
        outcomes.update({r: RecipientOutcome("uncertain") for r in accepted})
        return AttemptResult(outcomes, upstream.name, NO_REPLY_TO_DATA_END)
    final = _reply(_POLICY if "reject" in after else _ACCEPTED)
    if final.code != 250:
        outcomes.update({r: outcome_of(final) for r in accepted})
        return AttemptResult(outcomes, upstream.name)
    # Named as SES names what it accepts, so a complaint finds the message the way SES's would.
    provider_id = f"simulated-{uuid.uuid4().hex}"
    outcomes.update({r: replace(outcome_of(final), provider_message_id=provider_id) for r in accepted})
    complained = tuple(RecipientFeedback(r) for r, b in accepted.items() if b.complaint)
    feedback = [Feedback("complaint", True, None, provider_id, complained)] if complained else []
    return AttemptResult(outcomes, upstream.name, feedback=feedback)


def _rcpt_refusal(behaviour: Behaviour | None, attempt: int) -> SmtpReply | None:
    if behaviour is None:
        return None
    if behaviour.permanent_rcpt:
        return _reply(behaviour.permanent_rcpt + _SUFFIX)
    if behaviour.defer_attempts < 0 or attempt <= behaviour.defer_attempts:
        return _reply(_DEFERRED)
    return None


def _reply(line: str) -> SmtpReply:
    code, _, text = line.partition(" ")
    return reply_from(int(code), text)


def _keep_copy(folder: Path, data: bytes) -> None:
    """Named as the local capture server names its files; once per message, however often it is retried."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(data).hexdigest()[:12]
    if any(folder.glob(f"*-{digest}.eml")):
        return
    name = f"{time.strftime('%Y%m%dT%H%M%S')}-{digest}.eml"
    tmp = folder / f".{name}.{os.getpid()}.tmp"
    tmp.write_bytes(data)
    tmp.replace(folder / name)  # atomic: a reader never sees half a message
