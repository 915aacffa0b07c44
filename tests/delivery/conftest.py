"""Real SMTP upstreams on loopback (aiosmtpd with trustme certificates, Postfix's smtp-sink) and a
harness that feeds the real delivery handler the way Lambda's SQS trigger does, against moto."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from mailrelay.delivery.settings import DeliverySettings, delivery_settings_from
from mailrelay.delivery.wiring import build_worker
from mailrelay.delivery.worker import DeliveryWorker
from mailrelay.message_data import MessageData
from mailrelay.models.client import Client
from mailrelay.submission import Submission
from tests.integration.conftest import api as api  # shared fixtures: the real API handler and its services
from tests.integration.conftest import client_key as client_key
from tests.integration.conftest import services as services
from tests.support import LambdaContext, free_port

USER, PASSWORD = "relay-user", "s3cret-pass"


# -- a recording aiosmtpd upstream -------------------------------------------------------------


@dataclass
class Transaction:
    peer: tuple[str, int]
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]


@dataclass
class Recorder:
    """What the upstream saw and how it answers; answers are queues consumed in order."""

    transactions: list[Transaction] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    peers: set[tuple[str, int]] = field(default_factory=set)
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)
    data_delay: float = 0.0
    data_hook: Callable[[], None] | None = None  # runs in a thread during DATA (to hold a transaction open)
    logins: list[str] = field(default_factory=list)
    ehlo_names: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address)
        if reply and not reply.startswith("2"):
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_hook is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.data_hook)
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        reply = self.data_replies.pop(0) if self.data_replies else "250 2.0.0 queued as 42"
        if reply.startswith("2"):
            self.transactions.append(
                Transaction(session.peer, envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content,
                            list(envelope.mail_options))
            )  # fmt: skip
        return reply

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            USER.encode(), PASSWORD.encode(),
        )  # fmt: skip
        self.logins.append(auth_data.login.decode() if isinstance(auth_data, LoginPassword) else mechanism)
        return AuthResult(success=ok, handled=False)

    def count(self, command: str) -> int:
        return sum(1 for c in self.commands if c == command)


class RecordingSMTP(SMTP):
    def __init__(self, handler: Recorder, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.recorder = handler

    async def smtp_EHLO(self, arg):
        self.recorder.commands.append("EHLO")
        self.recorder.ehlo_names.append(arg)
        self.recorder.peers.add(self.session.peer)  # client connections (not the Controller's own probe)
        await super().smtp_EHLO(arg)

    async def smtp_STARTTLS(self, arg):
        self.recorder.commands.append("STARTTLS")
        await super().smtp_STARTTLS(arg)

    async def smtp_AUTH(self, arg):
        self.recorder.commands.append("AUTH")
        await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg):
        self.recorder.commands.append("MAIL")
        await super().smtp_MAIL(arg)

    async def smtp_DATA(self, arg):
        self.recorder.commands.append("DATA")
        await super().smtp_DATA(arg)

    async def smtp_RSET(self, arg):
        self.recorder.commands.append("RSET")
        await super().smtp_RSET(arg)

    async def smtp_NOOP(self, arg):
        self.recorder.commands.append("NOOP")
        await super().smtp_NOOP(arg)


class UpstreamServer(Controller):
    def __init__(self, recorder: Recorder, port: int, **kwargs: Any) -> None:
        super().__init__(recorder, hostname="127.0.0.1", port=port, **kwargs)
        self.recorder = recorder

    def factory(self):
        return RecordingSMTP(self.recorder, **self.SMTP_kwargs)


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca, tmp_path) -> str:
    path = tmp_path / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def server_context(ca: trustme.CA, *names: str):
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*(names or ("localhost", "127.0.0.1"))).configure_cert(context)
    return context


@pytest.fixture
def smtp_server(ca) -> Iterator[Callable[..., UpstreamServer]]:
    """start(mode='starttls'|'implicit'|'plain', auth=True, ca=..., names=..., port=None) -> a running upstream."""
    started: list[UpstreamServer] = []

    def start(mode: str = "starttls", *, auth: bool = True, server_ca: trustme.CA | None = None,
              names: tuple[str, ...] = (), port: int | None = None) -> UpstreamServer:  # fmt: skip
        recorder = Recorder()
        kwargs: dict[str, Any] = {}
        if mode != "plain":
            context = server_context(server_ca or ca, *names)
            if mode == "implicit":
                kwargs["ssl_context"] = context
            else:
                kwargs.update(tls_context=context, require_starttls=True)
        if auth:
            # aiosmtpd only counts STARTTLS as TLS for AUTH; on implicit TLS the whole session is TLS.
            kwargs.update(auth_required=True, authenticator=recorder.authenticate,
                          auth_require_tls=mode != "implicit")  # fmt: skip
        server = UpstreamServer(recorder, port or free_port(), **kwargs)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# -- the delivery harness ------------------------------------------------------------------------


class Clock:
    """The worker's clock: real time plus an offset a test can move forward (no sleeping)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **kwargs: float) -> None:
        self.offset += timedelta(**kwargs)


