"""Python load clients for what smtp-source cannot do: STARTTLS+AUTH sessions, idle sessions, large messages."""

from __future__ import annotations

import smtplib
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench.peers import HOST


def message(size: int) -> bytes:
    head = b"From: bench@example.com\r\nTo: sink@example.net\r\nSubject: bench\r\n\r\n"
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor\r\n"
    return head + line * max(1, size // len(line))


def smtplib_load(
    port: int, *, sessions: int, per_session: int, size: int, tls_ca: str | None = None,
    login: tuple[str, str] | None = None,
) -> float:  # fmt: skip
    """Messages per second over ``sessions`` parallel smtplib sessions, each reused for ``per_session``."""
    data = message(size)
    context = ssl.create_default_context(cafile=tls_ca) if tls_ca else None

    def session(_: int) -> None:
        with smtplib.SMTP(HOST, port, local_hostname="client.test", timeout=60) as smtp:
            if context is not None:
                smtp.starttls(context=context)
                smtp.ehlo("client.test")
            if login is not None:
                smtp.login(*login)
            for _ in range(per_session):
                smtp.sendmail("bench@example.com", ["sink@example.net"], data)

    start = time.perf_counter()
    with ThreadPoolExecutor(sessions) as pool:
        list(pool.map(session, range(sessions)))
    return sessions * per_session / (time.perf_counter() - start)


def idle_sessions(port: int, count: int) -> list[socket.socket]:
    """``count`` sessions that got the greeting and said EHLO, then stay idle (the caller closes them)."""
    socks = []
    for _ in range(count):
        s = socket.create_connection((HOST, port), timeout=30)
        s.recv(4096)
        s.sendall(b"EHLO client.test\r\n")
        socks.append(s)
    for s in socks:
        _read_reply(s)
    return socks


def _read_reply(s: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
        last = data.rstrip(b"\r\n").rsplit(b"\r\n", 1)[-1]
        if len(last) >= 4 and last[3:4] == b" " and data.endswith(b"\r\n"):
            return data


def large_messages(port: int, count: int, size: int) -> list[bytes]:
    """``count`` concurrent sessions each sending one message of ``size`` bytes; returns the final replies."""
    line = b"x" * 76 + b"\r\n"
    body = b"From: bench@example.com\r\nTo: sink@example.net\r\nSubject: big\r\n\r\n" + line * (size // len(line))
    replies: list[bytes] = [b""] * count
    barrier = threading.Barrier(count)

    def one(i: int) -> None:
        with socket.create_connection((HOST, port), timeout=300) as s:
            _read_reply(s)
            for command in (b"EHLO client.test", b"MAIL FROM:<bench@example.com>", b"RCPT TO:<sink@example.net>",
                            b"DATA"):  # fmt: skip
                s.sendall(command + b"\r\n")
                _read_reply(s)
            barrier.wait()
            view = memoryview(body)
            for start in range(0, len(body), 1 << 20):
                s.sendall(view[start : start + (1 << 20)])
            s.sendall(b".\r\n")
            replies[i] = _read_reply(s)
            s.sendall(b"QUIT\r\n")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    return replies
