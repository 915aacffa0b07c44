"""A webhook receiver on loopback for tests: verifies each delivery with the `standardwebhooks` library and
answers as told (2xx, 5xx, too late, or by dropping the connection)."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError


class WebhookReceiver:
    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.behaviour: list[str] = []  # one per request: "ok", "503", "slow:<seconds>", "drop"; then "ok"
        self.verified: list[dict[str, Any]] = []  # the envelopes whose signature verified
        self.ids: list[str] = []  # every webhook-id received, verified or not
        self.unverified = 0
        self.raw: list[tuple[bytes, dict[str, str]]] = []  # body and headers of every answered delivery
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.ids.append(self.headers.get("webhook-id", ""))
                what = receiver.behaviour.pop(0) if receiver.behaviour else "ok"
                if what == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if what.startswith("slow:"):
                    time.sleep(float(what.split(":")[1]))
                status = 503 if what == "503" else 204
                if status == 204:
                    receiver.accept(body, dict(self.headers))
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/mailrelay"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def accept(self, body: bytes, headers: dict[str, str]) -> None:
        self.raw.append((body, headers))
        for secret in self.secrets:
            try:
                self.verified.append(Webhook(secret).verify(body, headers))
                return
            except WebhookVerificationError:
                continue
        self.unverified += 1

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
