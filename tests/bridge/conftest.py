"""The bridge in-process on loopback (its own event loop in a thread), moto behind it, real clients in front."""

from __future__ import annotations

import asyncio
import base64
import json
import smtplib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import trustme

from local_stack.provision import LocalResources
from mailrelay.settings import get_settings
from mailrelay.wiring import Services
from smtp_bridge.server import Bridge
from smtp_bridge.settings import BridgeSettings

HOST = "127.0.0.1"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


@dataclass
class Certs:
    ca: trustme.CA
    ca_file: Path
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    folder = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    issued = ca.issue_cert("localhost", HOST)
    paths = Certs(ca, folder / "ca.pem", folder / "cert.pem", folder / "key.pem")
    ca.cert_pem.write_to_path(str(paths.ca_file))
    issued.cert_chain_pems[0].write_to_path(str(paths.cert_file))
    for extra in issued.cert_chain_pems[1:]:
        extra.write_to_path(str(paths.cert_file), append=True)
    issued.private_key_pem.write_to_path(str(paths.key_file))
    return paths


@dataclass
class RunningBridge:
    bridge: Bridge
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    certs: Certs
    ports: dict[str, int] = field(default_factory=dict)

    def call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    @property
    def runtime(self) -> Any:
        return self.bridge.runtime

    def starttls(self, login: tuple[str, str] | None = None) -> smtplib.SMTP:
        smtp = smtplib.SMTP(HOST, self.ports["starttls"], local_hostname="client.test", timeout=30)
        smtp.starttls(context=self.certs.client_context())
        smtp.ehlo("client.test")
        if login is not None:
            smtp.login(*login)
        return smtp

    def implicit(self, login: tuple[str, str] | None = None) -> smtplib.SMTP_SSL:
        smtp = smtplib.SMTP_SSL(
            HOST, self.ports["implicit"], local_hostname="client.test", context=self.certs.client_context(), timeout=30
        )
        smtp.ehlo("client.test")
        if login is not None:
            smtp.login(*login)
        return smtp

    def plain(self) -> smtplib.SMTP:
        smtp = smtplib.SMTP(HOST, self.ports["plain"], local_hostname="client.test", timeout=30)
        smtp.ehlo("client.test")
        return smtp


def bridge_settings(certs: Certs, **overrides: Any) -> BridgeSettings:
    values: dict[str, Any] = {
        "hostname": "bridge.test",
        "bind_address": HOST,
        "submission_port": 0,
        "implicit_tls_port": 0,
        "plain_port": None,
        "readiness_port": 0,
        "tls_cert_file": str(certs.cert_file),
        "tls_key_file": str(certs.key_file),
        "auth_failure_delay_seconds": 0.01,
        "drain_grace_seconds": 5,
        "storage_threads": 8,
    }
    values.update(overrides)
    return BridgeSettings.model_validate(values)


@pytest.fixture
def services(aws: LocalResources) -> Services:
    return Services(get_settings())


@pytest.fixture
def shop_key(services: Services) -> str:
    """Client 'shop' may send as anyone at example.com; its SMTP password is its API key."""
    _, key = services.clients.create("shop", ["example.com"])
    return key


@pytest.fixture
def shop_login(shop_key: str) -> tuple[str, str]:
    return ("shop", shop_key)


@pytest.fixture
def start_bridge(aws: LocalResources, services: Services, certs: Certs) -> Iterator[Callable[..., RunningBridge]]:
    """start_bridge(**settings overrides) -> a bridge serving on free loopback ports."""
    running: list[RunningBridge] = []

    def start(**overrides: Any) -> RunningBridge:
        settings = bridge_settings(certs, **overrides)
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()

        async def build() -> Bridge:
            return Bridge(settings, get_settings(), services)

        bridge = asyncio.run_coroutine_threadsafe(build(), loop).result(10)
        handle = RunningBridge(bridge, loop, thread, certs)
        handle.ports = handle.call(bridge.start())
        running.append(handle)
        return handle

    yield start
    for handle in running:
        try:
            if not handle.runtime.draining:
                handle.bridge.settings = handle.bridge.settings.model_copy(update={"drain_grace_seconds": 0})
                handle.call(handle.bridge.drain(), timeout=30)
        finally:
            handle.loop.call_soon_threadsafe(handle.loop.stop)
            handle.thread.join(10)


