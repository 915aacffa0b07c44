"""The fault-injection ledger: nothing acknowledged is lost, under injected faults.

The short run (400 messages) is part of ``make test``: every message's events also go through moto to the
webhook receiver, which takes more moto calls per message than its delivery, so it runs fewer messages
than the 1,000 it ran before webhooks, in about the same time. The soak (20,000) runs when
MAILRELAY_LEDGER_SOAK=1 (``make soak``); MAILRELAY_LEDGER_MESSAGES / MAILRELAY_LEDGER_SEED override.
Every event also goes to a webhook receiver that fails some deliveries: ``events_lost`` must be 0;
``events_duplicated`` (the same webhook-id verified twice) is allowed and counted.
The harness runs in its own process: the handlers read their settings at import and botocore is patched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOAK = os.environ.get("MAILRELAY_LEDGER_SOAK") == "1"

# Every fault class must have been injected at least once, or the run proves nothing.
REQUIRED = {
    "upstream refuses connections": ("upstream_refuses",),
    "4xx/5xx per recipient": ("rcpt_",),
    "4xx/5xx after DATA": ("data_",),
    "421": ("rcpt_421", "data_421"),
    "451": ("rcpt_451", "data_451"),
    "452": ("rcpt_452", "data_452"),
    "550": ("rcpt_550", "data_550"),
    "554": ("rcpt_554", "data_554"),
    "cut after DATA": ("cut_after_data",),
    "stall": ("stall",),
    "SQS": ("sqs:before", "sqs:after"),
    "S3": ("s3:before", "s3:after"),
    "DynamoDB": ("dynamodb:before", "dynamodb:after"),
    "delivery invocation crash": ("poller_crash",),
    "bridge SIGTERM drain/restart": ("bridge_restart",),
    "webhook receiver 5xx": ("webhook_503",),
    "webhook receiver too late (timeout)": ("webhook_too_late",),
    "webhook receiver drops the connection": ("webhook_drop",),
}


def run_ledger(tmp_path: Path, messages: int, seed: int, drain_timeout: float, timeout: float) -> dict[str, Any]:
    report = tmp_path / "ledger.json"
    command = [sys.executable, "-m", "tests.reliability.ledger", "--messages", str(messages), "--seed", str(seed),
               "--drain-timeout", str(drain_timeout), "--state-dir", str(tmp_path / "state"),
               "--report", str(report)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MAILRELAY_"))}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert report.exists(), f"the ledger did not finish:\n{result.stdout}\n{result.stderr[-5000:]}"
    data: dict[str, Any] = json.loads(report.read_text())
    return data


def check(report: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print(f"\n{report['line']}   ({report['timing']}, seed {report['seed']})")
    outcomes = report["outcomes"]
    assert report["lost"] == [], report["lost"][:20]
    finals = sum(outcomes.get(k, 0) for k in ("delivered", "failed", "expired", "uncertain"))
    assert report["accepted"] == finals, outcomes  # the accounting identity
    assert report["byte_mismatches"] == [], report["byte_mismatches"][:20]
    assert report["duplicates"].get("unexplained", 0) == 0, report["duplicates"]
    # Every stored event reached the receiver, signed; a final state always has its final event there.
    assert report["events"] >= report["accepted"], report["line"]
    assert report["events_lost"] == [], report["events_lost"][:20]
    assert report["final_events_missing"] == [], report["final_events_missing"][:20]
    assert report["events_unverified"] == 0, report["line"]
    assert not [r for r in report["refused"] if "HTTP 5" in r or "returned for two" in r], report["refused"][:20]
    injected = report["injected"]
    missing = [name for name, keys in REQUIRED.items()
               if not any(v > 0 for k, v in injected.items() if k.startswith(keys))]  # fmt: skip
    assert not missing, f"fault classes never injected: {missing}; injected: {injected}"


@pytest.mark.timeout(600)
@pytest.mark.skipif(SOAK, reason="the soak run replaces the short one")
def test_ledger_short(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messages = int(os.environ.get("MAILRELAY_LEDGER_MESSAGES", "400"))
    seed = int(os.environ.get("MAILRELAY_LEDGER_SEED", "7"))
    report = run_ledger(tmp_path, messages, seed, drain_timeout=180, timeout=540)
    assert report["accepted"] >= min(messages, 1000) * 0.98
    check(report, capsys)


@pytest.mark.timeout(4 * 3600)
@pytest.mark.skipif(not SOAK, reason="set MAILRELAY_LEDGER_SOAK=1 (make soak)")
def test_ledger_soak(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messages = int(os.environ.get("MAILRELAY_LEDGER_MESSAGES", "20000"))
    seed = int(os.environ.get("MAILRELAY_LEDGER_SEED", "20000"))
    report = run_ledger(tmp_path, messages, seed, drain_timeout=600, timeout=4 * 3600 - 60)
    assert report["accepted"] >= messages * 0.98
    check(report, capsys)
