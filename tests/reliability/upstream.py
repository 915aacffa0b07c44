"""A controllable upstream for the ledger: a real aiosmtpd server (STARTTLS required, verified by the
delivery side) whose answers a seeded RNG decides, and which stores every message it receives.

Faults, per transaction: a 4xx/5xx per recipient (at RCPT) or for all (after DATA), the connection
cut after the final "." before any reply, or a stall (no reply until the client's timeout). The
injector can also stop the listener for a while, so that connections are refused.

Every stored copy is written as ``NNNNNN.eml`` plus one line in ``index.jsonl`` (recipients, and
whether the client was told ``250``), so the ledger reconciles from what is on disk.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

# Recipients in this domain are always greylisted: their messages can only expire.
GREYLIST_DOMAIN = "greylist.example.net"

RCPT_REPLIES = {
    421: "421 4.3.2 service shutting down (ledger)",
    451: "451 4.3.0 local error in processing (ledger)",
    452: "452 4.2.2 mailbox full (ledger)",
    550: "550 5.1.1 no such user (ledger)",
    554: "554 5.7.1 rejected by policy (ledger)",
}


class FaultRates:
    def __init__(
        self, rcpt: float = 0.03, data: float = 0.03, cut: float = 0.015, stall: float = 0.006
    ) -> None:  # fmt: skip
        self.rcpt, self.data, self.cut, self.stall = rcpt, data, cut, stall


class UpstreamHandler:
    def __init__(self, folder: Path, rng: random.Random, rates: FaultRates, stall_seconds: float) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.rng = rng
        self.rates = rates
        self.stall_seconds = stall_seconds
        self.injected: Counter[str] = Counter()
        self.enabled = True
        self._lock = threading.Lock()
        self._seq = 0
        self.data_seen = 0
        self._index = (folder / "index.jsonl").open("a", encoding="utf-8")

    def _roll(self, rate: float) -> bool:
        return self.enabled and self.rng.random() < rate

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower().endswith("@" + GREYLIST_DOMAIN):
            return "451 4.7.1 greylisted, try again later (ledger)"
        if self._roll(self.rates.stall / 2):
            self.injected["stall"] += 1
            await asyncio.sleep(self.stall_seconds)
            return "451 4.4.2 too slow (ledger)"
        if self._roll(self.rates.rcpt):
            code = self.rng.choice(sorted(RCPT_REPLIES))
            self.injected[f"rcpt_{code}"] += 1
            return RCPT_REPLIES[code]
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        self.data_seen += 1
        # Rare by rate; one is forced early if none came, so a short run always covers the case.
        forced = self.enabled and self.data_seen == 25 and not self.injected["cut_after_data"]
        if forced or self._roll(self.rates.cut):
            # The final "." arrived; the connection drops before any reply. Half the time it was stored.
            self.injected["cut_after_data"] += 1
            if self.rng.random() < 0.5:
                self.store(data, envelope.rcpt_tos, acked=False)
            if server.transport is not None:
                server.transport.abort()
            return "250 2.0.0 never seen by the client"
        if self._roll(self.rates.stall):
            self.injected["stall"] += 1
            await asyncio.sleep(self.stall_seconds)  # the client has given up by now; we keep the message
            self.store(data, envelope.rcpt_tos, acked=False)
            return "250 2.0.0 too late (ledger)"
        if self._roll(self.rates.data):
            code = self.rng.choice([421, 451, 452, 550, 554])
            self.injected[f"data_{code}"] += 1
            return RCPT_REPLIES[code].replace("(ledger)", "after data (ledger)")
        name = self.store(data, envelope.rcpt_tos, acked=True)
        return f"250 2.0.0 stored as {name}"

    def store(self, data: bytes, rcpt_tos: list[str], *, acked: bool) -> str:
        with self._lock:
            self._seq += 1
            name = f"{self._seq:07d}.eml"
            tmp = self.folder / f".{name}.tmp"
            tmp.write_bytes(data)
            tmp.replace(self.folder / name)
            self._index.write(json.dumps({"file": name, "rcpt": list(rcpt_tos), "acked": acked}) + "\n")
            self._index.flush()
        return name

    def close(self) -> None:
        with self._lock:
            self._index.close()


class FaultyUpstream:
    """The listener can be stopped (connections refused) and started again on the same port."""

    def __init__(self, handler: UpstreamHandler, host: str, port: int, tls: ssl.SSLContext) -> None:
        self.handler = handler
        self.host, self.port, self.tls = host, port, tls
        self._controller: Any = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._controller is not None:
                return
            controller = Controller(
                self.handler, hostname=self.host, port=self.port, tls_context=self.tls, require_starttls=True,
                decode_data=False, data_size_limit=20_000_000, ready_timeout=10, timeout=30,
            )  # fmt: skip
            controller.start()
            self._controller = controller

    def stop(self) -> None:
        with self._lock:
            controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    @property
    def running(self) -> bool:
        return self._controller is not None
