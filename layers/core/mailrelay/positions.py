"""Positions in a client's time-ordered listings (message history, the events feed).

A position is ``<instant, fixed width, UTC>#<id>``, so string order is time order, and DynamoDB sort
keys built from it can be read in ranges.
"""

from __future__ import annotations

from datetime import UTC, datetime


def position_bound(instant: datetime) -> str:
    """Sorts before every position at or after ``instant`` and after every earlier one."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def position_of(instant: datetime, item_id: str) -> str:
    return f"{position_bound(instant)}#{item_id}"
