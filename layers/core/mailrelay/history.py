"""GET /v1/messages: the calling client's messages, newest first, filtered, page by page.

A message's position is ``<created_at, fixed width>#<id>``, so string order is time order. A cursor
holds the last listed position and the filters it was issued for, signed with a key derived from the
caller's API key: an edited cursor, or one issued to another key, is refused. Reads are keyed by the
caller's client id, so no cursor could reach another client's messages in any case.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

from mailrelay.addresses import parse_address
from mailrelay.cursors import read_signed_cursor, sign_cursor
from mailrelay.errors import FieldProblem, InvalidRequest
from mailrelay.listing_params import read_instant, read_limit
from mailrelay.models.status import MessageState, MessageStatus
from mailrelay.ports import HistoryFilter, HistoryStore
from mailrelay.positions import position_bound, position_of

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
PARAMETERS = ("state", "recipient", "tag", "since", "until", "limit", "cursor")
STATES = get_args(MessageState)
_TAG = re.compile(r"^([A-Za-z0-9_-]{1,128}):([A-Za-z0-9_.:@-]{0,256})$")
_LAST = "\U0010ffff"  # sorts after any id: a bound that includes every message of an instant
_FIRST = "0"  # sorts before every position (DynamoDB refuses an empty string in a key condition)


@dataclass(frozen=True)
class HistoryQuery:
    matching: HistoryFilter
    since: datetime | None
    until: datetime | None
    limit: int
    before: str | None = None  # from the cursor: the last position already listed

    def fingerprint(self) -> str:
        m = self.matching
        key = [sorted(m.states or ()), m.recipient, list(m.tag or ()), _iso(self.since), _iso(self.until)]
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def parse_query(params: Mapping[str, str] | None, cursor_key: bytes) -> HistoryQuery:
    """The query string, each parameter checked; every problem is reported at once."""
    params = params or {}
    problems = [FieldProblem(k, "must not be empty") for k in PARAMETERS if k in params and not params[k]]
    unknown = sorted(set(params) - set(PARAMETERS))
    problems += [FieldProblem(k, f"unknown parameter; known: {', '.join(PARAMETERS)}") for k in unknown]
    states = None
    if params.get("state"):
        states = frozenset(s.strip() for s in params["state"].split(",") if s.strip())
        bad = sorted(states - set(STATES))
        if bad or not states:
            problems.append(
                FieldProblem("state", f"unknown state {bad[0] if bad else ''!r}; one of {', '.join(STATES)}")
            )
    recipient = None
    if params.get("recipient"):
        try:
            recipient = parse_address(params["recipient"], "recipient").smtp.lower()  # matched without case
        except InvalidRequest as exc:
            problems += exc.problems
    tag = None
    if params.get("tag"):
        match = _TAG.match(params["tag"])
        if match is None:
            problems.append(FieldProblem("tag", "name:value, as the tag was given when sending"))
        else:
            tag = (match[1], match[2])
    since, until = read_instant(params, "since", problems), read_instant(params, "until", problems)
    if since and until and since > until:
        problems.append(FieldProblem("since", "must not be later than until"))
    limit = read_limit(params, problems, default=DEFAULT_LIMIT, maximum=MAX_LIMIT)
    query = HistoryQuery(HistoryFilter(states, recipient, tag), since, until, limit)
    if params.get("cursor") and not problems:
        before = read_cursor(params["cursor"], query, cursor_key)
        if before is None:
            problems.append(FieldProblem("cursor", "not a cursor issued for these filters and this API key "
                                         "(pass next_cursor back unchanged, with the same filters)"))  # fmt: skip
        query = HistoryQuery(query.matching, query.since, query.until, query.limit, before)
    if problems:
        summary = "; ".join(f"{p.field}: {p.detail}" for p in problems[:3])
        raise InvalidRequest(f"the request is invalid: {summary}", problems)
    return query


def make_cursor(before: str, query: HistoryQuery, key: bytes) -> str:
    return sign_cursor({"before": before, "q": query.fingerprint()}, key)


def read_cursor(cursor: str, query: HistoryQuery, key: bytes) -> str | None:
    """The position a cursor continues below, or None when it is not one we issued for this query."""
    data = read_signed_cursor(cursor, key)
    before = data.get("before") if data else None
    if not isinstance(before, str) or data is None or data.get("q") != query.fingerprint():
        return None
    return before


def listing(status: MessageStatus) -> dict[str, Any]:
    """One message as a history page shows it."""
    return {
        "id": status.id,
        "created_at": status.created_at.isoformat().replace("+00:00", "Z"),
        "from": status.mail_from,
        "recipients": [{"address": r.address, "state": r.state} for r in status.recipients],
        "subject": status.subject,
        "tags": status.tags,
        "state": status.state,
    }


class MessageHistory:
    def __init__(self, store: HistoryStore) -> None:
        self.store = store

    def page(self, client_id: str, params: Mapping[str, str] | None, cursor_key: bytes) -> dict[str, Any]:
        query = parse_query(params, cursor_key)
        lower = position_bound(query.since) if query.since else _FIRST
        upper = query.before or (position_bound(query.until) + "#" + _LAST if query.until else _LAST)
        # One more than the page: whether there is more is then known without another read.
        found = self.store.history(client_id, lower=lower, upper=upper, matching=query.matching, limit=query.limit + 1)
        shown = found.statuses[: query.limit]
        resume: str | None = None
        if len(found.statuses) > query.limit:
            resume = position_of(shown[-1].created_at, shown[-1].id)
        elif found.resume_before is not None:  # the read stopped early: filters skipped many messages
            resume = found.resume_before
        return {
            "messages": [listing(s) for s in shown],
            "next_cursor": make_cursor(resume, query, cursor_key) if resume else None,
            "has_more": resume is not None,
        }
