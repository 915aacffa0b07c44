"""What the core needs from outside, declared once: the queue, payload and status stores, the client
store, upstream credentials, uploads, the event store and bus, webhook endpoints and their HTTP sending,
the suppression list, and the values that cross those boundaries.

Adapters (``mailrelay.adapters``) implement these; only the composition roots (``mailrelay.wiring``,
``mailrelay.delivery.wiring``) choose which. No other core module imports an adapter.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # annotations only: importing a port does not build every model
    from mailrelay.events.model import Event
    from mailrelay.message_data import MessageData
    from mailrelay.models.client import Client
    from mailrelay.models.status import MessageStatus
    from mailrelay.models.suppression import Suppression
    from mailrelay.webhooks.model import DeliveryAttempt, Endpoint
    from mailrelay.webhooks.targets import Target


class StorageError(Exception):
    """A storage call failed (throttled, unreachable, denied): the operation did not happen."""


# -- the delivery queue --------------------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingMessage:
    id: str
    body: str
    delay_seconds: int = 0


class Queue(Protocol):
    def send(self, message: OutgoingMessage) -> None: ...
    def send_batch(self, messages: list[OutgoingMessage]) -> dict[str, StorageError | None]:
        """Up to 10 messages; each message's own outcome by id (None: written)."""
        ...


class RecordControl(Protocol):
    """What delivery does to a queue record it received."""

    def hide(self, receipt_handle: str, seconds: int) -> None: ...
    def quarantine(self, body: str, reason: str) -> None: ...


# -- payloads (the message bytes when they are too large for the queue) ----------------------------


class PayloadStore(Protocol):
    @staticmethod
    def key_for(message_id: str) -> str: ...
    @property
    def bucket(self) -> str: ...
    def put(self, key: str, data: MessageData, sha256_hex: str) -> None:
        """Store ``data``, streamed from its spool when it has one."""
        ...

    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...


# -- status records and the delivery lease ---------------------------------------------------------


@dataclass(frozen=True)
class Leased:
    previous: MessageStatus  # as it was before the lease (its state says whether a send was cut off)


@dataclass(frozen=True)
class AlreadyFinal:
    status: MessageStatus


@dataclass(frozen=True)
class LeaseHeld:
    until: datetime


@dataclass(frozen=True)
class NoStatus:
    pass


LeaseResult = Leased | AlreadyFinal | LeaseHeld | NoStatus


class LeaseLost(Exception):
    """Our lease expired and another receiver took the message: our result was not recorded."""


class StatusStore(Protocol):
    def create(self, status: MessageStatus) -> None:
        """Write a new record; it must not exist yet."""
        ...

    def get(self, message_id: str) -> MessageStatus | None: ...
    def delete(self, message_id: str) -> None: ...
    def acquire_lease(self, message_id: str, owner: str, now: datetime, until: datetime) -> LeaseResult:
        """Mark the message sending for ``owner`` until ``until``, unless it is final or leased."""
        ...

    def release_lease(self, status: MessageStatus, owner: str) -> None:
        """Write the attempt's result, only while ``owner`` holds the lease (else LeaseLost)."""
        ...


class FeedbackRecords(Protocol):
    """What upstream feedback (bounces, complaints after delivery) does to status records."""

    def get(self, message_id: str) -> MessageStatus | None: ...
    def get_by_provider_id(self, provider_message_id: str) -> MessageStatus | None:
        """The message an upstream's id names (recorded per recipient by delivery), or None."""
        ...

    def replace(self, status: MessageStatus, expected_updated_at: datetime) -> bool:
        """Write ``status`` only if the stored record's updated_at is still ``expected_updated_at``."""
        ...


@dataclass(frozen=True)
class Cancelled:
    status: MessageStatus


@dataclass(frozen=True)
class NotCancellable:
    state: str


CancelResult = Cancelled | NotCancellable | NoStatus


