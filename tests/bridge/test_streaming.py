"""DATA is streamed: a message costs the bridge a bounded buffer, not its size, and the process-wide
in-flight budget answers 452 4.3.1 (retried by clients) instead of letting the task run out of room."""

from __future__ import annotations

import hashlib
import smtplib
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from tests.bridge.conftest import message

LINE = b"y" * 998 + b"\r\n"


def body_of(size: int) -> bytes:
    return LINE * (size // len(LINE))


def open_data(bridge: Any, login: tuple[str, str], **mail: Any) -> smtplib.SMTP:
    """A session that has said DATA and got 354; the caller sends the message."""
    smtp = bridge.starttls(login)
    assert smtp.mail("app@example.com", **mail)[0] == 250
    assert smtp.rcpt("a@example.net")[0] == 250
    smtp.putcmd("data")
    code, reply = smtp.getreply()
    assert code == 354, reply
    return smtp


def finish(smtp: smtplib.SMTP) -> tuple[int, bytes]:
    smtp.send(b".\r\n")
    return smtp.getreply()


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_transactions_over_the_in_flight_budget_get_452_while_others_get_250(start_bridge, shop_login, queued):
    bridge = start_bridge(inflight_bytes=3_000_000)
    budget = bridge.runtime.budget
    big = message(subject="big").replace(b"Hi there.\r\n", body_of(2_000_000))

    holding = open_data(bridge, shop_login)  # 2 MB in flight, its final dot not sent yet
    holding.send(big)
    wait_until(lambda: budget.used >= 2_000_000, "the first message to be read")

    # A declared SIZE that does not fit now is refused at MAIL FROM.
    with bridge.starttls(shop_login) as declared:
        code, reply = declared.mail("app@example.com", options=["SIZE=2000000"])
        assert (code, reply[:5]) == (452, b"4.3.1"), reply
    # Without SIZE, the message is refused once it takes the process over the budget, after its dot.
    undeclared = open_data(bridge, shop_login)
    undeclared.send(big)
    code, reply = finish(undeclared)
    assert (code, reply[:5]) == (452, b"4.3.1"), reply
    # The session goes on: the client may retry in it (here a small message, which fits).
    assert undeclared.mail("app@example.com")[0] == 250
    undeclared.rcpt("a@example.net")
    assert undeclared.data(message(subject="small"))[0] == 250

    assert finish(holding)[0] == 250
    holding.quit()
    # The budget is free again: the refused message now goes through.
    again = open_data(bridge, shop_login, options=["SIZE=2000000"])
    again.send(big)
    assert finish(again)[0] == 250
    again.quit()
    undeclared.quit()

    assert budget.used == 0
    subjects = sorted(m["raw"].split(b"Subject: ")[1].split(b"\r\n")[0] for m in queued())
    assert subjects == [b"big", b"big", b"small"]
    assert bridge.runtime.metrics.snapshot()["budget_refused"] == 2


def test_a_message_over_the_size_limit_gets_552_without_being_held(start_bridge, shop_login, nothing_stored):
    bridge = start_bridge()
    limit = bridge.runtime.size_limit
    smtp = open_data(bridge, shop_login)
    tracemalloc.start()
    try:
        smtp.send(message().replace(b"Hi there.\r\n", b""))
        for _ in range(3 * limit // len(LINE) // 100):  # three times the limit, 100 lines at a time
            smtp.send(LINE * 100)
        code, reply = finish(smtp)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (code, reply[:5]) == (552, b"5.3.4"), reply
    assert peak < limit // 4, f"{peak} octets traced while refusing a {3 * limit}-octet message"
    smtp.quit()
    nothing_stored()


def test_a_large_message_is_spooled_not_held_in_memory_and_arrives_whole(start_bridge, shop_login, queued):
    bridge = start_bridge()
    data = message(subject="spooled").replace(b"Hi there.\r\n", body_of(8_000_000))
    smtp = open_data(bridge, shop_login)
    tracemalloc.start()
    try:
        smtp.send(data)
        wait_until(lambda: bridge.runtime.budget.used >= len(data), "the message to be read")
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 1_000_000, f"{held} octets in memory for an {len(data)}-octet message being received"
    code, reply = finish(smtp)
    assert code == 250, reply
    smtp.quit()
    (stored,) = queued()
    assert stored["payload"]["kind"] == "s3"
    assert stored["raw"].endswith(data)
    assert stored["sha256"] == hashlib.sha256(stored["raw"]).hexdigest()


def test_a_message_cut_off_before_its_final_dot_stores_nothing_and_frees_its_budget(
    start_bridge, shop_login, nothing_stored
):
    bridge = start_bridge()
    smtp = open_data(bridge, shop_login)
    smtp.send(message().replace(b"Hi there.\r\n", body_of(500_000)))
    wait_until(lambda: bridge.runtime.budget.used >= 500_000, "the message to be read")
    smtp.close()  # the connection drops, no QUIT
    wait_until(lambda: bridge.runtime.budget.used == 0 and not bridge.runtime.sessions, "the session to end")
    nothing_stored()
