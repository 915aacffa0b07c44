"""The viewer's messages: each status record joined with its captured copy (same SHA-256: the capture
server and the simulator store exactly the bytes mailrelay accepted), and captures with no record
(for instance from before a restart: the AWS stand-in keeps nothing)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from local_stack.viewer.history import StatusHistory, TimelineSource
from local_stack.viewer.mailbox import Captured, Mailbox
from mailrelay.models.status import MessageStatus

SEARCH_FIELDS = ("from", "to", "subject", "state", "id")


@dataclass(frozen=True)
class Entry:
    id: str
    status: MessageStatus | None
    captured: Captured | None

    @property
    def created_at(self) -> datetime:
        if self.status is not None:
            return self.status.created_at
        assert self.captured is not None
        return self.captured.received_at

    @property
    def state(self) -> str:
        return self.status.state if self.status is not None else "captured"

    @property
    def sender(self) -> str:
        if self.captured is not None and self.captured.header("From"):
            return self.captured.header("From")
        return self.status.mail_from if self.status is not None else ""

    @property
    def recipients(self) -> list[str]:
        if self.captured is not None:
            shown = [self.captured.header(name) for name in ("To", "Cc") if self.captured.header(name)]
            if shown:
                return shown
        return [r.address for r in self.status.recipients] if self.status is not None else []

    @property
    def subject(self) -> str:
        return self.captured.header("Subject") if self.captured is not None else ""

    def matches(self, terms: list[tuple[str | None, str]]) -> bool:
        values = {"from": self.sender, "to": " ".join(self.recipients), "subject": self.subject,
                  "state": self.state, "id": self.id}  # fmt: skip
        for name, needle in terms:
            haystack = values[name] if name else " ".join(values.values())
            if needle not in haystack.lower():
                return False
        return True

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mailrelay_id": self.status.id if self.status is not None else None,
            "state": self.state,
            "created_at": self.created_at.isoformat(),
            "from": self.sender,
            "to": self.recipients,
            "subject": self.subject,
            "size": self.status.size if self.status is not None else len(self.captured.raw) if self.captured else 0,
            "attachments": len(self.captured.parts()) if self.captured is not None else 0,
            "captured": self.captured is not None,
        }


def parse_query(query: str) -> list[tuple[str | None, str]]:
    """Words, all of which must match; ``from:``, ``to:``, ``subject:``, ``state:`` or ``id:`` narrow one."""
    terms: list[tuple[str | None, str]] = []
    for word in query.lower().split():
        name, colon, value = word.partition(":")
        if colon and name in SEARCH_FIELDS and value:
            terms.append((name, value))
        else:
            terms.append((None, word))
    return terms


class MailIndex:
    def __init__(self, mailbox: Mailbox, history: StatusHistory, timelines: TimelineSource | None = None) -> None:
        self.mailbox = mailbox
        self.history = history
        self.timelines: TimelineSource = timelines or history
        self._cleared_at: datetime | None = None
        self._lock = threading.Lock()

    def entries(self) -> list[Entry]:
        """Newest first."""
        by_sha: dict[str, Captured] = {}
        for copy in self.mailbox.messages():  # newest first: a message retried keeps its newest copy
            by_sha.setdefault(copy.sha256, copy)
        cleared = self._cleared_at
        found = []
        linked = set()
        for status in self.history.statuses():
            captured = by_sha.get(status.sha256)
            linked.add(status.sha256)
            if cleared is None or status.created_at > cleared or captured is not None:
                found.append(Entry(status.id, status, captured))
        found += [Entry("eml-" + sha[:32], None, c) for sha, c in by_sha.items() if sha not in linked]
        return sorted(found, key=lambda e: e.created_at, reverse=True)

    def search(self, query: str) -> list[Entry]:
        terms = parse_query(query)
        return [e for e in self.entries() if e.matches(terms)]

    def find(self, entry_id: str) -> Entry | None:
        return next((e for e in self.entries() if e.id == entry_id), None)

    def clear(self, now: datetime) -> int:
        """Removes the captured files and hides the records accepted until now; delivery is not touched."""
        with self._lock:
            count = len(self.entries())
            self.mailbox.clear()
            self._cleared_at = now
            self.history.version += 1
        return count

    def version(self) -> str:
        """An ETag for the list: changes with any record or captured file."""
        return f'"{self.history.version}-{hash(self.mailbox.signature()) & 0xFFFFFFFF:x}"'