class Cancellation(Protocol):
    def cancel(self, message_id: str, client_id: str, now: datetime) -> CancelResult:
        """Make the client's message ``cancelled`` if it is queued, scheduled or deferred (one write)."""
        ...


# -- message history (a client's messages, newest first) ------------------------------------------


@dataclass(frozen=True)
class HistoryFilter:
    states: frozenset[str] | None = None
    recipient: str | None = None  # normalised address
    tag: tuple[str, str] | None = None


@dataclass(frozen=True)
class HistoryPage:
    statuses: list[MessageStatus]
    resume_before: str | None  # the position to continue below when the read stopped early, else None


class HistoryStore(Protocol):
    def history(self, client_id: str, *, lower: str, upper: str, matching: HistoryFilter, limit: int) -> HistoryPage:
        """Up to ``limit`` of the client's messages with positions in [lower, upper), newest first."""
        ...


# -- ingress de-duplication (a client re-sending what was already accepted) -----------------------


@dataclass(frozen=True)
class IngressRecord:
    message_id: str
    sha256: str  # of the message as the client sent it (before mailrelay's own header lines)
    status: str  # what the first acceptance answered: queued or scheduled


class IngressLog(Protocol):
    def get(self, client_id: str, key: str, now: datetime) -> IngressRecord | None:
        """The record for ``key`` unless it has expired by ``now``."""
        ...

    def put(self, client_id: str, key: str, record: IngressRecord, expires_at: datetime) -> None: ...


# -- clients ------------------------------------------------------------------------------------


class ClientStore(Protocol):
    def create(self, client: Client, key_hash: str) -> None: ...
    def get(self, client_id: str) -> Client | None: ...
    def find_by_key_hash(self, key_hash: str) -> Client | None: ...
    def list(self) -> list[Client]: ...
    def revoke(self, client_id: str) -> bool: ...
    def update_retention(self, client_id: str, days: int) -> bool:
        """Set an active client's retain_content_days; False when there is no such active client."""
        ...


# -- upstream credentials -------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


class CredentialSource(Protocol):
    def get(self, secret_id: str, *, refresh: bool = False) -> Credentials:
        """The credentials in ``secret_id``; ``refresh`` bypasses any cache (after a 535)."""
        ...


# -- uploads (large attachments) -------------------------------------------------------------------


@dataclass(frozen=True)
class PresignedPut:
    url: str
    headers: dict[str, str]


@dataclass(frozen=True)
class StoredUpload:
    data: bytes  # empty when the object is larger than the caller can accept
    size: int
    declared_size: int | None


class UploadStore(Protocol):
    def presign_put(
        self, key: str, content_type: str, size: int, expires_in: int, metadata: dict[str, str]
    ) -> PresignedPut: ...
    def read(self, key: str, max_bytes: int) -> StoredUpload | None:
        """The upload at ``key``, or None when there is none."""
        ...


# -- retained content (GET /v1/messages/{id}/content) ----------------------------------------------


@dataclass(frozen=True)
class RetainedContent:
    size: int
    data: bytes | None  # the bytes when small enough to answer with, else None
    url: str | None  # else a short-lived link to them


class ContentArchive(Protocol):
    def keep(self, client_id: str, message_id: str, days: int, data: MessageData) -> None:
        """Store the message's content, to be deleted after ``days``."""
        ...

    def fetch(self, client_id: str, message_id: str, days: int, max_inline: int) -> RetainedContent | None:
        """The content, or None when it is no longer there."""
        ...

    def discard(self, client_id: str, message_id: str, days: int) -> None: ...


# -- delivery events ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredEvent:
    position: str  # where the event sits in its client's feed: later events sort after it
    event: Event


@dataclass(frozen=True)
class EventSlice:
    events: list[StoredEvent]
    resume_after: str | None  # the position to continue after (None: nothing was read)
    more: bool  # events may follow ``resume_after`` within the bounds asked for


