"""The benchmark cases. Each returns table rows; every ratio compares values from the same run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import clients, cost, latency, peers
from bench.bridge import ROOT, _tls_files, bridge
from bench.fakes import BENCH_ENV, CLIENT_ID, CLIENT_KEY
from bench.snapstart import snapstart_check
from bench.table import Row

SESSIONS = 20
SIZE = 5 * 1024


@dataclass
class Config:
    quick: bool
    runs: int
    messages: int  # per smtp-source run
    workers: int  # bridge worker processes
    log: Callable[[str], None]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(BENCH_ENV)
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{ROOT / 'layers' / 'core'}"
    return env


def _python(*args: str, timeout: float = 600) -> dict[str, Any]:
    return _python_in(*args, timeout=timeout, env=_env())


def _python_in(*args: str, env: dict[str, str], timeout: float = 600) -> dict[str, Any]:
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=ROOT, check=False)  # fmt: skip
    lines = [line for line in done.stdout.splitlines() if line.startswith("{") and '"_aws"' not in line]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{args} failed: {done.stderr[-1500:]}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


# -- 1 and 2: bridge accept, queue cost ---------------------------------------------------------------


def bridge_accept(cfg: Config) -> list[Row]:
    n, runs = cfg.messages, cfg.runs
    results: dict[str, list[float]] = {k: [] for k in ("pf_new", "br_new", "pf_reuse", "br_reuse", "br1_reuse",
                                                        "py_plain", "py_tls")}  # fmt: skip
    per_session = 20 if cfg.quick else 50
    with contextlib.ExitStack() as stack:
        sink = stack.enter_context(peers.sink())
        postfix = stack.enter_context(peers.postfix(sink.port))
        main = stack.enter_context(bridge(cfg.workers, tls=True))
        one = stack.enter_context(bridge(1)) if cfg.workers != 1 else main
        relayed = 0
        for run in range(runs):
            for reuse, key in ((False, "new"), (True, "reuse")):
                relayed += n
                results[f"pf_{key}"].append(peers.smtp_source(postfix.port, sessions=SESSIONS, messages=n, size=SIZE,
                                                              reuse=reuse).rate)  # fmt: skip
                sink.wait_for(relayed, timeout=600)  # Postfix's relay to the sink is done before the bridge runs
                results[f"br_{key}"].append(peers.smtp_source(main.ports["plain"], sessions=SESSIONS, messages=n,
                                                              size=SIZE, reuse=reuse).rate)  # fmt: skip
                if reuse and one is not main:
                    results["br1_reuse"].append(peers.smtp_source(one.ports["plain"], sessions=SESSIONS, messages=n,
                                                                  size=SIZE, reuse=True).rate)  # fmt: skip
            ca = str(main.dir / "ca.pem")
            results["py_plain"].append(clients.smtplib_load(main.ports["plain"], sessions=SESSIONS,
                                                            per_session=per_session, size=SIZE))  # fmt: skip
            results["py_tls"].append(clients.smtplib_load(main.ports["starttls"], sessions=SESSIONS,
                                                          per_session=per_session, size=SIZE, tls_ca=ca,
                                                          login=(CLIENT_ID, CLIENT_KEY)))  # fmt: skip
            cfg.log(f"  accept run {run + 1}/{runs}: " + ", ".join(f"{k}={v[-1]:.0f}" for k, v in results.items() if v))
    stats = main.stats
    w = f"{cfg.workers} worker{'s' if cfg.workers > 1 else ''}"
    rows = [
        Row("1 accept", f"new connection/msg, bridge {w}", results["br_new"], "Postfix smtpd relay",
            results["pf_new"], "msg/s", ">= 1.2x"),
        Row("1 accept", f"reused connection (-d), bridge {w}", results["br_reuse"], "Postfix smtpd relay",
            results["pf_reuse"], "msg/s", ">= 1.5x"),
    ]  # fmt: skip
    if results["br1_reuse"]:
        rows.append(Row("1 accept", "reused connection (-d), bridge 1 worker", results["br1_reuse"],
                        "Postfix smtpd relay", results["pf_reuse"], "msg/s"))  # fmt: skip
    rows.append(Row("1 accept", f"STARTTLS+AUTH, Python smtplib client, {w}", results["py_tls"],
                    "same client, plain listener", results["py_plain"], "msg/s",
                    note=f"{SESSIONS} threads of one Python process, {per_session} messages per session; "
                         "the client is the bottleneck more than the bridge"))  # fmt: skip
    sqs_requests = stats.calls.get("sqs.SendMessage", 0) + stats.calls.get("sqs.SendMessageBatch", 0)
    queued = stats.calls.get("sqs.messages", 0)
    waits_ms = [w * 1000 for w in stats.waits]
    dynamo_writes = stats.calls.get("dynamodb.PutItem", 0) + stats.calls.get("dynamodb.BatchWriteItem", 0)
    rows += [
        Row("2 queue", "SQS requests per accepted message", [sqs_requests / queued if queued else float("nan")],
            unit="req/msg", goal="<= 0.2", higher_is_better=False,
            note=f"{sqs_requests} requests for {queued} messages over all runs of case 1 ({SESSIONS} sessions)"),
        Row("2 queue", "added wait before the 250 (median)", [statistics.median(waits_ms) if waits_ms else 0.0],
            unit="ms", goal="<= 10", higher_is_better=False,
            note=f"p90 {statistics.quantiles(waits_ms, n=10)[-1]:.1f} ms" if len(waits_ms) > 10 else ""),
        Row("2 queue", "DynamoDB write requests per message", [dynamo_writes / queued if queued else float("nan")],
            unit="req/msg", higher_is_better=False),
    ]  # fmt: skip
    return rows


# -- 3: delivery ----------------------------------------------------------------------------------------


def _deliver_ours(count: int, port: int, processes: int, ca_file: str | None = None) -> float:
    """``processes`` delivery handlers in parallel (as concurrent Lambda instances), each ``count/processes``."""
    per = count // processes
    args = [sys.executable, "-m", "bench.workers", "deliver", "--count", str(per), "--port", str(port)]
    if ca_file:
        args += ["--ca-file", ca_file]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
             for _ in range(processes)]  # fmt: skip
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        lines = [line for line in out.splitlines() if line.startswith('{"rate"')]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"delivery worker failed: {err[-1500:]}")
        results.append(json.loads(lines[-1]))
    if any(r["failures"] for r in results):
        raise RuntimeError(f"delivery reported failures: {results}")
    start = min(r["start"] for r in results)
    end = max(r["end"] for r in results)
    return per * processes / (end - start)


@contextlib.contextmanager
def _tls_sink() -> Iterator[tuple[int, str]]:
    folder = Path(tempfile.mkdtemp(prefix="mailrelay-bench-tls-"))
    try:
        ca, cert, key = _tls_files(folder)
        port_file = folder / "port"
        proc = subprocess.Popen([sys.executable, "-m", "bench.tls_sink", str(cert), str(key), str(port_file)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(), cwd=ROOT,
                                start_new_session=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not port_file.exists() or not port_file.read_text():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("TLS sink did not start")
                time.sleep(0.05)
            yield int(port_file.read_text()), str(ca)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def delivery(cfg: Config) -> list[Row]:
    count = 500 if cfg.quick else 2000
    processes = 2
    ours: list[float] = []
    theirs: list[float] = []
    tls: list[float] = []
    plain_same_run: list[float] = []
    with peers.sink() as sink, _tls_sink() as (tls_port, ca):
        for run in range(cfg.runs):
            with peers.postfix(sink.port, hold=True) as postfix:
                before = sink.messages()
                peers.smtp_source(postfix.port, sessions=SESSIONS, messages=count, size=SIZE, reuse=True)
                postfix.wait_queued(count, timeout=300)
                start = time.perf_counter()
                postfix.flush()
                sink.wait_for(before + count, timeout=600)
                theirs.append(count / (time.perf_counter() - start))
            before = sink.messages()
            ours.append(_deliver_ours(count, sink.port, processes))
            if sink.messages() - before != count:
                raise RuntimeError(f"the sink got {sink.messages() - before} of {count}")
            plain_same_run.append(ours[-1])
            tls.append(_deliver_ours(count, tls_port, processes, ca))
            cfg.log(f"  delivery run {run + 1}/{cfg.runs}: ours={ours[-1]:.0f} postfix={theirs[-1]:.0f} "
                    f"tls={tls[-1]:.0f}")  # fmt: skip
    return [
        Row("3 delivery", f"handler, batches of 10, {processes} processes -> smtp-sink", ours,
            "Postfix smtp client (queued)", theirs, "msg/s", ">= 2.0x",
            note=f"{count} messages of {SIZE} B per run; {processes} handler processes in parallel (like "
                 "concurrent Lambda instances), AWS stubbed, payloads inline; Postfix: held with "
                 "defer_transports, then flushed, timed until smtp-sink counted them all"),
        Row("3 delivery", "same, STARTTLS to an aiosmtpd TLS sink", tls, "same handler, plaintext smtp-sink",
            plain_same_run, "msg/s",
            note="smtp-sink has no TLS: the TLS sink is aiosmtpd (Python, its own process), so this row shows "
                 "what TLS and a slower sink cost together"),
    ]  # fmt: skip


# -- 4: API ---------------------------------------------------------------------------------------------


def api(cfg: Config) -> list[Row]:
    count = 300 if cfg.quick else 2000
    ours, theirs = [], []
    for _ in range(cfg.runs):
        ours.append(_python("-m", "bench.workers", "api", "--count", str(count))["rate"])
        theirs.append(_python("-m", "bench.workers", "api-baseline", "--count", str(count))["rate"])
    return [Row("4 api", "POST /v1/messages, warm invocations", ours, "minimal Powertools handler + SendMessage",
                theirs, "inv/s", ">= 0.5x",
                note="botocore clients answered in-process (Stubber-like before-call hook); no Idempotency-Key; "
                     "log level WARNING on both")]  # fmt: skip


# -- 5: cold start --------------------------------------------------------------------------------------

_IMPORT = "import sys, time\nt = time.perf_counter()\nimport {module}\nprint(time.perf_counter() - t)\n"


def _import_seconds(module: str, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        done = subprocess.run([sys.executable, "-c", _IMPORT.format(module=module)], capture_output=True, text=True,
                              timeout=120, env=_env(), cwd=ROOT, check=True)  # fmt: skip
        times.append(float(done.stdout.strip().splitlines()[-1]))
    return statistics.median(times)


def _first_request_seconds(case: str, prepared: Path, repeat: int, env: dict[str, str]) -> float:
    times = [_python_in("-m", "bench.coldstart", case, str(prepared), env=env)["seconds"] for _ in range(repeat)]
    return statistics.median(times)


@contextlib.contextmanager
def _cold_start_inputs() -> Iterator[tuple[Path, dict[str, str]]]:
    """The first requests' inputs (an API event; a queued record and its status, made by the real submission
    path), and an environment whose upstream is a loopback sink that accepts everything."""
    from aiosmtpd.controller import Controller

    from bench.workers import api_event

    class Accept:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "250 OK"

    queued = _python("-m", "bench.workers", "queued")
    sink = Controller(Accept(), hostname="127.0.0.1", port=peers.free_port())
    sink.start()
    folder = Path(tempfile.mkdtemp(prefix="mailrelay-bench-cold-"))
    try:
        prepared = folder / "first-requests.json"
        prepared.write_text(json.dumps({"event": api_event(), **queued}))
        upstream = {"name": "sink", "host": "127.0.0.1", "port": sink.port, "insecure_plaintext": True}
        yield prepared, {**_env(), "MAILRELAY_UPSTREAMS": json.dumps([upstream]), "MAILRELAY_EHLO_NAME": "bench"}
    finally:
        sink.stop()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def cold_start(cfg: Config) -> list[Row]:
    repeat = 3 if cfg.quick else 5
    modules = {"functions.api.app": "API handler", "functions.deliver.app": "delivery handler",
               "smtp_bridge.server": "SMTP bridge"}  # fmt: skip
    values: dict[str, list[float]] = {m: [] for m in modules}
    boto: list[float] = []
    first: dict[str, list[float]] = {c: [] for c in ("api", "api-baseline", "deliver", "deliver-baseline")}
    with _cold_start_inputs() as (prepared, env):
        for _ in range(cfg.runs):
            boto.append(_import_seconds("boto3", repeat) * 1000)
            for module in modules:
                values[module].append(_import_seconds(module, repeat) * 1000)
            for case, runs in first.items():
                runs.append(_first_request_seconds(case, prepared, repeat, env) * 1000)
    rows = [Row("5 cold start", f"import {m} ({what})", values[m], "import boto3", boto, "ms",
                "<= 1.3x" if m.startswith("functions.") else "", higher_is_better=False,
                note=f"median of {repeat} fresh interpreters per run" if m == "functions.api.app" else "")
            for m, what in modules.items()]  # fmt: skip
    rows += [
        Row("5 cold start", "import + first POST /v1/messages (API handler)", first["api"],
            "minimal Powertools handler + SendMessage, same", first["api-baseline"], "ms", higher_is_better=False,
            note="a realistic cold start: what the import defers, the first request pays (boto3 and the clients "
                 "included; AWS answered in-process)"),
        Row("5 cold start", "import + first batch, 1 record to a loopback SMTP sink (delivery handler)",
            first["deliver"], "minimal Powertools batch + smtplib + one SQS call, same", first["deliver-baseline"],
            "ms", higher_is_better=False),
    ]  # fmt: skip
    return rows


# -- 6: memory ------------------------------------------------------------------------------------------


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def memory(cfg: Config) -> list[Row]:
    idle = 100 if cfg.quick else 500
    big_count, big_size = (4, 5_000_000) if cfg.quick else (10, 20_000_000)
    many_count, many_size = (20, 5_000_000) if cfg.quick else (100, 10_000_000)
    per_session: list[float] = []
    factor: list[float] = []
    many_peak: list[float] = []
    for _ in range(cfg.runs):
        with bridge(1) as br:
            time.sleep(0.5)
            base = _rss_kb(br.pid)
            socks = clients.idle_sessions(br.ports["plain"], idle)
            time.sleep(0.5)
            per_session.append((_rss_kb(br.pid) - base) / idle)
            for s in socks:
                s.close()
        with bridge(1) as br:
            time.sleep(0.5)
            base = _rss_kb(br.pid)
            replies = clients.large_messages(br.ports["plain"], big_count, big_size)
            if not all(r.startswith(b"250") for r in replies):
                raise RuntimeError(f"large messages refused: {[r[:80] for r in replies]}")
            peak = _rss_kb(br.pid, "VmHWM")
            factor.append((peak - base) * 1024 / (big_count * big_size))
        with bridge(1) as br:
            time.sleep(0.5)
            replies = clients.large_messages(br.ports["plain"], many_count, many_size)
            if not all(r.startswith(b"250") for r in replies):
                raise RuntimeError(f"large messages refused: {[r[:80] for r in replies]}")
            many_peak.append(_rss_kb(br.pid, "VmHWM") / 1024)
        cfg.log(f"  memory: {per_session[-1]:.1f} KB/idle session, {factor[-1]:.2f}x bytes in flight, "
                f"{many_peak[-1]:.0f} MB peak for {many_count} x {many_size // 1_000_000} MB")  # fmt: skip
    return [
        Row("6 memory", f"RSS per idle session ({idle} sessions, after EHLO)", per_session, unit="KB",
            goal="< 100", higher_is_better=False),
        Row("6 memory", f"peak RSS added / bytes in flight ({big_count} x {big_size // 1_000_000} MB at once)", factor,
            unit="x", goal="<= 0.5", higher_is_better=False,
            note="one bridge process; DATA is spooled to disk, then streamed to the (fake) S3 PutObject"),
        Row("6 memory", f"peak RSS of the process ({many_count} x {many_size // 1_000_000} MB at once)", many_peak,
            unit="MB", goal="< 1024", higher_is_better=False, note="1024 MB: the task's memory in the template"),
    ]  # fmt: skip


def handoff(cfg: Config) -> list[Row]:
    from bench import handoff as case

    return case.measure(cfg.quick, cfg.runs, cfg.log)


CASES: dict[str, Callable[[Config], list[Row]]] = {
    "accept": bridge_accept, "delivery": delivery, "api": api, "cold": cold_start, "memory": memory,
    "snapstart": snapstart_check, "handoff": handoff, "api-latency": latency.api_latency, "cost": cost.cost,
}  # fmt: skip
