"""The Python side of the cases that run in a fresh interpreter: ``python -m bench.workers CASE ...``.

Each prints one JSON line with its measurements. The environment is the bench's (bench.fakes.BENCH_ENV),
so nothing here reaches AWS.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.coldstart import lambda_context
from bench.fakes import BENCH_ENV, CLIENT_KEY

ROOT = Path(__file__).resolve().parents[1]


def _env() -> None:
    for key, value in BENCH_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the handlers' per-request INFO lines
    for path in (str(ROOT), str(ROOT / "layers" / "core")):
        if path not in sys.path:
            sys.path.insert(0, path)


def api_event() -> dict[str, Any]:
    event: dict[str, Any] = json.loads((ROOT / "events" / "api_send_message.json").read_text())
    event["headers"] = {k: v for k, v in event["headers"].items() if k != "idempotency-key"}
    event["headers"]["authorization"] = f"Bearer {CLIENT_KEY}"
    return event


def _time_invocations(handler: Any, event: dict[str, Any], context: Any, count: int) -> float:
    for _ in range(min(50, count)):  # warm: the first invocation builds clients and caches
        response = handler(event, context)
    assert response["statusCode"] == 202, response
    start = time.perf_counter()
    for _ in range(count):
        handler(event, context)
    return count / (time.perf_counter() - start)


def run_api(count: int) -> dict[str, Any]:
    from bench.stubs import stubbed_clients

    calls, clients = stubbed_clients()
    import functions.api.app as app
    from mailrelay.settings import get_settings
    from mailrelay.wiring import Services

    operations = app.build_operations(get_settings(), Services(get_settings(), **clients))
    handler = app.create_handler(lambda: operations)
    rate = _time_invocations(handler, api_event(), lambda_context("mailrelay-api"), count)
    return {"rate": rate, "calls": dict(calls.counts)}


def run_api_baseline(count: int) -> dict[str, Any]:
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

    from bench.fakes import Calls, FakeSQS
    from bench.stubs import stubbed

    calls = Calls()
    sqs = stubbed("sqs", FakeSQS(calls))
    url = os.environ["MAILRELAY_QUEUE_URL"]
    app = APIGatewayHttpResolver()

    @app.post("/v1/messages")  # type: ignore[misc]
    def send() -> Response[str]:
        body = app.current_event.json_body
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(body))
        return Response(202, "application/json", '{"status": "queued"}')

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return app.resolve(event, context)

    rate = _time_invocations(handler, api_event(), lambda_context("baseline"), count)
    return {"rate": rate, "calls": dict(calls.counts)}


def _queued_bodies(count: int, size: int) -> tuple[list[str], dict[str, Any]]:
    """``count`` messages of about ``size`` bytes through the real submission path, as the bridge would."""
    from datetime import UTC, datetime

    from bench.fakes import FakeDynamo, FakeS3, FakeSQS, fake_clients
    from mailrelay.compose import from_smtp
    from mailrelay.incoming import whole_message
    from mailrelay.settings import get_settings
    from mailrelay.wiring import Services

    calls = fake_clients()[0]
    sqs, dynamodb = FakeSQS(calls, keep_bodies=True), FakeDynamo(calls, keep_statuses=True)
    services = Services(get_settings(), sqs=sqs, s3=FakeS3(calls), dynamodb=dynamodb)
    client = services.clients.store.get("bench")
    assert client is not None
    body = b"".join(b"Lorem ipsum dolor sit amet, consectetur adipiscing elit %05d\r\n" % i for i in range(size // 64))
    head = b"From: bench@example.com\r\nTo: sink@example.net\r\nSubject: bench\r\n\r\n"
    settings = get_settings()
    for _ in range(count):
        message = whole_message(head + body, bare_newlines="reject", max_bytes=settings.max_message_bytes)
        sub = from_smtp(mail_from="bench@example.com", rcpt_to=["sink@example.net"], data=message,
                        settings=settings, now=datetime.now(UTC), smtputf8=False)  # fmt: skip
        services.submissions.submit(client, sub)
    assert sqs.bodies is not None and dynamodb.statuses is not None
    return sqs.bodies, dynamodb.statuses


def sqs_events(bodies: list[str], batch: int = 10) -> list[dict[str, Any]]:
    """The events Lambda's SQS trigger would invoke the delivery handler with: ``batch`` records each."""
    events = []
    for start in range(0, len(bodies), batch):
        records = [{"messageId": f"r{start + i}", "receiptHandle": f"h{start + i}", "body": b,
                    "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"}, "messageAttributes": {},
                    "md5OfBody": "", "eventSource": "aws:sqs", "awsRegion": "eu-west-1",
                    "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:q"}
                   for i, b in enumerate(bodies[start : start + batch])]  # fmt: skip
        events.append({"Records": records})
    return events


def run_deliver(count: int, size: int, port: int, ca_file: str | None) -> dict[str, Any]:
    upstream: dict[str, Any] = {"name": "sink", "host": "127.0.0.1", "port": port}
    if ca_file:
        upstream.update({"tls": "starttls", "ca_file": ca_file})
    else:
        upstream["insecure_plaintext"] = True
    os.environ["MAILRELAY_UPSTREAMS"] = json.dumps([upstream])
    os.environ.setdefault("MAILRELAY_EHLO_NAME", "deliver.bench")
    from bench.fakes import fake_clients
    from bench.stubs import stubbed

    bodies, statuses = _queued_bodies(count, size)
    calls, sqs, s3, dynamodb = fake_clients()
    dynamodb.statuses = statuses

    import functions.deliver.app as app
    from mailrelay.delivery.settings import get_delivery_settings
    from mailrelay.delivery.wiring import build_worker
    from mailrelay.settings import get_settings

    worker = build_worker(get_settings(), get_delivery_settings(), sqs=stubbed("sqs", sqs), s3=stubbed("s3", s3),
                          dynamodb=stubbed("dynamodb", dynamodb))  # fmt: skip
    handler = app.create_handler(lambda: worker, get_delivery_settings)
    context = lambda_context("mailrelay-deliver")
    events = sqs_events(bodies)
    failures = 0
    start_wall, start_time = time.time(), time.perf_counter()
    for event in events:
        failures += len(handler(event, context)["batchItemFailures"])
    seconds = time.perf_counter() - start_time
    return {
        "rate": count / seconds,
        "seconds": seconds,
        "failures": failures,
        "calls": dict(calls.counts),
        "start": start_wall,
        "end": start_wall + seconds,
    }


def run_import(module: str) -> dict[str, Any]:
    start = time.perf_counter()
    __import__(module)
    return {"seconds": time.perf_counter() - start}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["api", "api-baseline", "deliver", "import", "queued"])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--size", type=int, default=5000)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ca-file")
    parser.add_argument("--module")
    args = parser.parse_args()
    _env()
    if args.case == "import":
        result = run_import(args.module)
    elif args.case == "queued":  # one queued record and its status, for the cold-start case
        bodies, statuses = _queued_bodies(1, args.size)
        result = {"body": bodies[0], "statuses": statuses}
    elif args.case == "api":
        result = run_api(args.count)
    elif args.case == "api-baseline":
        result = run_api_baseline(args.count)
    else:
        result = run_deliver(args.count, args.size, args.port, args.ca_file)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
