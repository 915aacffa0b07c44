"""GET /v1/events: a client's own events, oldest first, page by page with an opaque cursor.

Positions are ``<time stored, microseconds>Z#<event id>``, so they sort in the order events were
stored. The feed only shows events stored at least ``settle_seconds`` ago, so a cursor never
moves past an event that is still being written elsewhere. A cursor holds a position and a digest
of the filters it was issued for; it is read only inside the caller's own events, so editing one
can skip or repeat the caller's events but never reveal another client's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mailrelay.errors import FieldProblem, InvalidRequest
from mailrelay.events.model import EVENT_TYPES
from mailrelay.ids import is_message_id
from mailrelay.listing_params import read_instant, read_limit
from mailrelay.ports import EventStore
from mailrelay.positions import position_bound

DEFAULT_LIMIT = 50
_PARAMETERS = ("since", "type", "message_id", "limit", "cursor")
MAX_LIMIT = 100


@dataclass(frozen=True)
class FeedQuery:
    since: datetime | None
    types: frozenset[str] | None
    message_id: str | None
    limit: int
    after: str | None  # from the cursor

    def fingerprint(self) -> str:
        key = json.dumps([self.since.isoformat() if self.since else None, sorted(self.types or ()), self.message_id])
        return hashlib.sha256(key.encode()).hexdigest()[:16]


def parse_query(params: Mapping[str, str] | None) -> FeedQuery:
    """The query string, checked field by field; every problem is reported at once."""
    params = params or {}
    problems = [FieldProblem(k, "must not be empty") for k in _PARAMETERS if k in params and not params[k]]
    since = read_instant(params, "since", problems)
    types = None
    if params.get("type"):
        types = frozenset(t.strip() for t in params["type"].split(",") if t.strip())
        unknown = sorted(types - set(EVENT_TYPES))
        if unknown:
            problems.append(FieldProblem("type", f"unknown event type {unknown[0]!r}; known: {', '.join(EVENT_TYPES)}"))
    message_id = params.get("message_id") or None
    if message_id is not None and not is_message_id(message_id):
        problems.append(FieldProblem("message_id", "not a message id (32 lower-case hexadecimal digits)"))
    limit = read_limit(params, problems, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    query = FeedQuery(since, types, message_id, limit, None)
    if params.get("cursor") and not problems:
        query, problem = _with_cursor(query, params["cursor"])
        problems += [problem] if problem else []
    if problems:
        summary = "; ".join(f"{p.field}: {p.detail}" for p in problems[:3])
        raise InvalidRequest(f"the request is invalid: {summary}", problems)
    return query


def _with_cursor(query: FeedQuery, cursor: str) -> tuple[FeedQuery, FieldProblem | None]:
    try:
        data: Any = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after, fingerprint = data["after"], data["q"]
        if not (after is None or isinstance(after, str)) or not isinstance(fingerprint, str):
            raise ValueError
    except (ValueError, TypeError, KeyError, binascii.Error, UnicodeDecodeError):
        return query, FieldProblem("cursor", "not a cursor this API issued (pass next_cursor back unchanged)")
    if fingerprint != query.fingerprint():
        return query, FieldProblem("cursor", "issued for other filters: repeat since, type and message_id unchanged")
    return FeedQuery(query.since, query.types, query.message_id, query.limit, after), None


def encode_cursor(after: str | None, query: FeedQuery) -> str:
    raw = json.dumps({"after": after, "q": query.fingerprint()}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class EventFeed:
    def __init__(self, store: EventStore, settle_seconds: float, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.settle = timedelta(seconds=settle_seconds)
        self.clock = clock

    def page(self, client_id: str, params: Mapping[str, str] | None) -> dict[str, Any]:
        query = parse_query(params)
        lower = position_bound(query.since) if query.since else ""
        upper = position_bound(self.clock() - self.settle)
        found = self.store.read(
            client_id, after=query.after, lower=lower, upper=upper, types=query.types,
            message_id=query.message_id, limit=query.limit,
        )  # fmt: skip
        after = found.resume_after or query.after
        return {
            "events": [stored.event.envelope() for stored in found.events],
            "next_cursor": encode_cursor(after, query),
            "has_more": found.more,
        }
