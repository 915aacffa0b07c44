"""Query-string parameters the listing endpoints share (GET /v1/messages, GET /v1/events): each read
strictly, each problem added to the caller's list so that all are reported at once."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from pydantic import TypeAdapter, ValidationError

from mailrelay.errors import FieldProblem
from mailrelay.models.fields import Instant

_INSTANT: TypeAdapter[datetime] = TypeAdapter(Instant)


def read_instant(params: Mapping[str, str], name: str, problems: list[FieldProblem]) -> datetime | None:
    if not params.get(name):
        return None
    try:
        return _INSTANT.validate_python(params[name])
    except ValidationError:
        problems.append(FieldProblem(name, "an RFC 3339 date-time with a time zone, e.g. 2026-12-02T09:00:00Z"))
        return None


def read_limit(params: Mapping[str, str], problems: list[FieldProblem], *, default: int, maximum: int) -> int:
    text = params.get("limit")
    if not text:
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= maximum:
        problems.append(FieldProblem("limit", f"an integer from 1 to {maximum}"))
        return default
    return int(text)
