"""`mailrelay run` as a user runs it: a subprocess, real HTTP and SMTP clients, mail in the capture folder."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import json
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stack(tmp_path, request):
    """The stack as a subprocess; ``@pytest.mark.parametrize("stack", [{VAR: value}], indirect=True)`` sets
    the developer's environment it starts in."""
    state = tmp_path / "state"
    ports = {name: free_port() for name in ("api", "smtp", "smtps", "capture", "aws", "viewer")}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MAILRELAY_"))}
    env |= getattr(request, "param", {})
    command = [sys.executable, "-m", "local_stack.cli", "run", "--state-dir", str(state)]
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
            [sys.executable, "-m", "local_stack.cli", "run", "--state-dir", str(tmp_path), "--api-port", str(port)],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 2
    assert f"api port {port} is already in use" in result.stderr


def test_a_request_over_lambdas_6_mb_is_answered_as_api_gateway_does(stack):
    info, *_ = stack
    headers = {"Authorization": f"Bearer {info['api_key']}", "Content-Type": "application/json"}

    def send(attachment_bytes: int) -> httpx.Response:
        content = base64.b64encode(b"x" * attachment_bytes).decode()
        body = {"from": "app@example.com", "to": ["a@example.org"], "text": "t",
                "attachments": [{"filename": "big.bin", "content": content}]}  # fmt: skip
        return httpx.post(f"{info['api_url']}/v1/messages", headers=headers, content=json.dumps(body), timeout=60)

    # 6.5 MB: the event would exceed Lambda's 6 MB invoke; the gateway answers, the function never runs
    over_lambda = send(4_875_000)
    assert over_lambda.status_code == 413
    assert over_lambda.headers["content-type"] == "application/json"
    assert over_lambda.json() == {"message": "Request Entity Too Large"}
    # just under Lambda's limit, over ours: our problem, pointing to the upload path
    over_ours = send(4_680_000)
    assert over_ours.status_code == 413
    assert over_ours.headers["content-type"] == "application/problem+json"
    assert "POST /v1/uploads" in over_ours.json()["detail"]


@pytest.mark.parametrize("stack", [{"MAILRELAY_MAX_MESSAGE_BYTES": "15000000"}], indirect=True)
def test_a_9_mb_attachment_through_a_presigned_upload_arrives_intact(stack):
    """9 MB of attachment is 12.2 MB once MIME-encoded, so this stack allows 15 MB messages (the
    default 10 MB limit counts the message as sent, and fits attachments up to about 7.3 MB)."""
    info, *_ = stack
    auth = {"Authorization": f"Bearer {info['api_key']}"}
    data = os.urandom(9_000_000)
    wanted = {"filename": "big.bin", "content_type": "application/octet-stream", "size": len(data)}
    created = httpx.post(f"{info['api_url']}/v1/uploads", headers=auth, json=wanted, timeout=30)
    assert created.status_code == 201, created.text
    upload = created.json()
    assert upload["method"] == "PUT" and upload["upload_id"].startswith("upl_")
    put = httpx.put(upload["url"], content=data, headers=upload["headers"], timeout=60)
    assert put.status_code == 200, put.text

    sent = httpx.post(f"{info['api_url']}/v1/messages", headers=auth, timeout=60, json={
        "from": "app@example.com", "to": ["alice@example.org"], "subject": "big", "text": "see attached",
        "attachments": [{"filename": "big.bin", "upload_id": upload["upload_id"]}]})  # fmt: skip
    assert sent.status_code == 202, sent.text

    capture = Path(info["capture_dir"])
    found = wait_for(lambda: [p for p in capture.glob("*.eml") if b"Subject: big" in p.read_bytes()[:4096]], 60,
                     "the message in the capture folder")  # fmt: skip
    parsed = email.message_from_bytes(found[0].read_bytes(), policy=email.policy.default)
    (attachment,) = list(parsed.iter_attachments())
    assert attachment.get_filename() == "big.bin"
    assert hashlib.sha256(attachment.get_content()).hexdigest() == hashlib.sha256(data).hexdigest()

    # the same upload id from another client is not found
    other = httpx.post(f"{info['api_url']}/v1/messages", headers=auth, timeout=30, json={
        "from": "app@example.com", "to": ["alice@example.org"], "text": "x",
        "attachments": [{"filename": "big.bin", "upload_id": "upl_" + "0" * 32}]})  # fmt: skip
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "attachments[0].upload_id"


@pytest.mark.parametrize("stack", [{"MAILRELAY_MAX_MESSAGE_BYTES": "25000000"}], indirect=True)
def test_a_20_mb_message_streamed_through_the_bridge_arrives_byte_identical(stack):
    """The bridge spools it as it arrives and streams it to S3; delivery hands the same bytes upstream."""
    info, *_ = stack
    line = b"0123456789abcdefghijklmnopqrstuvwxyz" * 2 + b"\r\n"
    sent = (b"From: legacy@example.com\r\nTo: bob@example.org\r\nSubject: twenty megabytes\r\n"
            b"Message-ID: <twenty@example.com>\r\nDate: Wed, 02 Dec 2026 07:00:00 +0000\r\n\r\n"
            + line * (20_000_000 // len(line)))  # fmt: skip
    context = ssl.create_default_context(cafile=info["ca_cert"])
    with smtplib.SMTP(info["smtp_host"], info["smtp_starttls_port"], timeout=120) as smtp:
        smtp.starttls(context=context)
        smtp.login(info["smtp_username"], info["smtp_password"])
        assert smtp.mail("legacy@example.com")[0] == 250
        assert smtp.rcpt("bob@example.org")[0] == 250
        code, reply = smtp.data(sent)
    assert code == 250, reply
    message_id = reply.decode().rsplit(" ", 1)[-1]

    auth = {"Authorization": f"Bearer {info['api_key']}"}
    status = httpx.get(f"{info['api_url']}/v1/messages/{message_id}", headers=auth, timeout=10).json()
    capture = Path(info["capture_dir"])
    found = wait_for(lambda: [p for p in capture.glob("*.eml") if b"<twenty@example.com>" in p.read_bytes()[:4096]],
                     120, "the message in the capture folder")  # fmt: skip
    arrived = found[0].read_bytes()
    assert hashlib.sha256(arrived).hexdigest() == status["sha256"]
    # What arrived is what was sent, after the one header the bridge adds (Received:).
    assert arrived.startswith(b"Received: ") and arrived.endswith(sent)
    assert arrived.count(b"\r\n\r\n") >= 1 and len(arrived) - len(sent) < 1024
