"""The webhook POST's timeout bounds the whole request, even against a receiver that answers a byte at a time."""

from __future__ import annotations

import socket
import threading
import time

from mailrelay.adapters.http_webhooks import HttpWebhookPoster
from mailrelay.webhooks.targets import Target


def trickling_receiver(stop: threading.Event) -> int:
    """Answers every connection one byte of a never-ending header every 0.1 s."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                try:
                    for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                        if stop.is_set():
                            break
                        conn.sendall(bytes([byte]))
                        time.sleep(0.1)
                except OSError:
                    pass
        server.close()

    threading.Thread(target=serve, daemon=True).start()
    return int(server.getsockname()[1])


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_timeout() -> None:
    stop = threading.Event()
    port = trickling_receiver(stop)
    try:
        target = Target(f"http://127.0.0.1:{port}/in", "http", "127.0.0.1", port, "127.0.0.1")
        # Each byte arrives well within 0.5 s, so only a deadline on the whole post can end it.
        result = HttpWebhookPoster().post(target, {"content-type": "application/json"}, b"{}", timeout=0.5)
    finally:
        stop.set()
    assert result.status is None
    assert (result.error or "").startswith("timed out")