@pytest.fixture
def queued(aws: LocalResources) -> Callable[[], list[dict[str, Any]]]:
    """Everything on the delivery queue now, each with its payload decoded as ``raw`` (bytes)."""
    sqs = boto3.client("sqs")
    s3 = boto3.client("s3")

    def read() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(
                QueueUrl=aws.names["DeliveryQueue"], MaxNumberOfMessages=10, VisibilityTimeout=600
            ).get("Messages", [])
            if not got:
                return found
            found += [queue_message(message, s3) for message in got]

    return read


def queue_message(message: dict[str, Any], s3: Any) -> dict[str, Any]:
    """An SQS message of the delivery queue as a dict, with its payload decoded as ``raw`` (bytes)."""
    body: dict[str, Any] = json.loads(message["Body"])
    payload = body["payload"]
    if payload["kind"] == "inline":
        body["raw"] = base64.b64decode(payload["data"])
    else:
        body["raw"] = s3.get_object(Bucket=payload["bucket"], Key=payload["key"])["Body"].read()
    return body


@pytest.fixture
def stored_statuses(aws: LocalResources) -> Callable[[], list[dict[str, Any]]]:
    ddb = boto3.client("dynamodb")
    return lambda: ddb.scan(TableName=aws.names["MessagesTable"])["Items"]


@pytest.fixture
def stored_payloads(aws: LocalResources) -> Callable[[], list[str]]:
    s3 = boto3.client("s3")
    return lambda: [o["Key"] for o in s3.list_objects_v2(Bucket=aws.names["PayloadBucket"]).get("Contents", [])]


@pytest.fixture
def nothing_stored(
    queued: Callable[[], list[Any]], stored_statuses: Callable[[], list[Any]], stored_payloads: Callable[[], list[str]]
) -> Callable[[], None]:
    """nothing_stored() asserts that no queue message, status record or payload was written."""

    def check() -> None:
        assert queued() == []
        assert stored_statuses() == []
        assert stored_payloads() == []

    return check


def message(
    subject: str = "Hello", sender: str = "app@example.com", to: str = "someone@example.net", body: str = "Hi there."
) -> bytes:
    """A canonical message (CRLF) without Message-ID or Date."""
    lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", "MIME-Version: 1.0", "", body, ""]
    return "\r\n".join(lines).encode()


class RawSession:
    """An SMTP conversation on a plain socket, byte for byte, for what real clients will not send."""

    def __init__(self, port: int, *, prefix: bytes = b"", timeout: float = 30) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        if prefix:
            self.sock.sendall(prefix)
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def reply(self) -> str:
        """One complete (possibly multi-line) reply; '' when the server closed the connection."""
        lines: list[str] = []
        while True:
            while b"\r\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return "\n".join(lines)
                self.buffer += chunk
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            lines.append(line.decode())
            if len(line) < 4 or line[3:4] != b"-":
                return "\n".join(lines)

    def command(self, line: bytes) -> str:
        self.send(line + b"\r\n")
        return self.reply()

    def closed(self) -> bool:
        """True once the server has closed the connection (reads until EOF)."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except (ConnectionResetError, BrokenPipeError):
            return True

    def close(self) -> None:
        self.sock.close()


def proxy_v2_header(source: str, source_port: int = 40000, dest: str = "10.0.0.1", dest_port: int = 587) -> bytes:
    """PROXY protocol v2, PROXY command, TCP over IPv4 (what an NLB sends)."""
    addresses = socket.inet_aton(source) + socket.inet_aton(dest)
    addresses += source_port.to_bytes(2, "big") + dest_port.to_bytes(2, "big")
    return V2_SIGNATURE + bytes([0x21, 0x11]) + len(addresses).to_bytes(2, "big") + addresses


def proxy_v2_local() -> bytes:
    """PROXY protocol v2, LOCAL command (an NLB health check)."""
    return V2_SIGNATURE + bytes([0x20, 0x00, 0x00, 0x00])
