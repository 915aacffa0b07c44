"""The local stack as `make run` starts it (a subprocess, real ports), shared by the viewer tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import (
    free_port,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Stack:
    info: dict[str, Any]
    home: Path  # the folder the stack was started in; its .mailrelay/ holds local.json
    log: Path

    @property
    def viewer(self) -> str:
        return str(self.info["viewer_url"])

    def send(self, **message: Any) -> str:
        body = {"from": "app@example.com", "to": ["alice@example.org"], "subject": "Hello", "text": "Hi.", **message}
        response = httpx.post(f"{self.info['api_url']}/v1/messages", json=body, timeout=30,
                              headers={"Authorization": f"Bearer {self.info['api_key']}"})  # fmt: skip
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def viewed(self, message_id: str) -> dict[str, Any]:
        response = httpx.get(f"{self.viewer}/api/v1/messages/{message_id}", timeout=10)
        return response.json() if response.status_code == 200 else {}

    def settled(self, message_id: str, timeout: float = 60) -> dict[str, Any]:
        """The viewer's message once its state is final (the simulator's retries take seconds locally)."""
        final = {"delivered", "failed", "expired"}

        def done() -> dict[str, Any]:
            found = self.viewed(message_id)
            status = found.get("status") or {}
            is_final = found.get("state") in final or (found.get("state") == "uncertain" and status.get(
                "delivery") == "at_most_once")  # fmt: skip
            return found if is_final and found["timeline"][-1]["kind"] == found["state"] else {}

        return wait_for(done, timeout, f"message {message_id} to settle")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("viewer-stack")
    state = home / ".mailrelay"
    ports = {name: free_port() for name in ("api", "smtp", "smtps", "capture", "aws", "viewer")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MAILRELAY_"))}
    command = [sys.executable, "-m", "local_stack.cli", "run", "--state-dir", str(state)]
    command += [arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]
    log = home / "stack.log"
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    info_file = state / "local.json"

    def started() -> bool:
        if process.poll() is not None:
            raise AssertionError("the stack exited:\n" + log.read_text())
        return info_file.exists() and "pid" in json.loads(info_file.read_text())

    try:
        wait_for(started, 60, "the local stack to start")
        yield Stack(json.loads(info_file.read_text()), home, log)
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
