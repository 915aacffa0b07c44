"""Starting the bridge under the bench: a subprocess running bench.bridge_proc, stopped with SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fakes import BENCH_ENV, CLIENT_ID
from bench.peers import HOST, wait_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BridgeStats:
    calls: dict[str, int] = field(default_factory=dict)
    waits: list[float] = field(default_factory=list)
    accepted: int = 0


@dataclass
class RunningBridge:
    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    dir: Path
    stats: BridgeStats = field(default_factory=BridgeStats)

    @property
    def pid(self) -> int:
        return self.proc.pid


def _tls_files(folder: Path) -> tuple[Path, Path, Path]:
    import trustme

    ca = trustme.CA()
    issued = ca.issue_cert("localhost", HOST)
    ca_file, cert, key = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    issued.private_key_and_cert_chain_pem.write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    return ca_file, cert, key


@contextlib.contextmanager
def bridge(
    workers: int = 1, *, tls: bool = False, group_commit_ms: float | None = None, **extra: str
) -> Iterator[RunningBridge]:
    folder = Path(tempfile.mkdtemp(prefix="mailrelay-bench-bridge-"))
    env = dict(os.environ)
    env.update(BENCH_ENV)
    env.update({
        "PYTHONPATH": f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}",
        "MAILRELAY_BRIDGE_HOSTNAME": "bridge.bench",
        "MAILRELAY_BRIDGE_BIND_ADDRESS": HOST,
        "MAILRELAY_BRIDGE_PLAIN_PORT": "0",
        "MAILRELAY_BRIDGE_SUBMISSION_PORT": "",
        "MAILRELAY_BRIDGE_IMPLICIT_TLS_PORT": "",
        "MAILRELAY_BRIDGE_READINESS_PORT": "",
        "MAILRELAY_BRIDGE_ALLOWED_NETWORKS": json.dumps([{"cidr": "127.0.0.0/8", "client_id": CLIENT_ID}]),
        "MAILRELAY_BRIDGE_WORKERS": str(workers),
        "MAILRELAY_BRIDGE_MAX_CONNECTIONS": "5000",
        "MAILRELAY_BRIDGE_MAX_CONNECTIONS_PER_CLIENT": "5000",
        # 5,000 sessions' buffers need more than a 1 GB task: the bench machine's memory stands for it.
        "MAILRELAY_BRIDGE_TASK_MEMORY_BYTES": str(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")),
        "MAILRELAY_BRIDGE_DRAIN_GRACE_SECONDS": "2",
        "MAILRELAY_BRIDGE_PORTS_FILE": str(folder / "ports.json"),
    })  # fmt: skip
    if group_commit_ms is not None:
        env["MAILRELAY_BRIDGE_GROUP_COMMIT_MS"] = str(group_commit_ms)
    if tls:
        _ca, cert, key = _tls_files(folder)
        env.update({"MAILRELAY_BRIDGE_SUBMISSION_PORT": "0", "MAILRELAY_BRIDGE_TLS_CERT_FILE": str(cert),
                    "MAILRELAY_BRIDGE_TLS_KEY_FILE": str(key)})  # fmt: skip
    env.update(extra)
    log = (folder / "bridge.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.bridge_proc", str(folder)],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    running: RunningBridge | None = None
    try:
        ports_file = folder / "ports.json"
        deadline = time.monotonic() + 60
        while not ports_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bridge did not start: {(folder / 'bridge.log').read_text()[-2000:]}")
            time.sleep(0.05)
        ports = json.loads(ports_file.read_text())
        for port in ports.values():
            wait_port(port)
        running = RunningBridge(proc, ports, folder)
        yield running
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        with contextlib.suppress(ProcessLookupError):  # forked workers share the session
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        if running is not None:
            running.stats = _collect(folder)
        shutil.rmtree(folder, ignore_errors=True)


def _collect(folder: Path) -> BridgeStats:
    stats = BridgeStats()
    for path in folder.glob("[0-9]*.json"):
        data: dict[str, Any] = json.loads(path.read_text())
        for name, n in data["calls"].items():
            stats.calls[name] = stats.calls.get(name, 0) + n
        stats.waits.extend(data["waits"])
        stats.accepted += data["accepted"]
    return stats