class EventStore(Protocol):
    def add(self, event: Event, recorded_at: datetime) -> bool:
        """Store the event once: False when an event with its id is already stored (nothing changes)."""
        ...

    def read(
        self,
        client_id: str,
        *,
        after: str | None,
        lower: str,
        upper: str,
        types: frozenset[str] | None,
        message_id: str | None,
        limit: int,
    ) -> EventSlice:
        """The client's events with ``lower <= position < upper`` (and past ``after``), oldest first."""
        ...  # fmt: skip


class EventBus(Protocol):
    def publish(self, events: list[Event]) -> None:
        """Every event reaches the bus, or StorageError (then none is known to be missing: retry them all)."""
        ...


# -- webhooks ------------------------------------------------------------------------------------


class WebhookStore(Protocol):
    def create(self, endpoint: Endpoint) -> None: ...
    def save(self, endpoint: Endpoint) -> None: ...
    def get(self, client_id: str, endpoint_id: str) -> Endpoint | None: ...
    def list(self, client_id: str) -> list[Endpoint]: ...
    def delete(self, client_id: str, endpoint_id: str) -> bool: ...
    def record_attempt(self, client_id: str, endpoint_id: str, attempt: DeliveryAttempt) -> None:
        """Kept for a while (the deliveries log), newest first in ``attempts``."""
        ...

    def attempts(self, client_id: str, endpoint_id: str, limit: int) -> builtins.list[DeliveryAttempt]: ...


class EndpointSlots(Protocol):
    """A bounded number of posts in flight per endpoint, shared by every running webhook function."""

    def acquire(
        self, client_id: str, endpoint_id: str, slots: int, holder: str, now: datetime, until: datetime
    ) -> int | None:
        """A free slot (0 .. slots-1), held by ``holder`` until ``until`` at the latest; None: all are held."""
        ...

    def release(self, client_id: str, endpoint_id: str, slot: int, holder: str) -> None:
        """Free the slot if ``holder`` still holds it (an expired hold may have been taken over)."""
        ...


class EnvelopeBus(Protocol):
    def put(self, envelopes: builtins.list[dict[str, Any]]) -> None:
        """Events that are not about a message (e.g. webhook.disabled) onto the bus, or StorageError."""
        ...


class AddressResolver(Protocol):
    def __call__(self, host: str, port: int) -> list[str]:
        """The host's addresses now (OSError when it does not resolve)."""
        ...


@dataclass(frozen=True)
class PostResult:
    status: int | None  # None: no HTTP answer (refused, reset, timed out)
    seconds: float
    error: str | None = None


class WebhookPoster(Protocol):
    def post(self, target: Target, headers: dict[str, str], body: bytes, timeout: float) -> PostResult:
        """POST ``body`` to ``target.url`` over a connection to ``target.address`` only."""
        ...


# -- the suppression list (addresses a client's mail is not sent to) ------------------------------


@dataclass(frozen=True)
class SuppressionPage:
    entries: list[Suppression]
    resume_after: str | None  # the last address read when more may follow, else None


class SuppressionStore(Protocol):
    def get_many(self, client_id: str, addresses: builtins.list[str]) -> dict[str, Suppression]:
        """The client's entries among ``addresses`` (normalised), expired ones included."""
        ...

    def put(self, client_id: str, entry: Suppression) -> None:
        """Add or replace the entry for ``entry.address``."""
        ...

    def put_many(self, client_id: str, entries: builtins.list[Suppression]) -> None:
        """Add or replace every entry (each address once)."""
        ...

    def add_if_absent(self, client_id: str, entry: Suppression) -> bool:
        """Add the entry unless the address is listed already (False: nothing changed)."""
        ...

    def delete(self, client_id: str, address: str) -> bool: ...
    def page(self, client_id: str, *, after: str | None, reason: str | None, limit: int) -> SuppressionPage:
        """Up to ``limit`` entries in address order after ``after``, of ``reason`` when given."""
        ...
