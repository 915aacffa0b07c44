"""Delivery timelines from the status records: the table holds each message's latest state only, so
the viewer reads it every second and keeps each change it sees (accepted, each attempt with its
upstream and replies, the final state).

The viewer asks a ``TimelineSource`` for a message's timeline. When the delivery-events feed
(``GET /v1/events?message_id=``) exists, a source reading it can be given to the viewer instead of,
or merged with, this one; the page and the JSON API show whatever entries the source returns.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from mailrelay.delivery.replies import describe
from mailrelay.models.status import MessageStatus

logger = logging.getLogger("mailrelay.local.viewer")


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    kind: str  # accepted | scheduled | attempt | delivered | failed | expired | uncertain
    title: str
    details: tuple[str, ...] = ()

    def public_view(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "kind": self.kind, "title": self.title, "details": list(self.details)}


class TimelineSource(Protocol):
    def timeline(self, message_id: str) -> list[TimelineEntry]: ...


@dataclass
class _Seen:
    status: MessageStatus
    entries: list[TimelineEntry] = field(default_factory=list)


def _accepted(status: MessageStatus) -> list[TimelineEntry]:
    via = "the HTTP API" if status.source == "api" else "the SMTP bridge"
    count = len(status.recipients)
    entries = [TimelineEntry(status.created_at, "accepted", f"Accepted through {via}",
                             (f"from {status.mail_from} to {count} recipient{'s' if count != 1 else ''}",
                              f"delivery mode {status.delivery}"))]  # fmt: skip
    if status.send_at is not None:
        entries.append(TimelineEntry(status.created_at, "scheduled", f"Scheduled for {status.send_at.isoformat()}"))
    return entries


def _attempt(status: MessageStatus, previous_attempts: int) -> TimelineEntry:
    changed = [r for r in status.recipients if r.updated_at is not None and r.updated_at == status.updated_at]
    details = [f"{r.address}: {r.state}, {describe(r.reply)}" for r in changed]
    if status.last_error and (not changed or any(r.reply is None for r in changed)):
        details.append(status.last_error)  # e.g. no upstream reachable, or no reply to the final dot
    if not status.is_final and status.next_attempt_at is not None:
        details.append(f"next attempt at {status.next_attempt_at.isoformat()}")
    unseen = status.attempts - previous_attempts - 1
    if unseen > 0:
        details.append(f"({unseen} earlier attempt{'s' if unseen != 1 else ''} not observed)")
    upstream = f" via {status.upstream}" if status.upstream else " (no upstream took it)"
    return TimelineEntry(status.updated_at, "attempt", f"Attempt {status.attempts}{upstream}", tuple(details))


def _final(status: MessageStatus, with_error: bool) -> TimelineEntry:
    titles = {"delivered": "Delivered", "failed": "Failed", "expired": "Expired", "uncertain": "Uncertain"}
    details = (status.last_error,) if status.last_error and with_error else ()
    return TimelineEntry(status.completed_at or status.updated_at, status.state, titles[status.state], details)


def changes(before: MessageStatus | None, after: MessageStatus) -> list[TimelineEntry]:
    """What happened between two readings of one status record."""
    entries = _accepted(after) if before is None else []
    attempts_before = 0 if before is None else before.attempts
    attempted = after.attempts > attempts_before
    if attempted:
        entries.append(_attempt(after, attempts_before))
    was_final = before is not None and before.is_final
    if after.is_final and not was_final and after.state in ("delivered", "failed", "expired", "uncertain"):
        entries.append(_final(after, with_error=not attempted))  # an attempt entry already has the replies
    return entries


class StatusHistory:
    """Reads every status record each ``interval`` seconds and keeps the timeline of each message."""

    def __init__(self, scan: Callable[[], list[MessageStatus]], interval: float = 1.0) -> None:
        self._scan = scan
        self._interval = interval
        self._seen: dict[str, _Seen] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="viewer-status-history", daemon=True)
        self.version = 0  # grows with every change seen: live updates compare it

    def start(self) -> None:
        self.refresh()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.refresh()
            except Exception:  # the stand-in restarting or busy: the next reading catches up
                logger.warning("could not read the status records", exc_info=True)

    def refresh(self) -> None:
        statuses = self._scan()
        with self._lock:
            for status in statuses:
                seen = self._seen.get(status.id)
                if seen is not None and seen.status == status:
                    continue
                if seen is None:
                    seen = self._seen[status.id] = _Seen(status)
                    seen.entries.extend(changes(None, status))
                else:
                    seen.entries.extend(changes(seen.status, status))
                    seen.status = status
                self.version += 1

    def statuses(self) -> list[MessageStatus]:
        with self._lock:
            return [seen.status for seen in self._seen.values()]

    def status(self, message_id: str) -> MessageStatus | None:
        with self._lock:
            seen = self._seen.get(message_id)
            return seen.status if seen else None

    def timeline(self, message_id: str) -> list[TimelineEntry]:
        with self._lock:
            seen = self._seen.get(message_id)
            return list(seen.entries) if seen else []


def dynamo_scan(table: str, client: Any) -> Callable[[], list[MessageStatus]]:
    """Every status record in the (local) messages table (not the links from upstream ids to ours)."""
    from mailrelay.adapters.dynamo import from_item
    from mailrelay.adapters.dynamo_messages import is_provider_link

    def scan() -> list[MessageStatus]:
        found: list[MessageStatus] = []
        for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            for item in page.get("Items", []):
                if is_provider_link(item):
                    continue
                try:
                    found.append(MessageStatus.model_validate(from_item(item)))
                except ValueError:
                    logger.warning("unreadable status record skipped")
        return found

    return scan
