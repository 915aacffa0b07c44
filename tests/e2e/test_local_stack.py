"""`mailrelay run` as a user runs it: a subprocess, real HTTP and SMTP clients, mail in the capture folder."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def stack(tmp_path):
    state = tmp_path / "state"
    ports = {name: free_port() for name in ("api", "smtp", "smtps", "capture", "aws")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MAILRELAY_"))}
    command = [sys.executable, "-m", "mailrelay.cli", "run", "--state-dir", str(state)]
    command += [arg for name, port in ports.items() for arg in (f"--{name}-port", str(port))]
    log = (tmp_path / "stack.log").open("w")
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    info_file = state / "local.json"

    def started():
        if process.poll() is not None:
            raise AssertionError("the stack exited:\n" + (tmp_path / "stack.log").read_text())
        return info_file.exists() and "pid" in json.loads(info_file.read_text())

    try:
        wait_for(started, 60, "the local stack to start")
        yield json.loads(info_file.read_text()), process, ports, tmp_path / "stack.log"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_http_and_smtp_messages_are_delivered_to_the_capture_folder(stack):
    info, process, ports, log = stack
    assert info["api_url"] == f"http://127.0.0.1:{ports['api']}"
    capture = Path(info["capture_dir"])

    # One message through the HTTP API, with a real HTTP client
    response = httpx.post(
        f"{info['api_url']}/v1/messages",
        headers={"Authorization": f"Bearer {info['api_key']}"},
        json={"from": "app@example.com", "to": ["alice@example.org"], "subject": "via HTTP", "text": "hello"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    http_id = response.json()["id"]

    # One through the SMTP bridge: STARTTLS, AUTH, trusting the stack's CA
    message = EmailMessage()
    message["From"] = "legacy@example.com"
    message["To"] = "bob@example.org"
    message["Subject"] = "via SMTP"
    message.set_content("hello over SMTP")
    context = ssl.create_default_context(cafile=info["ca_cert"])
    with smtplib.SMTP(info["smtp_host"], info["smtp_starttls_port"], timeout=30) as smtp:
        smtp.starttls(context=context)
        smtp.login(info["smtp_username"], info["smtp_password"])
        refused = smtp.send_message(message)
        assert refused == {}

    def delivered(message_id):
        got = httpx.get(f"{info['api_url']}/v1/messages/{message_id}",
                        headers={"Authorization": f"Bearer {info['api_key']}"}, timeout=10)  # fmt: skip
        assert got.status_code == 200, got.text
        return got.json()["state"] == "delivered" and got.json()

    status = wait_for(lambda: delivered(http_id), 30, "the HTTP message to be delivered")
    files = wait_for(lambda: len(list(capture.glob("*.eml"))) >= 2 and list(capture.glob("*.eml")), 30, "captures")
    by_hash = {hashlib.sha256(p.read_bytes()).hexdigest(): p.read_bytes() for p in files}
    assert status["sha256"] in by_hash, "the captured bytes differ from what was accepted"
    assert any(b"Subject: via SMTP" in data for data in by_hash.values())

    # Ctrl-C stops everything cleanly, and nothing keeps the ports
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0, log.read_text()
    for port in ports.values():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))


def test_a_taken_port_is_reported_clearly(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "mailrelay.cli", "run", "--state-dir", str(tmp_path), "--api-port", str(port)],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 2
    assert f"api port {port} is already in use" in result.stderr
