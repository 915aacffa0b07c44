"""Upstream SMTP credentials: what the SMTP client needs from wherever they are kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


class CredentialSource(Protocol):
    def get(self, secret_id: str, *, refresh: bool = False) -> Credentials:
        """The credentials in ``secret_id``; ``refresh`` bypasses any cache (after a 535)."""
        ...
