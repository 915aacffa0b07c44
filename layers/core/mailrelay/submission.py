"""The one submission path: policy, storage and enqueue, shared by the HTTP API and the SMTP bridge.

A message is accepted only once its payload (S3 when large), its status record and its queue
message are written. When any write fails, what was written is removed again and the caller
gets TemporarilyUnavailable (HTTP 503 / SMTP 451), so the sender keeps the message and retries.
"""

from __future__ import annotations

import base64
import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from mailrelay.addresses import parse_address, sender_allowed
from mailrelay.errors import (
    InvalidControlHeader,
    InvalidRequest,
    MailrelayError,
    MessageTooLarge,
    SenderNotAllowed,
    TemporarilyUnavailable,
    TooManyRecipients,
)
from mailrelay.message_data import MessageData
from mailrelay.message_headers import HeaderSummary, read_headers
from mailrelay.models.client import Client
from mailrelay.models.queued_message import InlinePayload, QueuedMessage, S3Payload
from mailrelay.models.status import DeliveryMode, MessageStatus, RecipientStatus
from mailrelay.models.suppression import Suppression
from mailrelay.ports import (
    ContentArchive,
    IngressLog,
    IngressRecord,
    OutgoingMessage,
    PayloadStore,
    Queue,
    StatusStore,
    StorageError,
)
from mailrelay.settings import Settings
from mailrelay.suppression.rules import refusal
from mailrelay.suppression.service import SuppressionList

logger = logging.getLogger(__name__)

SQS_MAX_DELAY = 900  # seconds; later sends are hidden again by the delivery worker until due
BATCH_STORE_CONCURRENCY = 8  # items of a batch whose storage calls are in flight at once


@dataclass(frozen=True)
class FieldNames:
    """Where, in the caller's input, each part of a submission came from (for precise errors)."""

    envelope_from: str = "from"
    recipients: str = "to"
    headers: str = "from"
    schedule: str = "send_at"
    expiry: str = "expires_at"


@dataclass(frozen=True)
class IngressKey:
    """What makes a re-sent SMTP message recognisable: a key, and the hash of what the client sent."""

    key: str
    sha256: str
    # Where an explicit key came from (the same key with other content is then refused); None for a
    # Message-ID, where other content simply makes another message.
    field: str | None = None


@dataclass(frozen=True)
class Submission:
    """A message ready for policy and storage: canonical bytes plus its envelope."""

    message_id: str
    mail_from: str
    rcpt_to: tuple[str, ...]
    content: MessageData
    source: Literal["api", "smtp"]
    # The sender may use UTF-8 in headers (SMTPUTF8 declared, or the API): the queued flag is then set
    # only if the header section really holds non-ASCII; non-ASCII envelope addresses always set it.
    smtputf8: bool = False
    send_at: datetime | None = None
    expires_at: datetime | None = None
    delivery: DeliveryMode = "at_least_once"
    tags: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    fields: FieldNames = FieldNames()
    # The header section's summary when the composer already parsed it strictly (from ``data``'s own
    # From/Sender lines): check() then does not parse it a second time.
    headers: HeaderSummary | None = None
    ingress: IngressKey | None = None
    subject: str | None = None


@dataclass(frozen=True)
class CheckedEnvelope:
    """The envelope in the normalised form that policy approved: what is queued and delivered."""

    mail_from: str
    rcpt_to: tuple[str, ...]
    smtputf8: bool


@dataclass(frozen=True)
class Accepted:
    id: str
    status: Literal["queued", "scheduled", "failed"]  # failed: every recipient is suppressed, nothing is sent
    duplicate: bool = False  # a re-sent message answered with the first one's id; nothing was queued
    suppressed: tuple[str, ...] = ()  # recipients on the client's suppression list: recorded, never sent to


@dataclass
class _Prepared:
    submission: Submission
    status: MessageStatus
    outgoing: OutgoingMessage | None  # None: nothing to send (every recipient is suppressed)
    s3_key: str | None
    retained_days: int = 0


def utcnow() -> datetime:
    return datetime.now(UTC)


