"""SIGTERM on a real bridge process (against moto's server): the transaction in flight completes, idle
sessions get 421, new connections are refused, and the process exits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from local_stack.provision import provision
from mailrelay.wiring import Services
from tests.bridge.conftest import HOST, Certs, RawSession, message

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def moto_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=HOST, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    yield endpoint
    server.stop()


def wait_for(predicate: Any, what: str, attempts: int = 400) -> Any:
    for _ in range(attempts):
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def refused(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_finishes_the_transaction_in_flight_and_exits(moto_server, certs: Certs, tmp_path: Path):
    session = boto3.session.Session()
    resources = provision(session)
    from mailrelay.settings import settings_from

    env = {**os.environ, **resources.environment}
    _, key = Services(settings_from(env)).clients.create("shop", ["example.com"])
    ports_file = tmp_path / "ports.json"
    env.update({
        "MAILRELAY_BRIDGE_HOSTNAME": "bridge.test", "MAILRELAY_BRIDGE_BIND_ADDRESS": HOST,
        "MAILRELAY_BRIDGE_SUBMISSION_PORT": "0", "MAILRELAY_BRIDGE_IMPLICIT_TLS_PORT": "0",
        "MAILRELAY_BRIDGE_READINESS_PORT": "0", "MAILRELAY_BRIDGE_TLS_CERT_FILE": str(certs.cert_file),
        "MAILRELAY_BRIDGE_TLS_KEY_FILE": str(certs.key_file), "MAILRELAY_BRIDGE_DRAIN_GRACE_SECONDS": "30",
    })  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "smtp_bridge", "--ports-file", str(ports_file)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        ports = wait_for(lambda: ports_file.exists() and json.loads(ports_file.read_text()), "the bridge to listen")
        port = ports["starttls"]

        busy = smtplib.SMTP(HOST, port, local_hostname="busy.client", timeout=30)
        busy.starttls(context=certs.client_context())
        busy.login("shop", key)
        assert busy.mail("app@example.com")[0] == 250
        assert busy.rcpt("a@example.net")[0] == 250
        assert busy.docmd("DATA")[0] == 354
        busy.send(message(subject="in flight")[:40])  # half a message on the wire

        idle = RawSession(port)
        assert idle.reply().startswith("220")
        idle.command(b"EHLO idle.client")

        process.send_signal(signal.SIGTERM)
        assert idle.reply().startswith("421 4.3.2")  # the idle session is told to go away
        assert idle.closed()
        assert refused(port)  # new connections are refused
        assert refused(ports["implicit"])

        busy.send(message(subject="in flight")[40:] + b".\r\n")
        code, reply = busy.getreply()
        assert code == 250, reply  # the transaction in flight completes ...
        with contextlib.suppress(smtplib.SMTPServerDisconnected):  # ... then the session gets 421, closed
            assert busy.noop()[0] == 421
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = process.stdout.read().decode() if process.stdout else ""
    sqs = boto3.client("sqs")
    got = sqs.receive_message(QueueUrl=resources.names["DeliveryQueue"], MaxNumberOfMessages=10)["Messages"]
    assert [json.loads(m["Body"])["id"] for m in got] == [reply.decode().rsplit(" ", 1)[1]]
    assert "SMTP bridge stopped" in output


def test_several_workers_share_the_ports(moto_server, certs: Certs, tmp_path: Path):
    resources = provision(boto3.session.Session())
    from mailrelay.settings import settings_from

    env = {**os.environ, **resources.environment}
    Services(settings_from(env)).clients.create("shop", ["example.com"])
    ports_file = tmp_path / "ports.json"
    env.update({
        "MAILRELAY_BRIDGE_BIND_ADDRESS": HOST, "MAILRELAY_BRIDGE_SUBMISSION_PORT": "",
        "MAILRELAY_BRIDGE_IMPLICIT_TLS_PORT": "",
        "MAILRELAY_BRIDGE_PLAIN_PORT": "0", "MAILRELAY_BRIDGE_READINESS_PORT": "0", "MAILRELAY_BRIDGE_WORKERS": "2",
        "MAILRELAY_BRIDGE_ALLOWED_NETWORKS": '[{"cidr": "127.0.0.0/8", "client_id": "shop"}]',
        "MAILRELAY_BRIDGE_DRAIN_GRACE_SECONDS": "5",
    })  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "smtp_bridge", "--ports-file", str(ports_file)], cwd=ROOT, env=env
    )
    try:
        ports = wait_for(lambda: ports_file.exists() and json.loads(ports_file.read_text()), "the bridge to listen")
        for i in range(4):
            with smtplib.SMTP(HOST, ports["plain"], timeout=30) as smtp:
                assert smtp.sendmail("app@example.com", ["a@example.net"], message(subject=f"w{i}")) == {}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    sqs = boto3.client("sqs")
    seen: set[str] = set()
    while got := sqs.receive_message(QueueUrl=resources.names["DeliveryQueue"], MaxNumberOfMessages=10).get("Messages"):
        seen.update(json.loads(m["Body"])["id"] for m in got)
    assert len(seen) == 4
