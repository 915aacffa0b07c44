"""Structured logs and counters: JSON log lines, and counters served on /metrics and logged as EMF."""

from __future__ import annotations

import logging
import sys
from collections import Counter
from threading import Lock

from aws_lambda_powertools import Logger
from aws_lambda_powertools import Metrics as EmfMetrics
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "mailrelay-bridge"
NAMESPACE = "mailrelay"

logger = Logger(service=SERVICE, stream=sys.stdout)


def quiet_library_logs() -> None:
    # aiosmtpd logs every command line (addresses, HELO names) at INFO: ours are the structured ones.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("mail.debug").setLevel(logging.ERROR)  # PROXY parse errors: we log our own line


class Metrics:
    """Process-wide counters: replies per class and code, and named events."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = Lock()
        self._emitted: Counter[str] = Counter()

    def incr(self, name: str, value: int = 1) -> None:
        with self._lock:
            self._counts[name] += value

    def reply(self, status: str) -> None:
        code = status[:3]
        if code.isdigit():
            self.incr(f"replies_{code[0]}xx")
            self.incr(f"reply_{code}")

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def emit_emf(self) -> None:
        """The counts since the previous call, as CloudWatch Embedded Metric Format (Powertools Metrics)."""
        with self._lock:
            delta = {k: v - self._emitted[k] for k, v in self._counts.items() if v != self._emitted[k]}
            self._emitted = Counter(self._counts)
        if not delta:
            return
        emf = EmfMetrics(namespace=NAMESPACE, service=SERVICE)
        for name in sorted(delta):
            emf.add_metric(name=name, unit=MetricUnit.Count, value=delta[name])
        emf.flush_metrics()


metrics = Metrics()
