"""`python -m bench --quick` runs and prints its table (the cold-start case: cheap, no Postfix needed).

No timing assertions: the figures depend on the machine; this only proves the harness works.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_prints_the_table() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--case", "cold"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "IN-PROCESS FAKE" in out
    assert "5 cold start" in out and "import boto3" in out
    assert "FAILED" not in out


def test_the_bench_drives_the_real_handlers() -> None:
    """The delivery and API workers of the bench call the handlers as deployed (a refactor of a handler's
    wiring must not leave the bench measuring something else, or nothing)."""
    import json

    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    from tests.support import free_port

    port = free_port()
    sink = Controller(Sink(), hostname="127.0.0.1", port=port)
    sink.start()
    try:
        for case in (["deliver", "--count", "30", "--port", str(port)],
                     ["api", "--count", "20"]):  # fmt: skip
            done = subprocess.run([sys.executable, "-m", "bench.workers", *case], cwd=ROOT, capture_output=True,
                                  text=True, timeout=300, check=False)  # fmt: skip
            assert done.returncode == 0, done.stderr[-2000:]
            result = json.loads(done.stdout.strip().splitlines()[-1])
            assert result["rate"] > 0
            assert result.get("failures", 0) == 0, result
    finally:
        sink.stop()


def test_the_latency_bench_drives_the_api_as_built() -> None:
    """The API-under-latency workers build the handler as the function does and count its AWS requests."""
    import json

    from bench.cases import _env

    for case in ("single", "baseline", "batch"):
        done = subprocess.run([sys.executable, "-m", "bench.latency", case, "--count", "3"], cwd=ROOT, env=_env(),
                              capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        result = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])
        assert result["calls"].get("sqs.SendMessage", 0) + result["calls"].get("sqs.SendMessageBatch", 0) > 0, result
