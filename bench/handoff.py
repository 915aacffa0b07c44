"""Time to hand-off: from the API's 202 to the upstream's 250, through the whole local stack.

`mailrelay run` runs as a user runs it (its own process: moto's server for AWS, the API behind the local
HTTP gateway, the SQS trigger emulated with the template's batching window), delivering over STARTTLS to
an upstream in this process that notes when each message's final dot is answered. The same run also
starts the stack with another window, so the two are compared under the same load.

Low rate: one message at a time, the next sent once the previous arrived. High rate: bursts of 100
messages through the batch endpoint, so receives find full batches waiting. Batches are counted at the
upstream: each invocation that reuses the open session starts with a NOOP, a new session with a connection.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from bench.bridge import ROOT
from bench.table import Row
from local_stack.tls import ensure_tls

PREVIOUS_WINDOW = 2.0  # the template's window before this measurement set it to 0


@dataclass
class TimingUpstream:
    """An aiosmtpd handler: when each message (by Subject) was answered, and how many batches came."""

    arrived: dict[str, float] = field(default_factory=dict)
    sessions: set[Session] = field(default_factory=set)
    noops: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_NOOP(self, server: SMTP, session: Session, envelope: Envelope, arg: str) -> str:
        with self.lock:
            self.noops += 1
        return "250 2.0.0 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        subject = str(BytesHeaderParser().parsebytes(envelope.original_content or b"").get("Subject", ""))
        with self.lock:
            self.arrived[subject] = time.time()
            self.sessions.add(session)
        return "250 2.0.0 OK"

    def batches(self) -> int:
        with self.lock:
            return self.noops + len(self.sessions)


@dataclass
class Stack:
    api_url: str
    api_key: str
    upstream: TimingUpstream


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def local_stack(window: float | None) -> Iterator[Stack]:
    """``mailrelay run`` delivering to a timing upstream; ``window`` replaces the template's batching window."""
    with tempfile.TemporaryDirectory(prefix="mailrelay-bench-handoff-") as folder:
        tls = ensure_tls(Path(folder) / "upstream-tls")
        upstream = TimingUpstream()
        controller = Controller(upstream, hostname="127.0.0.1", port=_free_port(), tls_context=tls.server_context(),
                                require_starttls=True, ready_timeout=10)  # fmt: skip
        controller.start()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MAILRELAY_"))}
        env["MAILRELAY_UPSTREAMS"] = json.dumps([{"name": "bench-upstream", "host": "localhost",
                                                  "port": controller.port, "tls": "starttls",
                                                  "ca_file": str(tls.ca_cert)}])  # fmt: skip
        if window is not None:
            env["MAILRELAY_LOCAL_DELIVERY_BATCHING_WINDOW_SECONDS"] = str(window)
        state = Path(folder) / "state"
        command = [sys.executable, "-m", "local_stack.cli", "run", "--state-dir", str(state)]
        for name in ("api", "smtp", "smtps", "capture", "aws", "viewer"):
            command += [f"--{name}-port", str(_free_port())]
        with open(Path(folder) / "stack.log", "w") as log:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            info_file = state / "local.json"
            deadline = time.monotonic() + 90
            while not (info_file.exists() and "pid" in (info := json.loads(info_file.read_text() or "{}"))):
                if process.poll() is not None or time.monotonic() > deadline:
                    log_tail = (Path(folder) / "stack.log").read_text()[-1500:]
                    raise RuntimeError(f"the local stack did not start: {log_tail}")
                time.sleep(0.2)
            yield Stack(info["api_url"], info["api_key"], upstream)
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
            controller.stop()


def _message(subject: str) -> dict[str, Any]:
    return {"from": "app@example.com", "to": ["user@example.org"], "subject": subject,
            "text": "Your password reset code is 123456."}  # fmt: skip


def _send(http: httpx.Client, stack: Stack, subject: str) -> float:
    """Sends one message; the time its 202 came back."""
    response = http.post(f"{stack.api_url}/v1/messages", headers={"Authorization": f"Bearer {stack.api_key}"},
                         json=_message(subject))  # fmt: skip
    if response.status_code != 202:
        raise RuntimeError(f"the API answered {response.status_code}: {response.text[:300]}")
    return time.time()


def _send_batch(http: httpx.Client, stack: Stack, subjects: list[str]) -> float:
    """Sends messages in one batch request; the time its answer came back (each item accepted)."""
    response = http.post(f"{stack.api_url}/v1/messages/batch", headers={"Authorization": f"Bearer {stack.api_key}"},
                         json={"messages": [_message(s) for s in subjects]})  # fmt: skip
    results = response.json().get("results", []) if response.status_code == 200 else []
    if len(results) != len(subjects) or any(r.get("status") != "queued" for r in results):
        raise RuntimeError(f"the batch was not accepted whole: {response.status_code} {response.text[:300]}")
    return time.time()