# Short timeouts: the tests' upstreams are on loopback.
DELIVERY_TEST_SETTINGS = {
    "MAILRELAY_EHLO_NAME": "relay.mailrelay.test", "MAILRELAY_SMTP_CONNECT_TIMEOUT": "2",
    "MAILRELAY_SMTP_REPLY_TIMEOUT": "3", "MAILRELAY_SMTP_DATA_DONE_TIMEOUT": "3",
    "MAILRELAY_SEND_START_RESERVE_SECONDS": "5",
}  # fmt: skip


@dataclass
class Delivery:
    aws: Any
    services: Any
    ca_file: str
    clock: Clock = field(default_factory=Clock)
    deleted: list[str] = field(default_factory=list)
    settings: DeliverySettings | None = None
    worker: DeliveryWorker | None = None
    handler: Any = None

    @property
    def sqs(self):
        return boto3.client("sqs")

    @property
    def queue_url(self) -> str:
        return self.aws.names["DeliveryQueue"]

    def configure(self, *upstreams: dict[str, Any], **env: str) -> None:
        """Point delivery at these upstreams (a cold start: the worker is built again)."""
        from functions.deliver.app import create_handler

        self.close()
        values = {**os.environ, **DELIVERY_TEST_SETTINGS, "MAILRELAY_UPSTREAMS": json.dumps(list(upstreams)), **env}
        values.pop("MAILRELAY_UPSTREAMS_PARAMETER", None)
        self.settings = settings = delivery_settings_from(values)
        self.worker = worker = build_worker(self.services.settings, settings)
        worker.clock = self.clock
        self.handler = create_handler(lambda: worker, lambda: settings)

    def close(self) -> None:
        if self.worker is not None:
            self.worker.pool.close_all()

    def upstream(self, server: UpstreamServer, mode: str = "starttls", **extra: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"host": "localhost", "port": server.port, **extra}
        if mode == "plain":
            entry["insecure_plaintext"] = True
        else:
            entry.update(tls=mode, ca_file=self.ca_file)
        return entry

    def submit(self, data: bytes | None = None, *, rcpt: tuple[str, ...] = ("alice@example.org",),
               mail_from: str = "orders@example.com", **kwargs: Any) -> str:  # fmt: skip
        """Through the real submission path (status record + queue message), as the API does."""
        from mailrelay.ids import new_message_id

        message_id = new_message_id()
        data = data or message_bytes(message_id)
        client = Client(id="shop", allowed_from=("example.com",), created_at=datetime.now(UTC))
        sub = Submission(
            message_id=message_id, mail_from=mail_from, rcpt_to=rcpt, content=MessageData(data), source="api", **kwargs
        )
        self.services.submissions.submit(client, sub)
        return message_id

    def receive(self) -> dict[str, Any]:
        """One SQS event of everything visible, as the event source mapping would build it."""
        records = []
        while len(records) < 10:
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10 - len(records), AttributeNames=["All"]
            ).get("Messages", [])
            if not got:
                break
            records.extend(_record(m, self.aws) for m in got)
        return {"Records": records}

    def invoke(self, event: dict[str, Any], remaining_ms: int = 25_000) -> list[str]:
        """Run the handler; delete the records it did not report (as Lambda does); return the reported ids."""
        assert self.handler is not None, "configure() the upstreams first"
        response = self.handler(event, LambdaContext(remaining_ms))
        failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
        for record in event["Records"]:
            if record["messageId"] not in failed and record["messageId"] not in self.deleted:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=record["receiptHandle"])
                self.deleted.append(record["messageId"])
        return failed

    def status(self, message_id: str):
        return self.services.statuses.get(message_id)

    def visible(self) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["All"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    def in_flight(self) -> int:
        attributes = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["All"])["Attributes"]
        return int(attributes["ApproximateNumberOfMessagesNotVisible"])


