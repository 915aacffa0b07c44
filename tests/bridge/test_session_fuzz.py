"""Whole SMTP sessions in random order against the real bridge (three listeners, real TLS, moto behind it).

``make test`` runs a hypothesis state machine under the derandomised ``ci`` profile: each rule is one
client step (see ``tests/bridge/fuzz.py``), a failing session shrinks to a short transcript of the bytes
sent and the replies seen. ``make fuzz`` runs the same grammar as a seeded loop of concurrent sessions
(``MAILRELAY_FUZZ_SESSIONS``), reconciling the queue every chunk, and prints a summary.

Properties: every reply well-formed and allowed for its command; no exception logged and no
``handler_exceptions``; queued exactly once what got 250 after the dot, nothing else; and once every
session has closed, no session, transaction, connection count or protocol object left behind.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import os
import random
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import boto3
import pytest
from aiosmtpd.smtp import SMTP
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule, run_state_machine_as_test

from local_stack.provision import LocalResources
from mailrelay.settings import get_settings
from tests.bridge.conftest import RunningBridge, queue_message
from tests.bridge.fuzz import (
    ALLOWED_NETWORKS,
    FAILED_HANDSHAKE_LEAKS,
    Closed,
    Credentials,
    Endpoints,
    Finding,
    FindingError,
    FindingLog,
    Ledger,
    Session,
    Summary,
    Target,
    client_process,
    exception_findings,
    known,
    leftovers,
    live_objects,
    new_session,
)

HANDLER_EXCEPTION = "SMTP session error"  # what the bridge's handle_exception logs
FUZZ_SESSIONS = int(os.environ.get("MAILRELAY_FUZZ_SESSIONS", "0"))
# Small limits, so that oversized messages and the payload store (S3) are reached with small bodies.
CORE_LIMITS = {"MAILRELAY_MAX_MESSAGE_BYTES": "64000", "MAILRELAY_INLINE_PAYLOAD_MAX_BYTES": "16000"}
BRIDGE = {
    "plain_port": 0,
    "allowed_networks": ALLOWED_NETWORKS,
    "auth_failure_delay_seconds": 0,  # the throttle still closes sessions; the delay would only slow the run
    "auth_failure_window_seconds": 1,
    "tls_handshake_timeout_seconds": 3,
    # Every fuzzed session comes from 127.0.0.1, many at once: the caps stand aside (they have their own tests).
    "max_connections": 1_000_000,
    "max_connections_per_client": 1_000_000,
    "task_memory_bytes": 1 << 50,  # the caps stand aside for the fuzzer, so the memory check must too
}


class ExceptionRecords(logging.Handler):
    """Every ERROR record with a traceback, from any logger (the bridge's, aiosmtpd's, asyncio's)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[tuple[int | None, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info is None or record.exc_info[1] is None:
            return
        error = record.exc_info[1]
        self.records.append((_client_port(), f"{record.name}: {record.getMessage()} [{error!r}]"))
        # Keep the traceback as text only: its frames would keep the failed session alive in any handler
        # that stores records (pytest's log capture), which the memory check would count against the bridge.
        record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.exc_info = None

    def take(self) -> list[tuple[int | None, str]]:
        taken, self.records = self.records, []
        return taken


def _client_port() -> int | None:
    """The client port of the SMTP session whose task is logging (the bridge's loop thread), if any."""
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return None
    frame = getattr(task.get_coro(), "cr_frame", None) if task is not None else None
    server = frame.f_locals.get("self") if frame is not None else None
    peer = getattr(getattr(server, "session", None), "peer", None)
    return int(peer[1]) if isinstance(peer, tuple) else None


@dataclass
class FuzzTarget:
    bridge: RunningBridge
    endpoints: Endpoints
    errors: ExceptionRecords
    drain: Callable[[], list[dict[str, Any]]]
    handler_exceptions: int = 0
    failed_handshakes: int = 0
    logged_handler_exceptions: int = 0

    def take_errors(self) -> list[tuple[int | None, str]]:
        records = self.errors.take()
        self.logged_handler_exceptions += sum(HANDLER_EXCEPTION in text for _, text in records)
        return records

    def new_handler_exceptions(self) -> int:
        now = self.bridge.runtime.metrics.snapshot().get("handler_exceptions", 0)
        delta, self.handler_exceptions = now - self.handler_exceptions, now
        return int(delta)

    def settle(self, ledger: Ledger) -> list[Finding]:
        """Once the clients are gone: nothing left open, the queue matches the replies, nothing logged."""
        self.failed_handshakes += ledger.failed_handshakes
        findings = self.released()
        for item in self.drain():
            ledger.record_queued(item["id"], item["raw"])
        findings += ledger.reconcile()
        findings += exception_findings(self.take_errors(), ledger)
        # Each handler exception is also logged (with its traceback, reported above): count the others.
        unlogged = self.new_handler_exceptions() - self.logged_handler_exceptions
        self.logged_handler_exceptions = 0
        if unlogged:
            findings.append(Finding("handler-exceptions", f"handler_exceptions rose by {unlogged} unlogged", []))
        return findings

    def released(self) -> list[Finding]:
        """With no client connected: no session, transaction or connection count left on the bridge."""
        runtime = self.bridge.runtime
        deadline = time.monotonic() + 30
        while self.held(leftovers(runtime)) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = leftovers(runtime)
        if not self.held(left):
            return []
        kind = "not-released"
        if left["sessions"] <= self.failed_handshakes and not left["transactions"]:
            kind = "not-released-after-failed-handshake"
        detail = f"with no client connected the bridge still holds {left}"
        return [Finding(kind, f"{detail}; failed TLS handshakes so far: {self.failed_handshakes}", [])]

    def held(self, left: dict[str, Any]) -> bool:
        allowance = self.failed_handshakes if FAILED_HANDSHAKE_LEAKS else 0
        return left["sessions"] > allowance or left["transactions"] > 0 or left["connections counted"] > allowance


@pytest.fixture
def fuzz_target(
    aws: LocalResources, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[FuzzTarget]:
    for name, value in CORE_LIMITS.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    login: tuple[str, str] = request.getfixturevalue("shop_login")
    bridge: RunningBridge = request.getfixturevalue("start_bridge")(**BRIDGE)
    endpoints = Endpoints(
        ports={k: v for k, v in bridge.ports.items() if k != "readiness"},
        client_context=bridge.certs.client_context(),
        creds=Credentials(*login),
        handshake_timeout=bridge.bridge.settings.tls_handshake_timeout_seconds,
    )
    sqs, s3 = boto3.client("sqs"), boto3.client("s3")
    queue_url = aws.names["DeliveryQueue"]

    def drain() -> list[dict[str, Any]]:
        """Everything queued, removed from the queue (moto's receive slows as the backlog grows)."""
        items: list[dict[str, Any]] = []
        while got := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            items += [queue_message(m, s3) for m in got]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
        return items

    errors = ExceptionRecords()
    root = logging.getLogger()
    root.addHandler(errors)
    # Errors still reach the handler; the per-session INFO and WARNING lines would only cost time.
    chatter = {name: logging.getLogger(name).level for name in ("mailrelay-bridge", "mail.log")}
    logging.getLogger("mailrelay-bridge").setLevel(logging.ERROR)
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    # The bridge's own JSON lines (stdout) are silenced too: ERROR records still reach the root handler.
    printers = {h: h.level for h in logging.getLogger("mailrelay-bridge").handlers}
    for printer in printers:
        printer.setLevel(logging.CRITICAL + 1)
    target = FuzzTarget(bridge, endpoints, errors, drain)
    target.new_handler_exceptions()
    try:
        yield target
    finally:
        root.removeHandler(errors)
        for name, level in chatter.items():
            logging.getLogger(name).setLevel(level)
        for printer, level in printers.items():
            printer.setLevel(level)


# ---------------------------------------------------------------------------------------------------
# make test: the state machine
# ---------------------------------------------------------------------------------------------------


# A Random seeded by hypothesis: reproducible under derandomize, and its draws follow the grammar's weights
# (hypothesis's own draws lean to the first branch of every choice, here: disconnect at once).
RANDOMS = st.randoms(use_true_random=True)


class SessionMachine(RuleBasedStateMachine):
    """One client session at a time; each rule is one step of it; each example ends by reconciling."""

    target: ClassVar[FuzzTarget]
    tolerated: ClassVar[list[Finding]] = []

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.ledger = Ledger()
        self.session: Session | None = None

    @precondition(lambda self: self.session is None)
    @rule(rng=RANDOMS)
    def connect(self, rng: random.Random) -> None:
        self.session = new_session(self.target.endpoints, self.ledger, rng)
        self.drive(self.session.open(rng))

    @precondition(lambda self: self.session is not None)
    @rule(rng=RANDOMS)
    def step(self, rng: random.Random) -> None:
        assert self.session is not None
        self.drive(self.session.step(rng))

    @precondition(lambda self: self.session is not None)
    @rule(rng=RANDOMS)
    def end(self, rng: random.Random) -> None:
        assert self.session is not None
        self.drive(self.session.finish(rng))

    def drive(self, step: Any) -> None:
        session = self.session
        assert session is not None
        try:
            self.loop.run_until_complete(session.guarded(step))
        except Closed:
            pass
        except FindingError:
            session.disconnect("rst")  # the conversation is out of step: end it, whether the finding is known or not
            self.loop.run_until_complete(session.close())
            self.session = None
            self.fail(session.findings[-1:])
        if session.closed:
            self.loop.run_until_complete(session.close())
            self.session = None
        self.fail(exception_findings(self.target.take_errors(), self.ledger))

    def fail(self, findings: list[Finding]) -> None:
        new = [f for f in findings if known(f) is None]
        self.tolerated.extend(f for f in findings if known(f) is not None)
        if new:
            raise AssertionError("\n\n".join(f.render() for f in new))

    def teardown(self) -> None:
        try:
            if self.session is not None:
                self.drive(self.session.finish(random.Random(0)))
            self.fail(self.target.settle(self.ledger))
        finally:
            if self.session is not None:
                self.loop.run_until_complete(self.session.close())
            self.loop.close()


# Enough sessions to reach every step kind many times, within about a minute on two shared cores.
MACHINE_EXAMPLES = 25
MACHINE_STEPS = 30
BRIDGE_CODE = ("*smtp_bridge*", "*aiosmtpd*", "*asyncio*", "*ssl.py")


def bridge_allocated() -> int:
    snapshot = tracemalloc.take_snapshot().filter_traces([tracemalloc.Filter(True, p) for p in BRIDGE_CODE])
    return sum(stat.size for stat in snapshot.statistics("filename"))


def settled_allocation(seconds: float = 5.0) -> tuple[int, int]:
    """What the bridge's code holds at the end of the run, and the least of a few samples over ``seconds``:
    a connection the client dropped mid-handshake is freed only when its handshake times out and the loop
    runs its callbacks, not at once."""
    samples: list[int] = []
    deadline = time.monotonic() + seconds
    while not samples or time.monotonic() < deadline:
        gc.collect()
        samples.append(bridge_allocated())
        time.sleep(0.25)
    return samples[0], min(samples)


def test_random_sessions_get_valid_replies_and_queue_exactly_what_was_acknowledged(fuzz_target):
    SessionMachine.target = fuzz_target
    SessionMachine.tolerated = []
    profile = settings.default
    machine_settings = settings(
        profile,
        max_examples=min(profile.max_examples, MACHINE_EXAMPLES),
        stateful_step_count=MACHINE_STEPS,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    tracemalloc.start()
    try:
        # A short warm-up fills the caches that stay (ssl, asyncio, imports); the run then adds nothing.
        run_state_machine_as_test(SessionMachine, settings=settings(machine_settings, max_examples=3))
        gc.collect()
        baseline = bridge_allocated()
        run_state_machine_as_test(SessionMachine, settings=machine_settings)
        first, settled = settled_allocation()
        grown = settled - baseline
    finally:
        tracemalloc.stop()
    assert fuzz_target.released() == []
    leaked = fuzz_target.failed_handshakes if FAILED_HANDSHAKE_LEAKS else 0  # a known finding, until fixed
    # Room for caches that settle late (an SSL protocol object alone holds a 256 KiB read buffer), and, while
    # the leak lasts, a session's worth per leaked one. A clean-clone CI run holds about 1.9 MiB here, steady
    # over the samples, where other runs hold under 0.3 MiB: 4 MiB leaves room for that; a leak of tens of
    # KiB per session of the run still exceeds it.
    allowed = 4 * 1024 * 1024 + leaked * 320 * 1024
    assert grown < allowed, (f"{grown} bytes allocated by the bridge's code still held after the run ({leaked} "
                             f"leaked; {first - baseline} at the end of the run)")  # fmt: skip


# ---------------------------------------------------------------------------------------------------
# make fuzz: the long run
# ---------------------------------------------------------------------------------------------------

CHUNK = 2000  # sessions between two reconciliations (the queue is drained each time)


@pytest.mark.skipif(not FUZZ_SESSIONS, reason="the long run: make fuzz (MAILRELAY_FUZZ_SESSIONS=n)")
@pytest.mark.timeout(0)
def test_long_fuzz_run(fuzz_target):
    seed = os.environ.get("MAILRELAY_FUZZ_SEED") or f"{random.SystemRandom().getrandbits(32):08x}"
    concurrency = int(os.environ.get("MAILRELAY_FUZZ_CONCURRENCY", "24"))
    processes = int(os.environ.get("MAILRELAY_FUZZ_PROCESSES", "2"))
    bridge = fuzz_target.bridge
    target = Target(fuzz_target.endpoints.ports, str(bridge.certs.ca_file), fuzz_target.endpoints.creds.login_pair,
                    fuzz_target.endpoints.handshake_timeout)  # fmt: skip
    started = time.monotonic()
    log = FindingLog()
    sessions = commands = acknowledged = queued = 0
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
        for first in range(0, FUZZ_SESSIONS, CHUNK):
            numbers = range(first, min(first + CHUNK, FUZZ_SESSIONS))
            parts = [numbers[i::processes] for i in range(processes)]
            ledger = Ledger()
            for part_ledger, part_log in pool.map(client_process, [target] * processes, parts, [seed] * processes,
                                                  [concurrency // processes] * processes):  # fmt: skip
                ledger.merge(part_ledger)
                log.merge(part_log)
            log.add(fuzz_target.settle(ledger))
            sessions += ledger.sessions
            commands += ledger.commands
            acknowledged += len(ledger.acknowledged)
            queued += sum(len(ids) for ids in ledger.queued.values()) + len(ledger.foreign)
            elapsed = time.monotonic() - started
            print(f"fuzz: {sessions} sessions, {log.total()} findings, {elapsed:.0f} s", file=sys.stderr, flush=True)
    fuzz_target.released()  # the last chunk's sessions are gone (its settle reported any left over)
    objects = dict(live_objects((SMTP,)))
    summary = Summary(
        sessions=sessions, commands=commands, findings=log, seconds=time.monotonic() - started,
        acknowledged=acknowledged, queued=queued,
        extra={"seed": seed, "client processes": processes, "concurrent sessions": concurrency,
               "sessions per reconciliation": CHUNK, "failed TLS handshakes (each may leak a session)":
               fuzz_target.failed_handshakes, "bridge protocol objects alive at the end": objects},
    )  # fmt: skip
    print("\n" + summary.render(), flush=True)
    assert log.new() == 0, f"{log.new()} new findings (see the summary above)"
