"""The time an invocation has left, so every wait ends before the function would be killed."""

from __future__ import annotations

from collections.abc import Callable


class DeadlineReached(Exception):
    """Too little time is left to start (or keep waiting for) an SMTP exchange."""


class Deadline:
    def __init__(self, remaining_ms: Callable[[], int], margin: float) -> None:
        self._remaining_ms = remaining_ms
        self.margin = margin

    def remaining(self) -> float:
        return self._remaining_ms() / 1000

    def timeout(self, wanted: float) -> float:
        """``wanted``, shortened so that it ends ``margin`` seconds before the deadline."""
        left = self.remaining() - self.margin
        if left <= 0:
            raise DeadlineReached(f"{self.remaining():.1f}s left")
        return min(wanted, left)

    @classmethod
    def unlimited(cls) -> Deadline:
        return cls(lambda: 10**9, 0.1)
