"""A handler's import loads only what routing a request needs: the models, validation and adapters load with
the first request (or before a SnapStart snapshot), so they are not on every cold start's path twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFERRED = ("mailrelay.models", "mailrelay.clients", "mailrelay.wiring", "mailrelay.adapters", "email_validator",
            "boto3")  # fmt: skip


@pytest.mark.parametrize("handler", ["functions.api.app", "functions.deliver.app"])
def test_importing_a_handler_defers_the_models_and_adapters(handler: str) -> None:
    code = f"import json, sys, {handler}; print(json.dumps(sorted(sys.modules)))"
    env = {"PYTHONPATH": f"{ROOT}:{ROOT / 'layers' / 'core'}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    early = [m for m in loaded if m.startswith(DEFERRED)]
    assert early == [], f"{handler} loads at import: {early[:10]}"
