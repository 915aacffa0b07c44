"""The one rule table: which delivery outcomes put an address on the suppression list, and how a
suppressed recipient is answered.

Only a permanent reply whose RFC 3463 enhanced code says the address or its domain does not exist
adds ``hard_bounce``. Policy and content refusals (5.7.x: the receiver refused *this sender or
message*, not the address), a full mailbox (5.2.2), other permanent codes, replies without an
enhanced code and every temporary (4xx) reply add nothing.
"""

from __future__ import annotations

from mailrelay.models.status import SmtpReply
from mailrelay.models.suppression import Suppression, SuppressionReason

# RFC 3463 section 3.2 (X.1.x, addressing status) and RFC 7505 section 4.2 (X.1.10).
HARD_BOUNCE_CODES: dict[str, str] = {
    "5.1.1": "bad destination mailbox address (no such user)",
    "5.1.2": "bad destination system address (no such domain, or it takes no mail)",
    "5.1.3": "bad destination mailbox address syntax",
    "5.1.6": "destination mailbox has moved, no forwarding address",
    "5.1.10": "recipient address has a null MX (the domain takes no mail)",
}


def suppression_reason(reply: SmtpReply | None) -> SuppressionReason | None:
    """The reason a delivery reply suppresses its recipient for, or None (most replies)."""
    if reply is None or reply.enhanced is None or not 500 <= reply.code < 600:
        return None
    return "hard_bounce" if reply.enhanced.strip() in HARD_BOUNCE_CODES else None


def refusal(entry: Suppression) -> SmtpReply:
    """How a suppressed recipient is answered (recorded in its status, and the bridge's RCPT reply).

    A ``hard_bounce`` entry repeats what the receiver said: 5.1.1, the mailbox does not exist. The
    other reasons are the sender's own decision about an address that may well exist, so they get
    5.7.1 ("delivery not authorized ... per-recipient filtering", RFC 3463 section 3.8): the same
    permanent, per-recipient failure for the sending application, without claiming the mailbox is
    gone (which bounce processors would act on).
    """
    enhanced = "5.1.1" if entry.reason == "hard_bounce" else "5.7.1"
    since = entry.created_at.date().isoformat()
    text = f"Recipient address is suppressed ({entry.reason}, since {since})"
    return SmtpReply(code=550, enhanced=enhanced, text=text)
