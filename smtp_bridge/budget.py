"""The bridge's in-flight budget: octets of DATA held at once, across every session of the process.

A message is spooled as it arrives (memory holds a bounded buffer of it, the task's ephemeral disk
the rest), so what runs out under load is that disk. Postfix answers a full queue file system with
``452 4.3.1 Insufficient system storage`` (RFC 3463: mail system storage, persistent transient), which
clients retry; the bridge does the same when a transaction would take it over this budget, instead
of filling the disk and failing every session at once.
"""

from __future__ import annotations

import shutil

from mailrelay.errors import MailrelayError

# A transaction that declares no SIZE is admitted at DATA only while this much of the budget is free.
MIN_RESERVATION = 64 * 1024


class InsufficientStorage(MailrelayError):
    """The message would take the bridge over its in-flight budget: a temporary refusal, nothing stored."""

    def __init__(self) -> None:
        super().__init__("insufficient system storage; try again later")


class InflightBudget:
    """Used from the event loop only (no locking)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def fits(self, size: int) -> bool:
        return self.used + size <= self.limit

    def reserve(self, declared: int | None) -> Reservation | None:
        """Room for a new transaction (its declared SIZE, else a minimum), or None when there is none."""
        size = max(declared or 0, MIN_RESERVATION)
        if not self.fits(size):
            return None
        self.used += size
        return Reservation(self, size)


class Reservation:
    def __init__(self, budget: InflightBudget, size: int) -> None:
        self._budget = budget
        self.size = size

    def grow_to(self, size: int) -> bool:
        """Hold ``size`` octets in all; False (and nothing more held) when the budget cannot."""
        extra = size - self.size
        if extra <= 0:
            return True
        if not self._budget.fits(extra):
            return False
        self._budget.used += extra
        self.size = size
        return True

    def release(self) -> None:
        self._budget.used -= self.size
        self.size = 0


def declared_size(mail_options: list[str]) -> int | None:
    """The SIZE= value of MAIL FROM (RFC 1870), already checked to be digits by aiosmtpd."""
    for option in mail_options:
        name, _, value = option.partition("=")
        if name.upper() == "SIZE" and value.isdigit():
            return int(value)
    return None


def derived_limit(spool_dir: str, workers: int) -> int:
    """The default budget: each worker's share of 80% of the spool's free space when the bridge starts
    (the rest is headroom for logs and the file system's own needs)."""
    return int(shutil.disk_usage(spool_dir).free * 0.8) // workers
