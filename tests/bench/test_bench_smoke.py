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
