"""Applies upstream feedback: a delivered recipient becomes ``bounced`` (permanent bounce) or ``complained``,
with the reply, and its address goes on the client's suppression list. Transient bounces and delivery
notifications change nothing (they are logged). Notifications for messages we do not know are dropped."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from mailrelay.feedback.model import Feedback
from mailrelay.models.status import MessageStatus, RecipientState, SmtpReply
from mailrelay.models.suppression import SuppressionReason
from mailrelay.ports import FeedbackRecords
from mailrelay.suppression.service import SuppressionList, normalise

logger = logging.getLogger(__name__)

_OUTCOMES: dict[str, tuple[RecipientState, SuppressionReason]] = {
    "bounce": ("bounced", "hard_bounce"),
    "complaint": ("complained", "complaint"),
}
_WRITE_ATTEMPTS = 3


class FeedbackService:
    def __init__(
        self, statuses: FeedbackRecords, suppressions: SuppressionList | None, clock: Callable[[], datetime]
    ) -> None:
        self.statuses = statuses
        self.suppressions = suppressions
        self.clock = clock

    def apply(self, feedback: Feedback) -> int:
        """The number of recipients whose state changed."""
        outcome = _OUTCOMES.get(feedback.kind) if feedback.permanent else None
        if outcome is None:
            logger.info("feedback noted", extra={"kind": feedback.kind, "message_id": feedback.message_id})
            return 0
        for _ in range(_WRITE_ATTEMPTS):  # another writer moved the record on: read it again
            status = self._find(feedback)
            if status is None:
                logger.warning("feedback for an unknown message dropped",
                               extra={"provider_message_id": feedback.provider_message_id})  # fmt: skip
                return 0
            updated, changed = self._moved(status, feedback, outcome[0])
            if not changed:
                return 0
            if self.statuses.replace(updated, status.updated_at):
                self._suppress(updated, changed, outcome[1])
                return len(changed)
        raise RuntimeError(f"the status of {feedback.message_id or feedback.provider_message_id} kept changing")

    def _find(self, feedback: Feedback) -> MessageStatus | None:
        """By the upstream's id first: exact, and it also finds messages that carried their own Message-ID."""
        status = (
            self.statuses.get_by_provider_id(feedback.provider_message_id) if feedback.provider_message_id else None
        )
        if status is None and feedback.message_id:
            status = self.statuses.get(feedback.message_id)
        return status

    def _moved(self, status: MessageStatus, feedback: Feedback, state: RecipientState
               ) -> tuple[MessageStatus, dict[str, SmtpReply | None]]:  # fmt: skip
        reported = {normalise(r.address): r.reply for r in feedback.recipients}
        now = self.clock()
        changed: dict[str, SmtpReply | None] = {}
        recipients = []
        for r in status.recipients:
            key = normalise(r.address)
            if key in reported and r.state in ("delivered", "uncertain"):
                changed[r.address] = reported[key]
                r = r.model_copy(update={"state": state, "reply": reported[key] or r.reply, "updated_at": now})
            recipients.append(r)
        return status.model_copy(update={"recipients": recipients, "updated_at": now}), changed

    def _suppress(self, status: MessageStatus, changed: dict[str, SmtpReply | None], reason: SuppressionReason) -> None:
        if self.suppressions is None:
            return
        for address, reply in changed.items():
            self.suppressions.record(status.client_id, address, reason, status.id, reply, "feedback")
