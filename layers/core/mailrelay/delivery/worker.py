"""One queue record, start to end: parse, lease, load and verify the payload, deliver, record the
outcome, then either finish (the record is deleted) or hide the record until its next attempt.

The worker decides retries and give-up itself; the dead-letter queue only receives records that
cannot be processed at all (malformed, no status record, payload that fails its SHA-256 check).
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import ValidationError

from mailrelay.delivery.connections import SessionPool
from mailrelay.delivery.deadline import Deadline
from mailrelay.delivery.policy import apply_outcomes, expire, interrupted, open_recipients, retry_delay
from mailrelay.delivery.replies import RecipientOutcome, local_reply
from mailrelay.delivery.routing import deliver_to_routes
from mailrelay.delivery.settings import DeliverySettings
from mailrelay.delivery.smtp_session import Envelope, SmtpTimeouts
from mailrelay.delivery.upstreams import AnyUpstream
from mailrelay.feedback.model import Feedback
from mailrelay.feedback.service import FeedbackService
from mailrelay.models.queued_message import InlinePayload, QueuedMessage, S3Payload, digest
from mailrelay.models.status import MessageState, MessageStatus
from mailrelay.ports import (
    AlreadyFinal,
    LeaseHeld,
    LeaseLost,
    NoStatus,
    PayloadStore,
    RecordControl,
    StatusStore,
    StorageError,
)
from mailrelay.submission import utcnow
from mailrelay.suppression.rules import suppression_reason
from mailrelay.suppression.service import SuppressionList
from mailrelay.validation import problems

logger = logging.getLogger(__name__)


# Why a record ended as it did: the message's state after an attempt, or what kept the attempt from running.
RecordReason = MessageState | Literal["duplicate", "lease_lost", "deadline", "busy", "quarantined", "quarantine_failed"]


@dataclass(frozen=True)
class RecordOutcome:
    """What became of one record. ``keep``: it stays on the queue (reported as a batch item failure)."""

    keep: bool
    reason: RecordReason
    message_id: str | None = None
    state: MessageState | None = None
    retry_in: int | None = None
    since_accepted: float | None = None  # seconds from acceptance to delivery


class Quarantine(Exception):
    """The record can never be delivered as it is: move it to the dead-letter queue."""


class TemporaryFailure(Exception):
    """Something other than SMTP failed (e.g. reading the payload): try again later."""


class DeliveryWorker:
    def __init__(
        self,
        settings: DeliverySettings,
        upstreams: tuple[AnyUpstream, ...],
        statuses: StatusStore,
        payloads: PayloadStore,
        records: RecordControl,
        pool: SessionPool,
        clock: Callable[[], datetime] = utcnow,
        suppressions: SuppressionList | None = None,
        feedback: FeedbackService | None = None,
    ) -> None:
        self.settings = settings
        self.suppressions = suppressions
        self.feedback = feedback
        self.upstreams = upstreams
        self.statuses = statuses
        self.payloads = payloads
        self.records = records
        self.pool = pool
        self.clock = clock
        self.owner = uuid.uuid4().hex  # this execution environment, as lease owner
        self.timeouts = self.timeouts_for(settings)

    @staticmethod
    def timeouts_for(settings: DeliverySettings) -> SmtpTimeouts:
        return SmtpTimeouts(settings.connect_timeout, settings.reply_timeout, settings.data_done_timeout)

    def begin_batch(self) -> None:
        self.pool.begin_batch()

    def handle(self, body: str, receipt_handle: str, deadline: Deadline) -> RecordOutcome:
        try:
            queued = QueuedMessage.model_validate_json(body)
        except ValidationError as exc:
            where, message = problems(exc)[0]
            return self._quarantine(body, None, f"not a valid queued message: {where or 'body'}: {message}")
        now = self.clock()
        if queued.send_at is not None and queued.send_at > now and queued.expires_at > now:
            return self._hide(receipt_handle, queued, _seconds(queued.send_at - now), "scheduled", "scheduled")
        if deadline.remaining() < self.settings.start_reserve:
            return self._hide(receipt_handle, queued, 0, "deadline")
        until = now + timedelta(seconds=deadline.remaining() + self.settings.lease_grace_seconds)
        lease = self.statuses.acquire_lease(queued.id, self.owner, now, until)
        if isinstance(lease, NoStatus):
            return self._quarantine(body, queued.id, "no status record for this message (never accepted)")
        if isinstance(lease, AlreadyFinal):
            logger.info("record for a finished message; not sent again", extra={"message_id": queued.id})
            self._drop_payload(queued)
            return RecordOutcome(False, "duplicate", queued.id, lease.status.state)
        if isinstance(lease, LeaseHeld):
            return self._hide(receipt_handle, queued, _seconds(lease.until - now), "busy")
        return self._attempt(queued, lease.previous, body, receipt_handle, deadline)

    def _attempt(
        self, queued: QueuedMessage, previous: MessageStatus, body: str, receipt_handle: str, deadline: Deadline
    ) -> RecordOutcome:
        reported: list[Feedback] = []
        try:
            status, reported = self._deliver(queued, previous, deadline)
        except Quarantine as exc:
            failed = apply_outcomes(
                previous, {r: RecipientOutcome("failed", local_reply(554, "5.6.0", str(exc)))
                           for r in open_recipients(previous)}, str(exc), None, self.clock(),
            )  # fmt: skip
            self._release(failed)
            return self._quarantine(body, queued.id, str(exc))
        except TemporaryFailure as exc:
            update = {"state": "deferred", "last_error": str(exc), "updated_at": self.clock()}
            status = previous.model_copy(update=update)
        now = self.clock()
        retry_in = None
        if not status.is_final:
            retry_in = self._retry_delay(status, queued, now)
            status = status.model_copy(update={"next_attempt_at": now + timedelta(seconds=retry_in)})
        if not self._release(status):
            return RecordOutcome(True, "lease_lost", queued.id, status.state)
        self._suppress_bounced(previous, status)
        self._apply_feedback(reported)
        logger.info(
            "delivery attempt recorded",
            extra={"message_id": queued.id, "state": status.state, "attempts": status.attempts,
                   "upstream": status.upstream, "retry_in": retry_in, "error": status.last_error},
        )  # fmt: skip
        if status.is_final:
            self._drop_payload(queued)
            since = (now - queued.created_at).total_seconds() if status.state == "delivered" else None
            return RecordOutcome(False, status.state, queued.id, status.state, since_accepted=since)
        assert retry_in is not None
        hidden = self._hide(receipt_handle, queued, retry_in, status.state)
        return RecordOutcome(True, status.state, queued.id, status.state, hidden.retry_in)

    def _deliver(
        self, queued: QueuedMessage, previous: MessageStatus, deadline: Deadline
    ) -> tuple[MessageStatus, list[Feedback]]:
        """The attempt's status, and what the upstream reported about what it took (to apply once recorded)."""
        now = self.clock()
        if now >= queued.expires_at:
            return expire(previous, now), []
        if previous.state == "sending" and queued.delivery == "at_most_once":
            return interrupted(previous, now), []
        data = self._load(queued)
        recipients = tuple(open_recipients(previous))
        needs_utf8 = queued.smtputf8 or not all(a.isascii() for a in (queued.mail_from, *recipients))
        envelope = Envelope(queued.mail_from, recipients, smtputf8=needs_utf8)
        attempt = previous.attempts + 1
        result = deliver_to_routes(envelope, data, self.upstreams, attempt, self.pool, deadline, self.timeouts)
        return apply_outcomes(previous, result.outcomes, result.error, result.upstream, self.clock()), result.feedback

    def _suppress_bounced(self, previous: MessageStatus, status: MessageStatus) -> None:
        """Put each recipient this attempt failed for a reason the rule table names on the client's list.

        Best effort, after the outcome is recorded: a write that fails is logged; the next bounce adds it.
        """
        if self.suppressions is None:
            return
        before = {r.address: r.state for r in previous.recipients}
        for recipient in status.recipients:
            reason = suppression_reason(recipient.reply) if recipient.state == "failed" else None
            if reason is None or before.get(recipient.address) == "failed":
                continue
            try:
                added = self.suppressions.record(status.client_id, recipient.address, reason, status.id,
                                                 recipient.reply, "delivery")  # fmt: skip
            except StorageError as exc:
                logger.warning("bounced address not suppressed",
                               extra={"message_id": status.id, "error": str(exc)})  # fmt: skip
                continue
            if added:
                logger.info("address suppressed", extra={"message_id": status.id, "reason": reason})

    def _apply_feedback(self, reported: list[Feedback]) -> None:
        """The simulator's complaints, through the service SES notifications go through. Best effort, as
        for suppression: the outcome is recorded already."""
        for feedback in reported:
            if self.feedback is None:
                logger.info("feedback not applied (no feedback service)", extra={"kind": feedback.kind})
                continue
            try:
                self.feedback.apply(feedback)
            except (StorageError, RuntimeError) as exc:
                logger.warning("feedback not applied", extra={"kind": feedback.kind, "error": str(exc)})

    def _load(self, queued: QueuedMessage) -> bytes:
        payload = queued.payload
        if isinstance(payload, InlinePayload):
            try:
                data = base64.b64decode(payload.data, validate=True)
            except (binascii.Error, ValueError):
                raise Quarantine("the inline payload is not valid base64") from None
        else:
            if payload.bucket != self.payloads.bucket:
                raise Quarantine(f"the payload is in bucket {payload.bucket!r}, not this deployment's")
            try:
                data = self.payloads.get(payload.key)
            except StorageError as exc:
                raise TemporaryFailure(f"the payload could not be read: {exc}") from None
        if len(data) != queued.size or digest(data) != queued.sha256:
            raise Quarantine("the payload does not match its recorded size and SHA-256; not sent")
        return data

    def _retry_delay(self, status: MessageStatus, queued: QueuedMessage, now: datetime) -> int:
        delay = retry_delay(max(status.attempts, 1), self.settings.retry_base_seconds, self.settings.retry_max_seconds)
        return max(1, min(delay, _seconds(queued.expires_at - now) + 1))  # next time round it expires

    def _release(self, status: MessageStatus) -> bool:
        for attempt in range(3):  # an outcome not recorded after a send means sending it again
            try:
                self.statuses.release_lease(status, self.owner)
            except LeaseLost:  # also when a retry finds our earlier write did land (its reply was lost)
                logger.error("lease lost before the outcome was recorded", extra={"message_id": status.id})
                return False
            except StorageError:
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))
                continue
            return True
        return False

    def _hide(self, receipt_handle: str, queued: QueuedMessage, seconds: int, reason: RecordReason,
              state: MessageState | None = None) -> RecordOutcome:  # fmt: skip
        seconds = max(0, min(seconds, self.settings.retry_max_seconds))
        try:
            self.records.hide(receipt_handle, seconds)
        except StorageError as exc:  # it comes back after the queue's own visibility timeout instead
            logger.warning("could not hide the record", extra={"message_id": queued.id, "detail": str(exc)})
        return RecordOutcome(True, reason, queued.id, state, retry_in=seconds)

    def _quarantine(self, body: str, message_id: str | None, reason: str) -> RecordOutcome:
        try:
            self.records.quarantine(body, reason)
        except StorageError as exc:
            logger.error("could not quarantine record", extra={"message_id": message_id, "error": str(exc)})
            return RecordOutcome(True, "quarantine_failed", message_id)
        logger.error("record quarantined to the dead-letter queue", extra={"message_id": message_id, "reason": reason})
        return RecordOutcome(False, "quarantined", message_id)

    def _drop_payload(self, queued: QueuedMessage) -> None:
        if not isinstance(queued.payload, S3Payload):
            return
        try:
            self.payloads.delete(queued.payload.key)
        except StorageError as exc:  # the bucket's lifecycle rule sweeps leftovers
            logger.warning("could not delete the payload", extra={"message_id": queued.id, "error": str(exc)})


def _seconds(delta: timedelta) -> int:
    return max(0, math.ceil(delta.total_seconds()))
