"""In-memory implementations of the core's ports (mailrelay.ports): no moto, no sockets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from mailrelay.events.model import Event
from mailrelay.message_data import MessageData
from mailrelay.models.client import Client
from mailrelay.models.status import MessageStatus
from mailrelay.ports import (
    AlreadyFinal,
    EventSlice,
    Leased,
    LeaseHeld,
    LeaseLost,
    LeaseResult,
    NoStatus,
    OutgoingMessage,
    PresignedPut,
    StorageError,
    StoredEvent,
    StoredUpload,
)
from mailrelay.positions import position_of


@dataclass
class MemoryQueue:
    sent: list[OutgoingMessage] = field(default_factory=list)
    fail_ids: set[str] = field(default_factory=set)  # these entries fail
    down: bool = False  # every call fails

    def send(self, message: OutgoingMessage) -> None:
        if self.down or message.id in self.fail_ids:
            raise StorageError("queue write failed")
        self.sent.append(message)

    def send_batch(self, messages: list[OutgoingMessage]) -> dict[str, StorageError | None]:
        if self.down:
            raise StorageError("queue write failed")
        outcome: dict[str, StorageError | None] = {}
        for message in messages:
            if message.id in self.fail_ids:
                outcome[message.id] = StorageError("entry failed")
            else:
                self.sent.append(message)
                outcome[message.id] = None
        return outcome


@dataclass
class MemoryPayloads:
    objects: dict[str, bytes] = field(default_factory=dict)
    down: bool = False

    @staticmethod
    def key_for(message_id: str) -> str:
        return f"messages/{message_id}.eml"

    @property
    def bucket(self) -> str:
        return "payloads"

    def put(self, key: str, data: MessageData, sha256_hex: str) -> None:
        if self.down:
            raise StorageError("payload write failed")
        self.objects[key] = data.read()

    def get(self, key: str) -> bytes:
        return self.objects[key]

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)


@dataclass
class MemoryStatuses:
    records: dict[str, MessageStatus] = field(default_factory=dict)
    leases: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    down: bool = False

    def create(self, status: MessageStatus) -> None:
        if self.down:
            raise StorageError("status write failed")
        assert status.id not in self.records
        self.records[status.id] = status

    def get(self, message_id: str) -> MessageStatus | None:
        return self.records.get(message_id)

    def delete(self, message_id: str) -> None:
        self.records.pop(message_id, None)

    def acquire_lease(self, message_id: str, owner: str, now: datetime, until: datetime) -> LeaseResult:
        status = self.records.get(message_id)
        if status is None:
            return NoStatus()
        if status.is_final:
            return AlreadyFinal(status)
        held = self.leases.get(message_id)
        if held is not None and held[1] > now:
            return LeaseHeld(held[1])
        self.leases[message_id] = (owner, until)
        self.records[message_id] = status.model_copy(update={"state": "sending", "updated_at": now})
        return Leased(status)

    def release_lease(self, status: MessageStatus, owner: str) -> None:
        if self.leases.get(status.id, ("",))[0] != owner:
            raise LeaseLost(status.id)
        self.records[status.id] = status
        del self.leases[status.id]


@dataclass
class MemoryClients:
    by_id: dict[str, Client] = field(default_factory=dict)
    hashes: dict[str, str] = field(default_factory=dict)  # key hash -> client id

    def create(self, client: Client, key_hash: str) -> None:
        self.by_id[client.id] = client
        self.hashes[key_hash] = client.id

    def get(self, client_id: str) -> Client | None:
        return self.by_id.get(client_id)

    def find_by_key_hash(self, key_hash: str) -> Client | None:
        client_id = self.hashes.get(key_hash)
        return self.by_id.get(client_id) if client_id else None

    def list(self) -> list[Client]:
        return list(self.by_id.values())

    def revoke(self, client_id: str) -> bool:
        client = self.by_id.get(client_id)
        if client is None:
            return False
        self.by_id[client_id] = client.model_copy(update={"state": "revoked"})
        return True

    def update_retention(self, client_id: str, days: int) -> bool:
        client = self.by_id.get(client_id)
        if client is None or client.state != "active":
            return False
        self.by_id[client_id] = client.model_copy(update={"retain_content_days": days})
        return True


@dataclass
class MemoryUploads:
    objects: dict[str, tuple[bytes, int | None]] = field(default_factory=dict)  # key -> (data, declared size)

    def presign_put(
        self, key: str, content_type: str, size: int, expires_in: int, metadata: dict[str, str]
    ) -> PresignedPut:
        return PresignedPut(url=f"memory://{key}", headers={"Content-Type": content_type})

    def read(self, key: str, max_bytes: int) -> StoredUpload | None:
        if key not in self.objects:
            return None
        data, declared = self.objects[key]
        return StoredUpload(data if len(data) <= max_bytes else b"", len(data), declared)


@dataclass
class MemoryEvents:
    by_id: dict[str, StoredEvent] = field(default_factory=dict)
    down: bool = False

    def add(self, event: Event, recorded_at: datetime) -> bool:
        if self.down:
            raise StorageError("event write failed")
        if event.id in self.by_id:
            return False
        self.by_id[event.id] = StoredEvent(position_of(recorded_at, event.id), event)
        return True

    def read(
        self, client_id: str, *, after: str | None, lower: str, upper: str,
        types: frozenset[str] | None, message_id: str | None, limit: int,
    ) -> EventSlice:  # fmt: skip
        matches = sorted(
            (s for s in self.by_id.values()
             if s.event.data.client_id == client_id and lower <= s.position < upper
             and (after is None or s.position > after) and (types is None or s.event.type in types)
             and (message_id is None or s.event.data.message_id == message_id)),
            key=lambda s: s.position,
        )  # fmt: skip
        page = matches[:limit]
        return EventSlice(page, page[-1].position if page else None, len(matches) > limit)


@dataclass
class MemoryBus:
    published: list[Event] = field(default_factory=list)
    down: bool = False

    def publish(self, events: list[Event]) -> None:
        if self.down:
            raise StorageError("PutEvents failed")
        self.published.extend(events)
