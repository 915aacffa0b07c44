"""The ledger's webhook receiver: verifies every delivery with the `standardwebhooks` library, and some of
the time answers 503, answers too late (after the sender's timeout) or drops the connection unanswered.

What it verified is kept by webhook-id; an id received again after it was verified is a duplicate
(the sender could not know the first copy arrived: too late, or its answer was lost).
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


@dataclass
class ReceiverFaults:
    status_5xx: float = 0.05
    too_late: float = 0.03
    drop: float = 0.03
    late_seconds: float = 1.5  # more than the sender's timeout in the ledger


class FaultyReceiver:
    def __init__(self, rng: random.Random, faults: ReceiverFaults) -> None:
        self.rng = rng
        self.faults = faults
        self.enabled = True
        self.secret = ""
        self.received: dict[str, dict[str, Any]] = {}  # webhook-id -> the verified envelope
        self.copies: Counter[str] = Counter()  # webhook-id -> verified copies
        self.unverified = 0
        self.injected: Counter[str] = Counter()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                fault = receiver._fault()
                if fault == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if fault == "503":
                    self._answer(503)
                    return
                if fault == "too_late":
                    time.sleep(receiver.faults.late_seconds)  # then verified and stored, as a slow receiver does
                self._answer(204 if receiver.accept(body, dict(self.headers)) else 401)

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/ledger"
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _fault(self) -> str | None:
        with self.lock:
            if not self.enabled:
                return None
            draw = self.rng.random()
            for name, rate in (("503", self.faults.status_5xx), ("too_late", self.faults.too_late),
                               ("drop", self.faults.drop)):  # fmt: skip
                if draw < rate:
                    self.injected[f"webhook_{name}"] += 1
                    return name
                draw -= rate
            return None

    def accept(self, body: bytes, headers: dict[str, str]) -> bool:
        try:
            envelope = Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            with self.lock:
                self.unverified += 1
            return False
        with self.lock:
            webhook_id = headers.get("webhook-id", "")
            self.received.setdefault(webhook_id, envelope)
            self.copies[webhook_id] += 1
        return True

    def duplicated(self) -> int:
        with self.lock:
            return sum(n - 1 for n in self.copies.values())