def _record(message: dict[str, Any], aws: Any) -> dict[str, Any]:
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {},
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": aws.arns["DeliveryQueue"],
        "awsRegion": "eu-west-1",
    }


def message_bytes(message_id: str, body: bytes = b"Hello.\r\n") -> bytes:
    """Canonical bytes (CRLF), with lines starting with dots to prove dot-stuffing round-trips."""
    return (
        b"From: Shop <orders@example.com>\r\nTo: alice@example.org\r\nSubject: receipt\r\n"
        + f"Message-ID: <{message_id}@mailrelay.local>\r\n".encode()
        + b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        + body
        + b".\r\n..two dots\r\n.leading dot\r\nGr\xc3\xbc\xc3\x9fe\r\n"
    )


@pytest.fixture
def delivery(aws, request, ca_file) -> Iterator[Delivery]:
    harness = Delivery(aws, request.getfixturevalue("services"), ca_file)
    yield harness
    harness.close()


@pytest.fixture
def upstream_secret(aws) -> str:
    client = boto3.client("secretsmanager")
    arn = client.create_secret(Name="mailrelay/upstream", SecretString=json.dumps(
        {"username": USER, "password": PASSWORD}))["ARN"]  # fmt: skip
    return str(arn)


# -- Postfix smtp-sink ----------------------------------------------------------------------------

SMTP_SINK = shutil.which("smtp-sink") or ("/usr/sbin/smtp-sink" if os.path.exists("/usr/sbin/smtp-sink") else None)


@dataclass
class Sink:
    port: int
    dump_dir: Path

    def messages(self) -> list[bytes]:
        return [p.read_bytes() for p in sorted(self.dump_dir.iterdir())]


@pytest.fixture
def smtp_sink() -> Iterator[Callable[..., Sink]]:
    if SMTP_SINK is None:
        pytest.skip("Postfix smtp-sink is not installed (Debian package postfix; `make system-packages`)")
    processes: list[subprocess.Popen[bytes]] = []
    # Run as root, smtp-sink drops to nobody, who cannot enter pytest's private tmp_path.
    dumps = Path(tempfile.mkdtemp(prefix="mailrelay-sink-"))
    dumps.chmod(0o777)

    def start(*options: str) -> Sink:
        dump = dumps / f"sink-{len(processes)}"
        dump.mkdir()
        dump.chmod(0o777)
        port = free_port()
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        process = subprocess.Popen(
            [SMTP_SINK, *user, "-d", f"{dump}/m.", *options, f"127.0.0.1:{port}", "10"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        processes.append(process)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        else:
            pytest.fail(f"smtp-sink did not start: {process.stderr.read() if process.stderr else ''}")
        return Sink(port, dump)

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=5)
    shutil.rmtree(dumps, ignore_errors=True)


@pytest.fixture
def upstream(delivery: Any, smtp_server: Any, upstream_secret: str) -> Any:
    """A STARTTLS upstream that delivery is configured to use, recording what it receives."""
    server = smtp_server("starttls")
    delivery.configure(delivery.upstream(server, "starttls", secret_id=upstream_secret))
    return server
