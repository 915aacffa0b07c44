"""The fault-injection ledger: N messages through both entry points of a local stack under injected
faults, then a reconciliation of what was accepted against the status records and what the upstream
stored, and of the events stored against what a webhook receiver verified. Prints one line::

    ledger: accepted=N delivered=N failed=N expired=N uncertain=N duplicates=N lost=N
            events=N events_lost=N events_duplicated=N final_events_missing=N

Everything runs in this process, in threads: moto's ThreadedMotoServer, the API handler behind the
local HTTP gateway, the SMTP bridge (its own event loop), a poller playing Lambda's SQS trigger for
the delivery handler, a controllable aiosmtpd upstream, a poller playing the DynamoDB Streams trigger
for the events handler, one playing the SQS trigger for the webhook handler, and a webhook receiver
that verifies signatures and fails some deliveries. Run it as a module (its own process:
the handlers read their settings at import, and botocore is patched)::

    python -m tests.reliability.ledger --messages 1000 --seed 7 --report /tmp/ledger.json
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import logging
import os
import queue
import random
import re
import smtplib
import ssl
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from local_stack.sqs_poller import SqsPoller
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
SENDER = "app@example.com"
FINAL = {"delivered", "failed", "expired"}
QUEUED_AS = re.compile(r"queued as (\S+)")
LEDGER_HEADER = "X-Ledger-Id"
# Headers an entry point may prepend to what the client submitted (never anything else).
PREPENDED = (b"received:", b"message-id:", b"date:")

logger = logging.getLogger("ledger")


# -- configuration ---------------------------------------------------------------------------------


@dataclass
class Config:
    messages: int = 1000
    seed: int = 7
    http_senders: int = 4
    smtp_senders: int = 3
    max_backlog: int = 40  # queued + in flight in SQS; moto's receive cost grows with it
    drain_timeout: float = 240.0
    state_dir: Path | None = None
    aws_rate: float = 0.01  # per SQS / DynamoDB call
    s3_rate: float = 0.05
    crash_rate: float = 0.04  # per non-empty delivery batch
    refuse_every: tuple[float, float] = (12.0, 25.0)  # seconds between upstream refusal windows
    refuse_for: tuple[float, float] = (2.0, 5.0)
    stall_seconds: float = 3.5
    visibility_timeout: int = 20
    webhook_visibility_timeout: int = 10
    webhook_functions: int = 3  # webhook handlers running at once, as Lambda runs several environments


def environment(cfg: Config, upstream_port: int, ca_file: Path) -> dict[str, str]:
    """Short backoff, expiry and timeouts, so that the faults resolve within the run."""
    upstreams = [{"name": "ledger-upstream", "host": "localhost", "port": upstream_port, "tls": "starttls",
                  "ca_file": str(ca_file)}]  # fmt: skip
    return {
        "MAILRELAY_UPSTREAMS": json.dumps(upstreams),
        "MAILRELAY_DEFAULT_EXPIRY_SECONDS": "90",
        "MAILRELAY_RETRY_AFTER_SECONDS": "1",
        "MAILRELAY_INLINE_PAYLOAD_MAX_BYTES": "4096",  # larger messages go through S3
        "MAILRELAY_RETRY_BASE_SECONDS": "1",
        "MAILRELAY_RETRY_MAX_SECONDS": "8",
        "MAILRELAY_SMTP_CONNECT_TIMEOUT": "2",
        "MAILRELAY_SMTP_REPLY_TIMEOUT": "2",
        "MAILRELAY_SMTP_DATA_DONE_TIMEOUT": "2.5",
        "MAILRELAY_SEND_START_RESERVE_SECONDS": "4",
        "MAILRELAY_DEADLINE_MARGIN_SECONDS": "0.5",
        "MAILRELAY_LEASE_GRACE_SECONDS": "2",
        "MAILRELAY_SMTP_IDLE_CLOSE_SECONDS": "10",
        # Webhooks: the receiver is on loopback, and 8 attempts within about 17 s instead of about 27 hours.
        "MAILRELAY_WEBHOOKS_ALLOW_LOOPBACK_HTTP": "true",
        "MAILRELAY_WEBHOOK_RETRY_SCHEDULE": "0,1,1,2,2,3,3,5",
        "MAILRELAY_WEBHOOK_TIMEOUT_SECONDS": "1",
        "MAILRELAY_WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT": str(cfg.webhook_functions),
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "POWERTOOLS_TRACE_DISABLED": "1",
    }


# -- the messages ------------------------------------------------------------------------------------


@dataclass
class Spec:
    index: int
    marker: str
    channel: str  # http | smtp
    recipients: list[str]
    data: bytes | None  # exact bytes submitted (None for structured JSON, which the API composes)
    body: dict[str, Any] | None = None  # the HTTP request body
    doomed: bool = False  # greylisted recipient and a short expiry: can only expire
    at_most_once: bool = False


def make_specs(cfg: Config) -> list[Spec]:
    from tests.reliability.upstream import GREYLIST_DOMAIN

    rng = random.Random(cfg.seed)
    date = format_datetime(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    specs = []
    for i in range(cfg.messages):
        marker = f"L{cfg.seed}-{i:06d}"
        channel = "http" if rng.random() < 0.55 else "smtp"
        rcpts = [f"r{i}-{n}@example.org" for n in range(rng.choice([1, 1, 2, 3]))]
        doomed = channel == "http" and rng.random() < 0.03
        if doomed:
            rcpts.append(f"r{i}@{GREYLIST_DOMAIN}")
        envelope_only = [f"bcc{i}@example.org"] if rng.random() < 0.15 else []
        big = rng.random() < 0.1
        lines = [f"ledger message {marker} line {n:03d} " + "x" * rng.randint(10, 60) for n in range(150 if big else 8)]
        lines.insert(3, ".a line that starts with a dot")
        headers = [
            f"From: Ledger App <{SENDER}>",
            f"To: {', '.join(rcpts)}",
            f"Subject: ledger {marker}",
            f"Date: {date}",
            f"{LEDGER_HEADER}: {marker}",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=us-ascii",
        ]
        data = ("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode("ascii")
        spec = Spec(i, marker, channel, rcpts + envelope_only, data, doomed=doomed)
        if channel == "http":
            spec.at_most_once = rng.random() < 0.1
            body: dict[str, Any]
            if rng.random() < 0.15 and not envelope_only:
                spec.data = None
                body = {"from": SENDER, "to": rcpts, "subject": f"ledger {marker}", "text": "\n".join(lines),
                        "headers": {LEDGER_HEADER: marker}}  # fmt: skip
            else:
                body = {"raw": {"data": base64.b64encode(data).decode(), "mail_from": SENDER,
                                "rcpt_to": spec.recipients}}  # fmt: skip
            if spec.at_most_once:
                body["delivery"] = "at_most_once"
            spec.body = body
        specs.append(spec)
    return specs


# -- the run -----------------------------------------------------------------------------------------


@dataclass
class Tally:
    accepted: dict[str, Spec] = field(default_factory=dict)  # message id -> what was submitted
    events: Counter[str] = field(default_factory=Counter)  # sender-side retries and refusals
    refused: list[str] = field(default_factory=list)  # permanent refusals (a bug in this harness or the system)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, message_id: str, spec: Spec) -> None:
        with self.lock:
            if message_id in self.accepted and self.accepted[message_id].marker != spec.marker:
                self.refused.append(f"id {message_id} returned for two messages")
            self.accepted[message_id] = spec

    def count(self, what: str) -> None:
        with self.lock:
            self.events[what] += 1


class Ledger:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.state = cfg.state_dir or Path(tempfile.mkdtemp(prefix="mailrelay-ledger-"))
        self.state.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(cfg.seed * 7919 + 1)
        self.tally = Tally()
        self.injected: Counter[str] = Counter()
        self.stop = threading.Event()
        self.backlog = 0
        self.submitted = 0
        self.components: list[Any] = []

    # -- setup ------------------------------------------------------------------------------------

    def start(self) -> None:
        from local_stack.tls import ensure_tls
        from tests.reliability.upstream import FaultRates, FaultyUpstream, UpstreamHandler

        cfg = self.cfg
        from tests.reliability.receiver import FaultyReceiver, ReceiverFaults

        self.receiver = FaultyReceiver(random.Random(cfg.seed * 37 + 9), ReceiverFaults())
        self.receiver.start()
        self.tls = ensure_tls(self.state / "tls")
        self.capture = self.state / "upstream"
        handler = UpstreamHandler(self.capture, random.Random(cfg.seed * 31 + 3), FaultRates(), cfg.stall_seconds)
        self.upstream = FaultyUpstream(handler, HOST, free_port(), self.tls.server_context())
        self.upstream.start()
        os.environ.update(environment(cfg, self.upstream.port, self.tls.ca_cert))

        from local_stack.aws_standin import REGION, start_aws

        self.aws = start_aws(HOST, free_port())
        self.components.append(self.aws)
        os.environ.update(self.aws.resources.environment)
        names = self.aws.resources.names
        os.environ["MAILRELAY_DEAD_LETTER_QUEUE_URL"] = names.get("DeliveryDeadLetterQueue", "")
        import boto3

        self.sqs = boto3.session.Session(region_name=REGION).client("sqs")
        self.ddb = boto3.session.Session(region_name=REGION).client("dynamodb")
        self.queue_url = names["DeliveryQueue"]
        # A crashed invocation's records come back after this (the template's 180 s is for real Lambda).
        self.sqs.set_queue_attributes(
            QueueUrl=self.queue_url, Attributes={"VisibilityTimeout": str(cfg.visibility_timeout)}
        )

        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        from mailrelay.events.settings import get_event_settings
        from mailrelay.settings import get_settings
        from mailrelay.webhooks.settings import get_webhook_settings
        from mailrelay.wiring import Services

        get_settings.cache_clear()
        get_event_settings.cache_clear()
        get_webhook_settings.cache_clear()
        self.settings = get_settings()
        self.events_table = get_event_settings().events_table
        services = Services(self.settings)
        client, self.key = services.clients.create("ledger", ["example.com"])
        self.client_id = client.id
        endpoint = services.webhooks.create(self.client_id, {"url": self.receiver.url, "description": "ledger"})
        self.receiver.secret = endpoint["secret"]

        from functions.api import app as api_app
        from functions.deliver import app as deliver_app
        from local_stack.http_gateway import HttpGateway, routes_from_template
        from local_stack.template import load_template

        template = load_template()
        self.gateway = HttpGateway(HOST, free_port(), routes_from_template(template, "ApiFunction"),
                                   api_app.lambda_handler, 20_000)  # fmt: skip
        self.gateway.start()
        self.components.append(self.gateway)
        self.api_url = f"http://{HOST}:{self.gateway.port}"

        self.deliver_app = deliver_app
        self.poller = CrashingPoller(
            self, boto3.session.Session(region_name=REGION).client("sqs"), self.queue_url,
            self.aws.resources.arns["DeliveryQueue"], deliver_app.lambda_handler,
            batch_size=10, window_seconds=0, timeout_ms=15_000, region=REGION,
        )  # fmt: skip

        self._start_event_pollers(template)

        self.bridge_ports = {"starttls": free_port(), "implicit": free_port()}
        self.bridge = self._start_bridge()

        from tests.reliability.faults import AwsFaults

        rates = {"sqs": cfg.aws_rate, "dynamodb": cfg.aws_rate, "s3": cfg.s3_rate}
        self.aws_faults = AwsFaults(random.Random(cfg.seed * 17 + 5), rates)
        self.aws_faults.install()
        self.poller.start()

    def _start_event_pollers(self, template: dict[str, Any]) -> None:
        """The stream trigger of the events function and the SQS trigger of the webhook function."""
        import boto3

        from functions.events import app as events_app
        from functions.webhooks import app as webhooks_app
        from local_stack.aws_standin import REGION
        from local_stack.stream_poller import StreamPoller, streams_client

        resources = self.aws.resources
        stream = next(e["Properties"] for e in template["Resources"]["EventsFunction"]["Properties"]["Events"].values()
                      if e["Type"] == "DynamoDB")  # fmt: skip
        self.stream_poller = StreamPoller(
            streams_client(REGION), resources.arns["MessagesTable.StreamArn"], events_app.lambda_handler,
            batch_size=int(stream.get("BatchSize", 100)), window_seconds=1, timeout_ms=60_000, region=REGION,
        )  # fmt: skip
        self.stream_poller.start()
        self.components.append(self.stream_poller)
        sqs = boto3.session.Session(region_name=REGION).client("sqs")
        # A failed job whose hiding failed comes back after this (the template's value is for real Lambda).
        visibility = {"VisibilityTimeout": str(self.cfg.webhook_visibility_timeout)}
        sqs.set_queue_attributes(QueueUrl=resources.names["WebhookQueue"], Attributes=visibility)
        hooks = template["Resources"]["WebhookFunction"]["Properties"]
        batch = next(e["Properties"] for e in hooks["Events"].values() if e["Type"] == "SQS").get("BatchSize", 10)
        for _ in range(self.cfg.webhook_functions):  # each its own environment: handler, worker, clients
            worker = webhooks_app.build_webhook_worker(
                webhooks_app.get_webhook_settings(), os.environ["MAILRELAY_EVENT_BUS_NAME"]
            )
            poller = SqsPoller(
                boto3.session.Session(region_name=REGION).client("sqs"), resources.names["WebhookQueue"],
                resources.arns["WebhookQueue"], webhooks_app.create_handler(lambda w=worker: w),
                batch_size=int(batch), window_seconds=0, timeout_ms=60_000, region=REGION,
            )  # fmt: skip
            poller.start()
            self.components.append(poller)

    def _bridge_settings(self) -> Any:
        from smtp_bridge.settings import BridgeSettings

        return BridgeSettings.model_validate(
            {
                "MAILRELAY_BRIDGE_HOSTNAME": "localhost",
                "MAILRELAY_BRIDGE_BIND_ADDRESS": HOST,
                "MAILRELAY_BRIDGE_SUBMISSION_PORT": self.bridge_ports["starttls"],
                "MAILRELAY_BRIDGE_IMPLICIT_TLS_PORT": self.bridge_ports["implicit"],
                "MAILRELAY_BRIDGE_READINESS_PORT": None,
                "MAILRELAY_BRIDGE_TLS_CERT_FILE": str(self.tls.cert),
                "MAILRELAY_BRIDGE_TLS_KEY_FILE": str(self.tls.key),
                "MAILRELAY_BRIDGE_DRAIN_GRACE_SECONDS": 3,
                "MAILRELAY_BRIDGE_AUTH_FAILURE_DELAY_SECONDS": 0.05,
            }
        )

    def _start_bridge(self) -> Any:
        from local_stack.stack import BridgeThread

        bridge = BridgeThread(self._bridge_settings())
        bridge.start()
        return bridge

    def close(self) -> None:
        self.stop.set()
        self.aws_faults.uninstall()
        self.poller.stop()
        self.bridge.stop()
        self.upstream.stop()
        self.upstream.handler.close()
        self.receiver.stop()
        for component in reversed(self.components):
            try:
                component.stop()
            except Exception:
                logger.exception("stopping %s", type(component).__name__)

    # -- injectors ----------------------------------------------------------------------------------

    def inject(self, what: str) -> None:
        with self.tally.lock:
            self.injected[what] += 1

    def _refusals(self) -> None:
        """Every so often the upstream stops listening for a few seconds: connections are refused."""
        rng = random.Random(self.cfg.seed * 13 + 11)
        while not self.faults_off.wait(rng.uniform(*self.cfg.refuse_every)):
            self.inject("upstream_refuses")
            self.upstream.stop()
            self.faults_off.wait(rng.uniform(*self.cfg.refuse_for))
            self.upstream.start()

    def _bridge_restarts(self) -> None:
        """SIGTERM's path: drain (421 to idle sessions, finish transactions), then a new bridge on the same ports."""
        n = self.cfg.messages
        points = sorted({int(n * 0.3), int(n * 0.65), *range(2500, n - 500, 2500)})
        for point in points:
            while self.submitted < point and not self.faults_off.is_set():
                time.sleep(0.2)
            if self.faults_off.is_set():
                return
            self.inject("bridge_restart")
            self.bridge.stop()  # Bridge.drain(): what the bridge's SIGTERM handler runs
            time.sleep(self.rng.uniform(0.5, 1.5))  # clients meanwhile get "connection refused"
            self.bridge = self._start_bridge()

    def _watch_backlog(self) -> None:
        with self.aws_faults.exempt():
            while not self.stop.is_set():
                try:
                    attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["All"])["Attributes"]
                    self.backlog = sum(int(attrs.get(k, 0)) for k in (
                        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                        "ApproximateNumberOfMessagesDelayed"))  # fmt: skip
                except Exception:
                    logger.exception("backlog")
                self.stop.wait(0.5)

    def _pace(self) -> None:
        while self.backlog > self.cfg.max_backlog and not self.stop.is_set():
            time.sleep(0.1)

    # -- senders ------------------------------------------------------------------------------------

    def _http_sender(self, work: queue.Queue[Spec]) -> None:
        import httpx

        with httpx.Client(timeout=30) as http:
            while True:
                try:
                    spec = work.get_nowait()
                except queue.Empty:
                    return
                self._pace()
                self._send_http(http, spec)

    def _send_http(self, http: Any, spec: Spec) -> None:
        key = f"ledger-{spec.marker}"
        headers = {"Authorization": f"Bearer {self.key}", "Idempotency-Key": key}
        for attempt in range(200):
            body = dict(spec.body or {})
            if spec.doomed and "expires_at" not in body:
                body["expires_at"] = (datetime.now(UTC) + timedelta(seconds=12)).isoformat()
                spec.body = body  # a retry sends the very same body (same Idempotency-Key)
            try:
                response = http.post(f"{self.api_url}/v1/messages", json=spec.body, headers=headers)
            except Exception:
                self.tally.count("http_drop")
                time.sleep(min(2.0, 0.2 * (attempt + 1)))
                continue
            if response.status_code == 202:
                self.tally.accept(response.json()["id"], spec)
                self._submitted()
                return
            if response.status_code == 503 or (response.status_code == 409 and "still" in response.text):
                self.tally.count(f"http_{response.status_code}")
                retry_after = float(response.headers.get("retry-after", "1"))
                time.sleep(min(retry_after, 1.0) * self.rng.uniform(0.3, 1.0))
                continue
            self.tally.count(f"http_{response.status_code}")
            if response.status_code >= 500:  # never expected (a failure of ours is 503): retried like a real client
                self.tally.refused.append(f"{spec.marker}: HTTP {response.status_code} {response.text[:200]}")
                time.sleep(0.5)
                continue
            self.tally.refused.append(f"{spec.marker}: HTTP {response.status_code} {response.text[:300]}")
            self._submitted()
            return
        self.tally.refused.append(f"{spec.marker}: gave up after 200 attempts")
        self._submitted()

    def _submitted(self) -> None:
        with self.tally.lock:
            self.submitted += 1

    def _smtp_sender(self, work: queue.Queue[Spec]) -> None:
        context = ssl.create_default_context(cafile=str(self.tls.ca_cert))
        smtp: smtplib.SMTP | None = None
        used = 0
        try:
            while True:
                try:
                    spec = work.get_nowait()
                except queue.Empty:
                    return
                self._pace()
                for attempt in range(200):
                    try:
                        if smtp is None or used >= 20:
                            smtp = self._close(smtp)
                            smtp = self._connect(context)
                            used = 0
                        used += 1
                        outcome = self._smtp_transaction(smtp, spec)
                    except (OSError, smtplib.SMTPException) as exc:
                        self.tally.count(f"smtp_drop:{type(exc).__name__}")
                        smtp = self._close(smtp, quit_first=False)
                        time.sleep(min(2.0, 0.1 * (attempt + 1)) * self.rng.uniform(0.5, 1.0))
                        continue
                    if outcome == "retry":
                        smtp = self._close(smtp)
                        time.sleep(min(2.0, 0.1 * (attempt + 1)) * self.rng.uniform(0.5, 1.0))
                        continue
                    break
                else:
                    self.tally.refused.append(f"{spec.marker}: SMTP gave up after 200 attempts")
                self._submitted()
        finally:
            self._close(smtp)

    def _connect(self, context: ssl.SSLContext) -> smtplib.SMTP:
        smtp = smtplib.SMTP(HOST, self.bridge_ports["starttls"], local_hostname="ledger.test", timeout=30)
        try:
            smtp.starttls(context=context)
            smtp.ehlo("ledger.test")
            smtp.login(self.client_id, self.key)
        except BaseException:
            smtp.close()
            raise
        return smtp

    @staticmethod
    def _close(smtp: smtplib.SMTP | None, *, quit_first: bool = True) -> None:
        if smtp is None:
            return
        try:
            if quit_first:
                smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            smtp.close()

    def _smtp_transaction(self, smtp: smtplib.SMTP, spec: Spec) -> str:
        """'accepted', 'retry' (4xx anywhere: a real MTA keeps it) or 'refused' (5xx)."""
        assert spec.data is not None
        code, reply = smtp.mail(SENDER)
        if code != 250:
            return self._smtp_reply("mail", spec, code, reply)
        for rcpt in spec.recipients:
            code, reply = smtp.rcpt(rcpt)
            if code not in (250, 251):
                smtp.rset()
                return self._smtp_reply("rcpt", spec, code, reply)
        try:
            code, reply = smtp.data(spec.data)
        except smtplib.SMTPDataError as exc:
            return self._smtp_reply("data", spec, exc.smtp_code, exc.smtp_error)
        found = QUEUED_AS.search(reply.decode(errors="replace"))
        if code != 250 or found is None:
            return self._smtp_reply("data", spec, code, reply)
        self.tally.accept(found.group(1), spec)
        return "accepted"

    def _smtp_reply(self, stage: str, spec: Spec, code: int, reply: bytes) -> str:
        self.tally.count(f"smtp_{stage}_{code}")
        if 400 <= code < 500:
            return "retry"
        self.tally.refused.append(f"{spec.marker}: SMTP {stage} {code} {reply[:200]!r}")
        return "refused"

    # -- the run ----------------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        started = time.monotonic()
        self.faults_off = threading.Event()
        specs = make_specs(cfg)
        http_work: queue.Queue[Spec] = queue.Queue()
        smtp_work: queue.Queue[Spec] = queue.Queue()
        for spec in specs:
            (http_work if spec.channel == "http" else smtp_work).put(spec)
        helpers = [threading.Thread(target=self._watch_backlog, name="backlog", daemon=True),
                   threading.Thread(target=self._refusals, name="refusals", daemon=True),
                   threading.Thread(target=self._bridge_restarts, name="restarts", daemon=True)]  # fmt: skip
        self.aws_faults.enabled = True
        for t in helpers:
            t.start()
        senders = [threading.Thread(target=self._http_sender, args=(http_work,), daemon=True)
                   for _ in range(cfg.http_senders)]  # fmt: skip
        senders += [threading.Thread(target=self._smtp_sender, args=(smtp_work,), daemon=True)
                    for _ in range(cfg.smtp_senders)]  # fmt: skip
        for t in senders:
            t.start()
        for t in senders:
            t.join()
        produced = time.monotonic()
        # Faults stop; every accepted message must now reach a final outcome within the drain bound.
        self.faults_off.set()
        self.aws_faults.enabled = False
        self.upstream.handler.enabled = False
        self.poller.crash_rate = 0.0
        self.upstream.start()
        for t in helpers[1:]:
            t.join(30)
        statuses = self._drain(cfg.drain_timeout)
        drained = time.monotonic()
        self.poller.stop()
        # The receiver keeps failing some deliveries: the webhook retries must get every event through.
        events = self._drain_events(statuses, cfg.drain_timeout)
        webhooks_drained = time.monotonic()
        report = self.reconcile(statuses, events)
        report["timing"] = {"produce_s": round(produced - started, 1), "drain_s": round(drained - produced, 1),
                            "webhooks_drain_s": round(webhooks_drained - drained, 1),
                            "total_s": round(webhooks_drained - started, 1)}  # fmt: skip
        return report

    def _final(self, status: dict[str, Any]) -> bool:
        state = status.get("state")
        return state in FINAL or (state == "uncertain" and status.get("delivery") == "at_most_once")

    def _drain(self, timeout: float) -> dict[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            statuses = self._statuses()
            pending = [i for i in self.tally.accepted if not self._final(statuses.get(i, {}))]
            if not pending or time.monotonic() > deadline:
                return statuses
            time.sleep(2.0)

    def _drain_events(self, statuses: dict[str, dict[str, Any]], timeout: float) -> dict[str, str]:
        """Wait until the receiver has every stored event and every final state's event; the stored ones."""
        deadline = time.monotonic() + timeout
        while True:
            stored = self._stored_events()
            missing = [i for i in stored if i not in self.receiver.received]
            if (not missing and not self._finals_missing(statuses)) or time.monotonic() > deadline:
                return stored
            time.sleep(2.0)

    def _stored_events(self) -> dict[str, str]:
        """The ledger client's events in the events table: id -> message id."""
        out: dict[str, str] = {}
        with self.aws_faults.exempt():
            for page in self.ddb.get_paginator("scan").paginate(TableName=self.events_table, ConsistentRead=True):
                for item in page["Items"]:
                    if item["client_id"]["S"] == self.client_id:
                        out[item["id"]["S"]] = item["message_id"]["S"]
        return out

    def _finals_missing(self, statuses: dict[str, dict[str, Any]]) -> list[str]:
        """Accepted messages whose final state lacks its event at the receiver: recipient.delivered or
        recipient.failed for each recipient, message.expired or message.uncertain for the message."""
        received: set[tuple[str, str, str | None]] = set()
        for envelope in list(self.receiver.received.values()):
            data = envelope.get("data", {})
            received.add((envelope.get("type", ""), data.get("message_id", ""), data.get("recipient")))
        missing = []
        for message_id in self.tally.accepted:
            status = statuses.get(message_id, {})
            if not self._final(status):
                continue
            wanted = {("message.accepted", message_id, None)}
            if status["state"] in ("expired", "uncertain"):
                wanted.add((f"message.{status['state']}", message_id, None))
            else:
                wanted |= {(f"recipient.{r['state']}", message_id, r["address"])
                           for r in status["recipients"] if r["state"] in ("delivered", "failed")}  # fmt: skip
            missing += [f"{message_id}: no {kind} for {rcpt or 'the message'}" for kind, _, rcpt in wanted - received]
        return missing

    def _statuses(self) -> dict[str, dict[str, Any]]:
        from mailrelay.adapters.dynamo import from_item

        out: dict[str, dict[str, Any]] = {}
        with self.aws_faults.exempt():
            paginator = self.ddb.get_paginator("scan")
            for page in paginator.paginate(TableName=self.settings.messages_table, ConsistentRead=True):
                for item in page["Items"]:
                    data = from_item(item)
                    out[str(data["id"])] = data
        return out

    # -- reconciliation -----------------------------------------------------------------------------------

    def reconcile(self, statuses: dict[str, dict[str, Any]], events: dict[str, str]) -> dict[str, Any]:
        accepted = dict(self.tally.accepted)
        copies = self._copies()
        by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
        by_marker: dict[str, set[str]] = defaultdict(set)
        for copy in copies:
            by_id[copy["id"]].append(copy)
            by_marker[copy["marker"]].add(copy["id"])
        counts: Counter[str] = Counter()
        lost: list[str] = []
        mismatched: list[str] = []
        duplicates: Counter[str] = Counter()
        for message_id, spec in accepted.items():
            status = statuses.get(message_id)
            if status is None or not self._final(status):
                lost.append(f"{spec.marker} {message_id}: no final outcome ({status and status.get('state')})")
                continue
            counts[status["state"]] += 1
            mine = by_id.get(message_id, [])
            for copy in mine:
                if copy["sha256"] != status["sha256"]:
                    mismatched.append(f"{spec.marker} {message_id}: upstream copy {copy['file']} != status sha256")
                if copy["marker"] != spec.marker:
                    mismatched.append(f"{spec.marker} {message_id}: upstream copy carries {copy['marker']}")
                problem = self._identity(spec, copy["data"], message_id)
                if problem:
                    mismatched.append(f"{spec.marker} {message_id}: {problem}")
            per_rcpt: Counter[str] = Counter()
            unacked: Counter[str] = Counter()
            for copy in mine:
                for rcpt in copy["rcpt"]:
                    per_rcpt[rcpt] += 1
                    unacked[rcpt] += 0 if copy["acked"] else 1
            for recipient in status["recipients"]:
                address = recipient["address"]
                if recipient["state"] == "delivered" and per_rcpt[address] == 0:
                    lost.append(f"{spec.marker} {message_id}: {address} delivered but never stored upstream")
                extra = max(0, per_rcpt[address] - 1)
                if extra:
                    explained = min(extra, unacked[address])
                    duplicates["uncertain_window"] += explained
                    duplicates["unexplained"] += extra - explained
                    if extra > explained:
                        mismatched.append(f"{spec.marker} {message_id}: {address} stored {per_rcpt[address]} times")
        # The same client message accepted twice (its 250 was lost, the client sent it again).
        accepted_markers = {spec.marker for spec in accepted.values()}
        for marker, ids in by_marker.items():
            extra_ids = [i for i in ids if i not in accepted]
            if marker in accepted_markers and extra_ids:
                duplicates["resubmitted_after_lost_reply"] += len(extra_ids)
            elif extra_ids:
                duplicates["never_acknowledged"] += len(extra_ids)
        injected = Counter(self.injected)
        injected.update(self.upstream.handler.injected)
        injected.update(self.aws_faults.injected)
        injected["poller_crash"] = self.poller.crashes
        injected.update(self.receiver.injected)
        total_dups = sum(duplicates.values())
        events_lost = sorted(f"{events[i]} {i}" for i in events if i not in self.receiver.received)
        finals_missing = self._finals_missing(statuses)
        line = (
            f"ledger: accepted={len(accepted)} delivered={counts['delivered']} failed={counts['failed']} "
            f"expired={counts['expired']} uncertain={counts['uncertain']} duplicates={total_dups} lost={len(lost)} "
            f"events={len(events)} events_lost={len(events_lost)} events_duplicated={self.receiver.duplicated()} "
            f"final_events_missing={len(finals_missing)}"
        )
        return {
            "line": line,
            "accepted": len(accepted),
            "outcomes": dict(counts),
            "lost": lost,
            "byte_mismatches": mismatched,
            "duplicates": dict(duplicates),
            "copies": len(copies),
            "injected": dict(sorted(injected.items())),
            "sender_events": dict(sorted(self.tally.events.items())),
            "refused": self.tally.refused,
            "events": len(events),
            "events_lost": events_lost,
            "events_duplicated": self.receiver.duplicated(),
            "events_unverified": self.receiver.unverified,
            "final_events_missing": finals_missing,
            "queue": self._queue_depths(),
            "messages": self.cfg.messages,
            "seed": self.cfg.seed,
            "state_dir": str(self.state),
        }

    def _identity(self, spec: Spec, data: bytes, message_id: str) -> str | None:
        """What was delivered is what the client submitted, with at most Received/Message-ID/Date before it."""
        if spec.data is None:  # composed by the API: check the marker and our Message-ID only
            return None if f"<{message_id}@".encode() in data else "composed message lacks our Message-ID"
        if not data.endswith(spec.data):
            return "delivered bytes do not end with the submitted bytes"
        prefix = data[: len(data) - len(spec.data)]
        for line in prefix.split(b"\r\n")[:-1]:
            if line[:1] in (b" ", b"\t"):
                continue  # a folded continuation of the previous (prepended) header
            if not line.lower().startswith(PREPENDED):
                return f"unexpected prepended line {line[:80]!r}"
        return None

    def _copies(self) -> list[dict[str, Any]]:
        index = self.capture / "index.jsonl"
        copies = []
        for raw in index.read_text().splitlines():
            entry = json.loads(raw)
            data = (self.capture / entry["file"]).read_bytes()
            head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
            mid = re.search(r"(?im)^message-id:\s*<([^@>]+)@", head)
            marker = re.search(rf"(?im)^{LEDGER_HEADER}:\s*(\S+)", head)
            entry.update(
                id=mid.group(1) if mid else "?", marker=marker.group(1) if marker else "?",
                sha256=hashlib.sha256(data).hexdigest(), data=data,
            )  # fmt: skip
            copies.append(entry)
        return copies

    def _queue_depths(self) -> dict[str, int]:
        out = {}
        with self.aws_faults.exempt():
            for name in ("DeliveryQueue", "DeliveryDeadLetterQueue", "WebhookQueue", "WebhookDeadLetterQueue"):
                url = self.aws.resources.names.get(name)
                if not url:
                    continue
                attrs = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
                out[name] = int(attrs["ApproximateNumberOfMessages"]) + int(
                    attrs["ApproximateNumberOfMessagesNotVisible"]
                )
        return out


class PollerCrash(Exception):
    """The injected crash of a delivery invocation, after the handler ran and before the deletes."""


class CrashingPoller(SqsPoller):
    """Lambda's SQS trigger; now and then the invocation dies after the handler, before the deletes.

    Its records come back after the queue's visibility timeout, to a new execution environment.
    """

    def __init__(self, ledger: Ledger, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ledger = ledger
        self.crash_rate = ledger.cfg.crash_rate
        self.crashes = 0
        self.rng = random.Random(ledger.cfg.seed * 101 + 7)

    def after_invocation(self, messages: list[dict[str, Any]]) -> None:
        if self.rng.random() < self.crash_rate:
            self.crashes += 1
            self._new_environment()
            raise PollerCrash(f"injected crash after the handler, before deleting {len(messages)} records")

    def _new_environment(self) -> None:
        """The crashed environment is gone: its SMTP sessions drop, the next one starts cold."""
        worker = self.ledger.deliver_app.worker
        try:
            worker().pool.close_all()
        except Exception:
            logger.exception("closing the crashed worker's sessions")
        worker.cache_clear()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--drain-timeout", type=float, default=240.0)
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--report", type=Path, default=None, help="write the full reconciliation as JSON here")
    args = parser.parse_args(argv)
    cfg = Config(messages=args.messages, seed=args.seed, drain_timeout=args.drain_timeout, state_dir=args.state_dir)
    ledger = Ledger(cfg)
    # The handlers log (and Powertools prints) per invocation: keep it in a file, print only the ledger line.
    out = sys.stdout
    log_path = ledger.state / "ledger.log"
    log = log_path.open("w", encoding="utf-8")
    sys.stdout = log
    logging.basicConfig(stream=log, level=logging.WARNING, format="%(asctime)s %(threadName)s %(name)s %(message)s")
    for noisy in ("mail.log", "werkzeug", "botocore", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        ledger.start()
        report = ledger.run()
    finally:
        ledger.close()
        sys.stdout = out
        log.close()
    report["log"] = str(log_path)
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    print(report["line"], flush=True)
    return 0 if not report["lost"] and not report["events_lost"] else 1


if __name__ == "__main__":
    sys.exit(main())
