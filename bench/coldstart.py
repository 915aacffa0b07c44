"""A realistic cold start, in a fresh interpreter: import a handler, then answer its first request.

``python -m bench.coldstart api|api-baseline|deliver|deliver-baseline FILE`` prints one JSON line with the
seconds from before the import to the end of the first response. The first request imports boto3 and
makes the AWS clients, as on Lambda; their calls are answered in-process (bench.stubs), so no network.
FILE holds what the parent prepared (the API event; the queued record and its status), read before the
clock starts. This module imports nothing of mailrelay's at its top, so the timed import starts from a
bare interpreter (the environment, bench.fakes.BENCH_ENV and PYTHONPATH, comes from the parent).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any


def lambda_context(name: str) -> Any:
    return SimpleNamespace(
        function_name=name, function_version="$LATEST", memory_limit_in_mb=512,
        invoked_function_arn=f"arn:aws:lambda:eu-west-1:123456789012:function:{name}",
        aws_request_id="bench-request", log_group_name=f"/aws/lambda/{name}", log_stream_name="bench",
        get_remaining_time_in_millis=lambda: 300_000,
    )  # fmt: skip


class _OnFirstUse:
    """A stubbed client made when first called, as the product's lazy clients are (an unused one costs nothing)."""

    def __init__(self, service: str, fake: Any) -> None:
        self._service, self._fake, self._client = service, fake, None

    def __getattr__(self, name: str) -> Any:
        if self._client is None:
            from bench.stubs import stubbed

            self._client = stubbed(self._service, self._fake)
        return getattr(self._client, name)


def _clients() -> tuple[Any, dict[str, Any]]:
    from bench.fakes import fake_clients

    calls, sqs, s3, dynamodb = fake_clients()
    return calls, {"sqs": _OnFirstUse("sqs", sqs), "s3": _OnFirstUse("s3", s3),
                   "dynamodb": _OnFirstUse("dynamodb", dynamodb)}  # fmt: skip


def api(prepared: dict[str, Any]) -> None:
    import functions.api.app as app
    from mailrelay.settings import get_settings
    from mailrelay.wiring import Services

    ops = app.build_operations(get_settings(), Services(get_settings(), **_clients()[1]))
    _accepted(app.create_handler(lambda: ops)(prepared["event"], lambda_context("mailrelay-api")))


def api_baseline(prepared: dict[str, Any]) -> None:
    """A minimal Powertools HTTP handler that puts the JSON body on SQS."""
    from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

    from bench.fakes import Calls, FakeSQS
    from bench.stubs import stubbed

    sqs = stubbed("sqs", FakeSQS(Calls()))
    app = APIGatewayHttpResolver()

    @app.post("/v1/messages")  # type: ignore[misc]
    def send() -> Response[str]:
        body = json.dumps(app.current_event.json_body)
        sqs.send_message(QueueUrl="https://sqs.eu-west-1.amazonaws.com/1/q", MessageBody=body)
        return Response(202, "application/json", '{"status": "queued"}')

    _accepted(app.resolve(prepared["event"], lambda_context("baseline")))


def _accepted(response: dict[str, Any]) -> None:
    if response["statusCode"] != 202:
        raise RuntimeError(f"first request: {response}")


def deliver(prepared: dict[str, Any]) -> None:
    """The first batch (one queued record) to the SMTP sink MAILRELAY_UPSTREAMS names."""
    import functions.deliver.app as app
    from mailrelay.delivery.settings import get_delivery_settings
    from mailrelay.delivery.wiring import build_worker
    from mailrelay.settings import get_settings

    calls, clients = _clients()
    clients["dynamodb"]._fake.statuses = prepared["statuses"]
    worker = build_worker(get_settings(), get_delivery_settings(), **clients)
    handler = app.create_handler(lambda: worker, get_delivery_settings)
    response = handler(_event(prepared["body"]), lambda_context("mailrelay-deliver"))
    if response["batchItemFailures"] or calls.counts["dynamodb.PutItem"] != 1:  # the outcome recorded
        raise RuntimeError(f"first batch: {response}, {dict(calls.counts)}")


def deliver_baseline(prepared: dict[str, Any]) -> None:
    """A minimal Powertools SQS batch handler: the record's message sent with smtplib, then one AWS call."""
    import base64
    import os
    import smtplib

    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    from bench.fakes import Calls, FakeSQS
    from bench.stubs import stubbed

    sqs = stubbed("sqs", FakeSQS(Calls()))
    upstream = json.loads(os.environ["MAILRELAY_UPSTREAMS"])[0]

    def record_handler(record: Any) -> None:
        queued = json.loads(record.body)
        with smtplib.SMTP(upstream["host"], upstream["port"]) as smtp:
            smtp.sendmail(queued["mail_from"], queued["rcpt_to"], base64.b64decode(queued["payload"]["data"]))
        sqs.delete_message(QueueUrl="https://sqs.eu-west-1.amazonaws.com/1/q", ReceiptHandle=record.receipt_handle)

    response = process_partial_response(event=_event(prepared["body"]), record_handler=record_handler,
                                        processor=BatchProcessor(event_type=EventType.SQS))  # fmt: skip
    if response["batchItemFailures"]:
        raise RuntimeError(f"first batch: {response}")


def _event(body: str) -> dict[str, Any]:
    return {"Records": [{"messageId": "r0", "receiptHandle": "h0", "body": body, "md5OfBody": "",
                         "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "0"},
                         "messageAttributes": {}, "eventSource": "aws:sqs", "awsRegion": "eu-west-1",
                         "eventSourceARN": "arn:aws:sqs:eu-west-1:123456789012:q"}]}  # fmt: skip


def main() -> int:
    case, prepared = sys.argv[1], json.loads(Path(sys.argv[2]).read_text())
    run = {"api": api, "api-baseline": api_baseline, "deliver": deliver, "deliver-baseline": deliver_baseline}[case]
    start = time.perf_counter()  # each case imports what it uses: the import is timed with the request
    run(prepared)
    print(json.dumps({"seconds": time.perf_counter() - start}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