class SubmissionService:
    def __init__(
        self,
        settings: Settings,
        queue: Queue,
        payloads: PayloadStore,
        statuses: StatusStore,
        clock: Callable[[], datetime] = utcnow,
        ingress: IngressLog | None = None,
        archive: ContentArchive | None = None,
        suppressions: SuppressionList | None = None,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.payloads = payloads
        self.statuses = statuses
        self.clock = clock
        self.ingress = ingress
        self.archive = archive
        self.suppressions = suppressions

    # -- policy ---------------------------------------------------------------------------------

    def check(self, client: Client, sub: Submission, *, max_recipients: int | None = None) -> CheckedEnvelope:
        """Everything that can refuse a message, before anything is written; the envelope as checked."""
        limit = max_recipients or self.settings.max_recipients
        if len(sub.rcpt_to) > limit:
            raise TooManyRecipients(len(sub.rcpt_to), limit)
        if not sub.rcpt_to:
            raise InvalidRequest.at(sub.fields.recipients, "at least one recipient is required")
        if sub.content.size > self.settings.max_message_bytes:
            raise MessageTooLarge(sub.content.size, self.settings.max_message_bytes)
        envelope = parse_address(sub.mail_from, sub.fields.envelope_from)
        if not sender_allowed(envelope, client.allowed_from):
            raise SenderNotAllowed(sub.fields.envelope_from, envelope.smtp)
        recipients = [parse_address(rcpt, f"{sub.fields.recipients}[{i}]") for i, rcpt in enumerate(sub.rcpt_to)]
        headers = sub.headers or read_headers(sub.content.head, sub.fields.headers)
        for address in headers.sender_addresses():
            if not sender_allowed(address, client.allowed_from):
                raise SenderNotAllowed(sub.fields.headers, address.smtp)
        self._check_times(sub)
        # What is queued is the address that policy judged (a fullwidth or ideographic-dot domain is
        # queued in its normalised form, so routing by sender domain sees what the check saw).
        return CheckedEnvelope(
            mail_from=envelope.smtp,
            rcpt_to=tuple(dict.fromkeys(r.smtp for r in recipients)),
            smtputf8=any(a.needs_smtputf8 for a in (envelope, *recipients))
            or (sub.smtputf8 and headers.has_non_ascii()),
        )

    def _check_times(self, sub: Submission) -> None:
        now = self.clock()
        if sub.send_at is not None and sub.send_at > now + timedelta(seconds=self.settings.max_schedule_seconds):
            hours = self.settings.max_schedule_seconds / 3600
            raise InvalidRequest.at(sub.fields.schedule, f"may be at most {hours:g} hours ahead")
        if sub.expires_at is not None:
            start = max(now, sub.send_at or now)
            if sub.expires_at <= start:
                raise InvalidRequest.at(sub.fields.expiry, "must be later than now and than send_at")
            if sub.expires_at > now + timedelta(seconds=self.settings.max_expiry_seconds):
                days = self.settings.max_expiry_seconds / 86400
                raise InvalidRequest.at(sub.fields.expiry, f"may be at most {days:g} days ahead")

    # -- storage ----------------------------------------------------------------------------------

    def submit(self, client: Client, sub: Submission, *, max_recipients: int | None = None) -> Accepted:
        envelope = self.check(client, sub, max_recipients=max_recipients)
        seen = self._seen(client, sub)
        if seen is not None:
            return seen
        prepared = self._store(client, sub, envelope)
        try:
            if prepared.outgoing is not None:
                self.queue.send(prepared.outgoing)
        except StorageError as exc:
            self._rollback(prepared)
            raise self._unavailable(exc) from exc
        accepted = self._accepted(prepared)
        self._remember(client, sub, accepted)
        return accepted

    # -- ingress de-duplication -------------------------------------------------------------------

    def _seen(self, client: Client, sub: Submission) -> Accepted | None:
        """The first acceptance of the same message, when this is a re-send within the window.

        The log is best effort: when it cannot be read the message is accepted again (a duplicate
        is better than a refusal the client cannot act on).
        """
        if sub.ingress is None or self.ingress is None or self.settings.dedup_window_seconds <= 0:
            return None
        try:
            record = self.ingress.get(client.id, sub.ingress.key, self.clock())
        except StorageError as exc:
            logger.warning("ingress log not readable, message not checked for re-sends: %s", exc)
            return None
        if record is None:
            return None
        if record.sha256 == sub.ingress.sha256:
            return Accepted(record.message_id, "scheduled" if record.status == "scheduled" else "queued", True)
        if sub.ingress.field is not None:
            raise InvalidControlHeader.at(sub.ingress.field, "was used for a different message within the last "
                                          f"{self.settings.dedup_window_seconds} seconds")  # fmt: skip
        return None

    def _remember(self, client: Client, sub: Submission, accepted: Accepted) -> None:
        if sub.ingress is None or self.ingress is None or self.settings.dedup_window_seconds <= 0:
            return
        record = IngressRecord(accepted.id, sub.ingress.sha256, accepted.status)
        expires = self.clock() + timedelta(seconds=self.settings.dedup_window_seconds)
        try:
            self.ingress.put(client.id, sub.ingress.key, record, expires)
        except StorageError as exc:
            logger.warning("ingress log not written for %s (a re-send would be queued again): %s", accepted.id, exc)

    def submit_batch(self, client: Client, subs: list[Submission | MailrelayError]) -> list[Accepted | MailrelayError]:
        """Each item succeeds or fails on its own; the queue writes go out 10 at a time."""
        outcomes: dict[int, Accepted | MailrelayError] = {}
        checked: dict[int, tuple[Submission, CheckedEnvelope]] = {}
        for i, sub in enumerate(subs):
            try:
                if isinstance(sub, MailrelayError):
                    raise sub
                checked[i] = (sub, self.check(client, sub))
            except MailrelayError as exc:
                outcomes[i] = exc
        prepared: dict[int, _Prepared] = {}
        # Each item's storage calls (suppression list, payload, status) wait on the network, not the CPU: a
        # few items at a time. Each status is still written before its queue message (below), as for one.
        with ThreadPoolExecutor(max_workers=BATCH_STORE_CONCURRENCY) as pool:
            stored = {i: pool.submit(self._store, client, sub, envelope) for i, (sub, envelope) in checked.items()}
            for i, future in stored.items():
                try:
                    prepared[i] = future.result()
                    outcomes[i] = self._accepted(prepared[i])
                except MailrelayError as exc:
                    outcomes[i] = exc
        results = [outcomes[i] for i in range(len(subs))]
        indices = [i for i, p in prepared.items() if p.outgoing is not None]
        for start in range(0, len(indices), 10):
            chunk = indices[start : start + 10]
            try:
                outcome = self.queue.send_batch([_outgoing(prepared[i]) for i in chunk])
            except StorageError as exc:
                outcome = {prepared[i].submission.message_id: exc for i in chunk}
            for i in chunk:
                error = outcome.get(prepared[i].submission.message_id)
                if error is not None:
                    self._rollback(prepared[i])
                    results[i] = self._unavailable(error)
        return results

    def _suppressed(self, client: Client, envelope: CheckedEnvelope) -> dict[str, Suppression]:
        """The recipients on the client's list; when it cannot be read nothing is accepted (503 / 451)."""
        if self.suppressions is None:
            return {}
        try:
            return self.suppressions.active(client.id, list(envelope.rcpt_to))
        except StorageError as exc:
            raise self._unavailable(exc) from exc

    def _store(self, client: Client, sub: Submission, envelope: CheckedEnvelope) -> _Prepared:
        suppressed = self._suppressed(client, envelope)
        sendable = [r for r in envelope.rcpt_to if r not in suppressed]
        if not sendable:
            return self._store_unsendable(client, sub, envelope, suppressed)
        now = self.clock()
        content = sub.content
        sha = content.sha256()
        expires = sub.expires_at or (
            max(now, sub.send_at or now) + timedelta(seconds=self.settings.default_expiry_seconds)
        )
        scheduled = sub.send_at is not None and sub.send_at > now
        s3_key: str | None = None
        payload: InlinePayload | S3Payload
        if content.size > self.settings.inline_payload_max_bytes:
            s3_key = self.payloads.key_for(sub.message_id)
            try:
                self.payloads.put(s3_key, content, sha)
            except StorageError as exc:
                raise self._unavailable(exc) from exc
            payload = S3Payload(bucket=self.payloads.bucket, key=s3_key)
        else:
            payload = InlinePayload(data=base64.b64encode(content.read()).decode("ascii"))
        retained = self._retain(client, sub, s3_key)
        status = MessageStatus(
            id=sub.message_id, client_id=client.id, state="scheduled" if scheduled else "queued",
            mail_from=envelope.mail_from, recipients=_recipients(envelope, suppressed, now),
            size=content.size, sha256=sha, created_at=now, updated_at=now, send_at=sub.send_at,
            expires_at=expires, delivery=sub.delivery, source=sub.source, tags=sub.tags, metadata=sub.metadata,
            subject=sub.subject if sub.subject is not None or sub.headers is None else sub.headers.subject(),
            retain_content_days=retained,
        )  # fmt: skip
        try:
            self.statuses.create(status)
        except StorageError as exc:
            self._rollback_payload(s3_key)
            self._rollback_retained(client.id, sub.message_id, retained)
            raise self._unavailable(exc) from exc
        queued = QueuedMessage(
            id=sub.message_id, client_id=client.id, mail_from=envelope.mail_from, rcpt_to=sendable,
            size=content.size, sha256=sha, smtputf8=envelope.smtputf8, payload=payload, created_at=now,
            send_at=sub.send_at, expires_at=expires, delivery=sub.delivery,
        )  # fmt: skip
        delay = 0
        if scheduled and sub.send_at is not None:
            delay = min(SQS_MAX_DELAY, math.ceil((sub.send_at - now).total_seconds()))
        outgoing = OutgoingMessage(id=sub.message_id, body=queued.model_dump_json(), delay_seconds=delay)
        return _Prepared(sub, status, outgoing, s3_key, retained)

    def _store_unsendable(
        self, client: Client, sub: Submission, envelope: CheckedEnvelope, suppressed: dict[str, Suppression]
    ) -> _Prepared:
        """Every recipient is suppressed: the record is written already final (failed); nothing is queued."""
        now = self.clock()
        status = MessageStatus(
            id=sub.message_id, client_id=client.id, state="failed", mail_from=envelope.mail_from,
            recipients=_recipients(envelope, suppressed, now), size=sub.content.size, sha256=sub.content.sha256(),
            created_at=now, updated_at=now, completed_at=now, send_at=sub.send_at,
            expires_at=sub.expires_at or now + timedelta(seconds=self.settings.default_expiry_seconds),
            delivery=sub.delivery, source=sub.source, tags=sub.tags, metadata=sub.metadata,
            subject=sub.subject if sub.subject is not None or sub.headers is None else sub.headers.subject(),
            last_error="every recipient is on the client's suppression list; nothing was sent",
        )  # fmt: skip
        try:
            self.statuses.create(status)
        except StorageError as exc:
            raise self._unavailable(exc) from exc
        return _Prepared(sub, status, None, None)

    def _retain(self, client: Client, sub: Submission, s3_key: str | None) -> int:
        """Keep the content for the client's retention period (0 days: not kept)."""
        days = client.retain_content_days
        if days <= 0 or self.archive is None:
            return 0
        try:
            self.archive.keep(client.id, sub.message_id, days, sub.content)
        except StorageError as exc:
            self._rollback_payload(s3_key)
            raise self._unavailable(exc) from exc
        return days

    def _rollback_retained(self, client_id: str, message_id: str, days: int) -> None:
        if days <= 0 or self.archive is None:
            return
        try:
            self.archive.discard(client_id, message_id, days)
        except StorageError as exc:
            logger.warning("could not remove retained content of unaccepted message %s: %s", message_id, exc)

    def _accepted(self, prepared: _Prepared) -> Accepted:
        state = prepared.status.state
        suppressed = tuple(r.address for r in prepared.status.recipients if r.state == "suppressed")
        status: Literal["queued", "scheduled", "failed"] = state if state in ("scheduled", "failed") else "queued"
        return Accepted(prepared.submission.message_id, status, suppressed=suppressed)

    def _unavailable(self, exc: Exception) -> TemporarilyUnavailable:
        logger.warning("storage write failed, message not accepted: %s", exc)
        return TemporarilyUnavailable(
            "the message could not be stored; nothing was accepted, please retry",
            retry_after=self.settings.retry_after_seconds,
        )

    def _rollback(self, prepared: _Prepared) -> None:
        """Best effort: nothing reaches delivery without its queue message, so leftovers are inert."""
        try:
            self.statuses.delete(prepared.status.id)
        except StorageError as exc:
            logger.warning("could not remove status of unaccepted message %s: %s", prepared.status.id, exc)
        self._rollback_payload(prepared.s3_key)
        self._rollback_retained(prepared.status.client_id, prepared.status.id, prepared.retained_days)

    def _rollback_payload(self, key: str | None) -> None:
        if key is None:
            return
        try:
            self.payloads.delete(key)
        except StorageError as exc:
            logger.warning("could not remove payload %s of unaccepted message: %s", key, exc)


def _outgoing(prepared: _Prepared) -> OutgoingMessage:
    assert prepared.outgoing is not None  # only prepared messages with something to send are queued
    return prepared.outgoing


def _recipients(envelope: CheckedEnvelope, suppressed: dict[str, Suppression], now: datetime) -> list[RecipientStatus]:
    return [
        RecipientStatus(address=r, state="suppressed", reply=refusal(suppressed[r]), updated_at=now)
        if r in suppressed else RecipientStatus(address=r)
        for r in envelope.rcpt_to
    ]  # fmt: skip