def _wait_arrived(upstream: TimingUpstream, subjects: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(s in upstream.arrived for s in subjects):
        if time.monotonic() > deadline:
            missing = [s for s in subjects if s not in upstream.arrived]
            raise RuntimeError(f"{len(missing)} of {len(subjects)} messages never reached the upstream")
        time.sleep(0.002)


def low_rate(stack: Stack, count: int, tag: str) -> list[float]:
    """Milliseconds from 202 to the upstream's 250, one message in flight at a time."""
    latencies = []
    with httpx.Client(timeout=30) as http:
        for i in range(count):
            subject = f"{tag} low {i}"
            accepted = _send(http, stack, subject)
            _wait_arrived(stack.upstream, [subject], 30)
            latencies.append((stack.upstream.arrived[subject] - accepted) * 1000)
            time.sleep(0.05)
    return latencies


@dataclass
class Bursts:
    latencies: list[float]
    per_batch: float  # messages per delivery invocation


def bursts(stack: Stack, count: int, size: int, tag: str) -> Bursts:
    """``count`` batch requests of ``size`` messages, one a second: receives find full batches waiting."""
    accepted: dict[str, float] = {}
    batches_before = stack.upstream.batches()
    with httpx.Client(timeout=60) as http:
        for b in range(count):
            subjects = [f"{tag} burst {b} {i}" for i in range(size)]
            at = _send_batch(http, stack, subjects)
            accepted.update(dict.fromkeys(subjects, at))
            time.sleep(1)
    _wait_arrived(stack.upstream, list(accepted), 120)
    latencies = [(stack.upstream.arrived[s] - t) * 1000 for s, t in accepted.items()]
    batches = stack.upstream.batches() - batches_before
    return Bursts(latencies, len(accepted) / batches if batches else float("nan"))


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else values[0]


def measure(quick: bool, runs: int, log: Any) -> list[Row]:
    low_n, burst_n, burst_size = (20, 2, 100) if quick else (50, 5, 100)
    windows: dict[str, float | None] = {"template": None, "previous": PREVIOUS_WINDOW}
    figures: dict[str, dict[str, list[float]]] = {k: {"low50": [], "low99": [], "b50": [], "b99": [], "batch": []}
                                                  for k in windows}  # fmt: skip
    for run in range(runs):
        for key, window in windows.items():
            with local_stack(window) as stack:
                low_rate(stack, 3, f"warm {run}")  # the first invocations are cold starts
                lows = low_rate(stack, low_n, f"{key} {run}")
                burst = bursts(stack, burst_n, burst_size, f"{key} {run}")
            f = figures[key]
            f["low50"].append(statistics.median(lows))
            f["low99"].append(p99(lows))
            f["b50"].append(statistics.median(burst.latencies))
            f["b99"].append(p99(burst.latencies))
            f["batch"].append(burst.per_batch)
            log(
                f"  handoff run {run + 1}/{runs} window {window if window is not None else 'template'}: one at a "
                f"time p50 {f['low50'][-1]:.0f} ms p99 {f['low99'][-1]:.0f} ms; bursts p50 {f['b50'][-1]:.0f} ms "
                f"p99 {f['b99'][-1]:.0f} ms, {burst.per_batch:.1f} msg/invocation"
            )
    ours, peer = f"window {template_window():g} s (template)", f"window {PREVIOUS_WINDOW:g} s"
    t, p = figures["template"], figures["previous"]
    burst = f"bursts of {burst_size}"
    return [
        Row("7 hand-off", f"one at a time: p50, {ours}", t["low50"], peer, p["low50"], "ms", "<= 300",
            higher_is_better=False, note=f"{low_n} messages per run, each sent when the previous arrived; the local "
            "stack (moto's server, one emulated SQS poller), the API over HTTP; from the 202 to the upstream's 250"),
        Row("7 hand-off", f"one at a time: p99, {ours}", t["low99"], peer, p["low99"], "ms", higher_is_better=False),
        Row("7 hand-off", f"{burst}: p50, {ours}", t["b50"], peer, p["b50"], "ms", higher_is_better=False,
            note=f"{burst_n} batch requests of {burst_size} messages per run, one a second; from each batch's 200"),
        Row("7 hand-off", f"{burst}: p99, {ours}", t["b99"], peer, p["b99"], "ms", higher_is_better=False),
        Row("7 hand-off", f"{burst}: messages per delivery invocation, {ours}", t["batch"], peer, p["batch"], "msg",
            note="counted at the upstream: a NOOP starts each invocation on a reused session, a connection a new one"),
    ]  # fmt: skip


def template_window() -> float:
    from local_stack.stack import batching_window
    from local_stack.template import load_template

    deliver = load_template()["Resources"]["DeliverFunction"]["Properties"]
    return batching_window(next(e["Properties"] for e in deliver["Events"].values() if e["Type"] == "SQS"))
