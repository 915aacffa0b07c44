"""What a million messages cost in AWS requests and Lambda time, by entry path, beside SES's own API.

Counted, not estimated: every request our code makes goes through the bench's fakes, which tally it by
operation. The requests no code of ours makes are modelled from counted units and named as such: API
Gateway (one per HTTP request) and Lambda's SQS poller (one ReceiveMessage and one DeleteMessageBatch
per delivery invocation, as the event source mapping polls), and the events function's invocations (one
per 100 stream records, its BatchSize: full batches, as at volume). Lambda GB-seconds = each invocation's
measured duration, rounded up to the millisecond as Lambda bills it, times the function's MemorySize
read from template.yaml. Prices: bench/prices.py.

Item sizes: the bench's status record (one recipient) is under 1 KB and every read under 4 KB, so one
request unit per item; each SQS body is under 64 KB, so one request each.

Run as ``python -m bench.cost deliver --count N`` for the delivery side (a fresh interpreter).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.prices import PRICES, PRICES_DATE, REGION, usd

if TYPE_CHECKING:
    from bench.cases import Config
    from bench.table import Row

ROOT = Path(__file__).resolve().parents[1]
SIMULATED_RCPT = "delivered@simulator.mailrelay.example"

# The price each counted operation is billed at, in units per request ("per key"/"per item" tallies where
# one request carries several).
_BILLED: dict[str, tuple[str, float]] = {
    "dynamodb.GetItem": ("dynamodb.read_unit", 1), "dynamodb.keys_read": ("dynamodb.read_unit", 1),
    "dynamodb.PutItem": ("dynamodb.write_unit", 1), "dynamodb.UpdateItem": ("dynamodb.write_unit", 1),
    "dynamodb.DeleteItem": ("dynamodb.write_unit", 1), "dynamodb.items_written": ("dynamodb.write_unit", 1),
    "sqs.SendMessage": ("sqs.request", 1), "sqs.SendMessageBatch": ("sqs.request", 1),
    "sqs.DeleteMessage": ("sqs.request", 1), "sqs.ChangeMessageVisibility": ("sqs.request", 1),
    "sqs.ReceiveMessage (Lambda poller)": ("sqs.request", 1),
    "sqs.DeleteMessageBatch (Lambda poller)": ("sqs.request", 1),
    "s3.PutObject": ("s3.put", 1), "s3.GetObject": ("s3.get", 1), "s3.DeleteObject": ("s3.delete", 1),
    "apigw.request": ("apigw.http_request", 1), "lambda.invocation": ("lambda.request", 1),
    "dynamodb.Query": ("dynamodb.read_unit", 1), "events.entries": ("eventbridge.event", 1),
    # requests billed by what they carry (the tallies above), shown but not priced twice
    "dynamodb.BatchGetItem": ("", 0), "dynamodb.BatchWriteItem": ("", 0), "events.PutEvents": ("", 0),
}  # fmt: skip
UNITS = ("dynamodb.keys_read", "dynamodb.items_written", "events.entries")  # tallies of what requests carry
EVENTS_BATCH = 100  # template.yaml: the events function's BatchSize (stream records per invocation)


class FakeEvents:
    """EventBridge PutEvents: every entry accepted, each counted (EventBridge bills entries, not requests)."""

    def __init__(self, calls: Any) -> None:
        self.calls = calls

    def put_events(self, *, Entries: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        self.calls.add("events.PutEvents")
        self.calls.add("events.entries", len(Entries))
        return {"FailedEntryCount": 0, "Entries": [{"EventId": f"e{i}"} for i in range(len(Entries))]}


def memory_mb(code_uri: str, template: Path = ROOT / "template.yaml") -> int:
    """The MemorySize of the function whose CodeUri is ``code_uri``, else the Globals one."""
    text = template.read_text()
    blocks = re.split(r"\n  (?=[A-Za-z0-9]+:\n)", text)
    default = re.search(r"^Globals:.*?^\s+MemorySize:\s*(\d+)", text, re.S | re.M)
    for block in blocks:
        if re.search(rf"^\s+CodeUri:\s*{re.escape(code_uri)}/?\s*$", block, re.M):
            own = re.search(r"^\s+MemorySize:\s*(\d+)", block, re.M)
            if own:
                return int(own.group(1))
    if default is None:
        raise RuntimeError("no MemorySize in template.yaml")
    return int(default.group(1))


def billed_gb_seconds(durations_ms: list[float], memory: int) -> float:
    """Lambda bills each invocation's duration rounded up to the next millisecond."""
    return sum(math.ceil(ms) for ms in durations_ms) / 1000 * memory / 1024


def dollars_per_million(per_message: dict[str, float], gb_seconds: float) -> float:
    total = usd("lambda.gb_second_arm64", gb_seconds)
    for name, count in per_message.items():
        price, units = _BILLED.get(name, ("", 0))
        if price:
            total += usd(price, count * units)
    return total * 1_000_000


# -- delivery (a fresh interpreter) -----------------------------------------------------------------


def run_deliver(count: int) -> dict[str, Any]:
    """``count`` messages accepted as the API accepts them, then delivered by the real handler (batches of
    10, the template's BatchSize) to the delivery simulator, with the stubbed clients (latency and all)."""
    os.environ["MAILRELAY_UPSTREAMS"] = json.dumps([{"type": "simulator"}])
    os.environ.setdefault("MAILRELAY_EHLO_NAME", "deliver.bench")
    from datetime import UTC, datetime

    from bench.fakes import FakeDynamo, FakeS3, FakeSQS, fake_clients
    from bench.stubs import stubbed
    from bench.workers import lambda_context, sqs_events
    from mailrelay.compose import from_smtp
    from mailrelay.incoming import whole_message
    from mailrelay.settings import get_settings
    from mailrelay.wiring import Services

    settings = get_settings()
    calls = fake_clients()[0]
    sqs, dynamodb = FakeSQS(calls, keep_bodies=True), FakeDynamo(calls, keep_statuses=True)
    services = Services(settings, sqs=sqs, s3=FakeS3(calls), dynamodb=dynamodb)
    client = services.clients.store.get("bench")
    assert client is not None
    data = b"From: bench@example.com\r\nTo: " + SIMULATED_RCPT.encode() + b"\r\nSubject: bench\r\n\r\n"
    data += b"Lorem ipsum dolor sit amet, consectetur adipiscing elit.\r\n" * 80
    for _ in range(count):
        message = whole_message(data, bare_newlines="reject", max_bytes=settings.max_message_bytes)
        sub = from_smtp(mail_from="bench@example.com", rcpt_to=[SIMULATED_RCPT], data=message, settings=settings,
                        now=datetime.now(UTC), smtputf8=False)  # fmt: skip
        services.submissions.submit(client, sub)
    assert sqs.bodies is not None

    import functions.deliver.app as app
    from mailrelay.delivery.settings import get_delivery_settings
    from mailrelay.delivery.wiring import build_worker

    calls, fsqs, fs3, fdynamo = fake_clients()
    accepted = dict(dynamodb.statuses or {})  # each status as first written (delivery replaces them)
    fdynamo.statuses = dynamodb.statuses
    worker = build_worker(settings, get_delivery_settings(), sqs=stubbed("sqs", fsqs), s3=stubbed("s3", fs3),
                          dynamodb=stubbed("dynamodb", fdynamo))  # fmt: skip
    handler = app.create_handler(lambda: worker, get_delivery_settings)
    context = lambda_context("mailrelay-deliver")
    durations, failures = [], 0
    for event in sqs_events(sqs.bodies):
        begin = time.perf_counter()
        failures += len(handler(event, context)["batchItemFailures"])
        durations.append((time.perf_counter() - begin) * 1000)
    delivered = sum(1 for s in (fdynamo.statuses or {}).values() if s.get("state", {}).get("S") == "delivered")
    events = _events_path(accepted, fdynamo.statuses or {})
    return {"durations": durations, "calls": dict(calls.counts), "messages": len(sqs.bodies), "failures": failures,
            "delivered": delivered, **events}  # fmt: skip


def _events_path(accepted: dict[str, Any], final: dict[str, Any]) -> dict[str, Any]:
    """Each message's three status changes (accepted, leased, delivered), as the table's stream hands them to
    the events function: the real recorder (events table, EventBridge, webhook fan-out) on stubbed clients."""
    for name, value in (
        ("MAILRELAY_EVENTS_TABLE", "mailrelay-bench-events"),
        ("MAILRELAY_EVENT_BUS_NAME", "bench"),
        ("MAILRELAY_WEBHOOKS_TABLE", "mailrelay-bench-webhooks"),
        ("MAILRELAY_WEBHOOK_QUEUE_URL", "https://sqs.eu-west-1.amazonaws.com/123456789012/hooks"),
    ):
        os.environ.setdefault(name, value)  # as template.yaml sets them
    from bench.fakes import Calls, FakeDynamo, FakeSQS
    from bench.stubs import stubbed
    from mailrelay.adapters.dynamo import from_item
    from mailrelay.events.settings import get_event_settings
    from mailrelay.models.status import MessageStatus
    from mailrelay.webhooks.settings import get_webhook_settings
    from mailrelay.wiring import build_event_recorder

    calls = Calls()
    recorder = build_event_recorder(
        get_event_settings(),
        get_webhook_settings(),
        dynamodb=stubbed("dynamodb", FakeDynamo(calls)),
        eventbridge=stubbed("events", FakeEvents(calls)),
        sqs=stubbed("sqs", FakeSQS(calls)),
    )
    durations, records = [], 0
    for message_id, item in accepted.items():
        queued = MessageStatus.model_validate(from_item(item))
        leased = queued.model_copy(update={"state": "sending"})
        done = MessageStatus.model_validate(from_item(final[message_id]))
        for old, new in ((None, queued), (queued, leased), (leased, done)):
            begin = time.perf_counter()
            recorder.record(old, new)
            durations.append((time.perf_counter() - begin) * 1000)
            records += 1
    return {"events_durations": durations, "events_calls": dict(calls.counts), "stream_records": records}  # fmt: skip


# -- the case -----------------------------------------------------------------------------------------


def _per_message(calls: dict[str, int], messages: int) -> dict[str, float]:
    return {k: v / messages for k, v in calls.items() if k in _BILLED}


def _smtp_bridge(cfg: Config) -> tuple[dict[str, float], int]:
    from bench import clients
    from bench.bridge import bridge
    from bench.latency import SUPPRESSIONS_TABLE

    sessions, per_session = (4, 25) if cfg.quick else (10, 100)
    with bridge(1, MAILRELAY_SUPPRESSIONS_TABLE=SUPPRESSIONS_TABLE) as br:
        clients.smtplib_load(br.ports["plain"], sessions=sessions, per_session=per_session, size=5 * 1024)
    stats = br.stats
    accepted = stats.accepted or sessions * per_session
    return _per_message(stats.calls, accepted), accepted


def _merge(*parts: dict[str, float]) -> dict[str, float]:
    merged: dict[str, float] = {}
    for part in parts:
        for k, v in part.items():
            merged[k] = merged.get(k, 0.0) + v
    return merged


def _by_service(per_message: dict[str, float]) -> str:
    services: dict[str, float] = {}
    for name, n in per_message.items():
        if name in UNITS:
            continue  # units, not requests
        service = name.split(".")[0]
        services[service] = services.get(service, 0.0) + n
    return ", ".join(f"{s} {n:.2f}" for s, n in sorted(services.items()))


def cost(cfg: Config) -> list[Row]:
    from bench.cases import _python
    from bench.latency import BATCH, aws_latency_ms
    from bench.table import Row

    api_mem, deliver_mem = memory_mb("functions/api"), memory_mb("functions/deliver")
    count = 200 if cfg.quick else 1000
    single = _python("-m", "bench.latency", "single", "--count", str(count))
    batch = _python("-m", "bench.latency", "batch", "--count", str(max(10, count // 20)))
    deliver = _python("-m", "bench.cost", "deliver", "--count", str(count))
    if deliver["failures"] or deliver["delivered"] != deliver["messages"]:
        raise RuntimeError(f"delivery did not deliver everything: {deliver['delivered']}/{deliver['messages']}")
    smtp, smtp_messages = _smtp_bridge(cfg)

    invocations = len(deliver["durations"])
    delivery = _per_message(deliver["calls"], deliver["messages"])
    delivery.update({"lambda.invocation": invocations / deliver["messages"],
                     "sqs.ReceiveMessage (Lambda poller)": invocations / deliver["messages"],
                     "sqs.DeleteMessageBatch (Lambda poller)": invocations / deliver["messages"]})  # fmt: skip
    delivery_gbs = billed_gb_seconds(deliver["durations"], deliver_mem) / deliver["messages"]
    # The events function: one invocation per EVENTS_BATCH stream records (full batches, as at volume); its
    # duration is the sum of its records' (each record's measured time, rounded up once per invocation).
    events = _per_message(deliver["events_calls"], deliver["messages"])
    invocations_events = deliver["stream_records"] / EVENTS_BATCH
    events["lambda.invocation"] = invocations_events / deliver["messages"]
    events_ms = sum(deliver["events_durations"])
    events_gbs = billed_gb_seconds([events_ms / invocations_events] * math.ceil(invocations_events),
                                   memory_mb("functions/events")) / deliver["messages"]  # fmt: skip
    delivery = _merge(delivery, events)
    delivery_gbs += events_gbs
    n_single = len(single["durations"])
    api_single = _per_message(single["calls"], single["messages"])
    api_single.update({"apigw.request": 1.0, "lambda.invocation": 1.0})
    single_gbs = billed_gb_seconds(single["durations"], api_mem) / n_single
    api_batch = _per_message(batch["calls"], batch["messages"])
    api_batch.update({"apigw.request": 1 / BATCH, "lambda.invocation": 1 / BATCH})
    batch_gbs = billed_gb_seconds(batch["durations"], api_mem) / (len(batch["durations"]) * BATCH)

    ses = usd("ses.email", 1_000_000)
    paths = {
        "API, single POST": (_merge(api_single, delivery), single_gbs + delivery_gbs),
        f"API, batch of {BATCH}": (_merge(api_batch, delivery), batch_gbs + delivery_gbs),
        "SMTP bridge": (_merge(smtp, delivery), delivery_gbs),
    }
    rows = []
    for name, (per_message, gbs) in paths.items():
        dollars = dollars_per_million(per_message, gbs)
        cfg.log(f"  cost {name}: {_by_service(per_message)}; {gbs * 1e6:.0f} GB-s per 1M; ${dollars:.2f} per 1M")
        rows.append(Row("7 cost", f"{name}: $ per 1M messages (+ delivery)", [dollars], "SES API, same volume",
                        [ses], "$", higher_is_better=False,
                        note=f"requests per message: {_by_service(per_message)}; Lambda "
                             f"{gbs * 1e6:,.0f} GB-s per 1M"))  # fmt: skip
    rows.append(Row("7 cost", "delivery and events: requests per message", [sum(v for k, v in delivery.items()
                    if k not in UNITS)], unit="req/msg", higher_is_better=False,
                    note=f"{_by_service(delivery)}; {invocations} invocations of up to 10 records; "
                         f"{deliver_mem} MB (template.yaml)"))  # fmt: skip
    rows[0].note += (
        f"; prices {REGION}, arm64, DynamoDB on-demand, taken {PRICES_DATE} (bench/prices.py; "
        f"{sum('NOT VERIFIED' in p.verified for p in PRICES.values())} of them not verified); "
        f"AWS round trip {aws_latency_ms():g} ms; API {api_mem} MB; SMTP: {smtp_messages} messages "
        "from an allowlisted network, Fargate and NLB hours not included (not per message); delivery includes "
        f"the events path: {deliver['stream_records'] / deliver['messages']:g} stream records per message (free "
        f"to read for Lambda), events function in full batches of {EVENTS_BATCH}: {_by_service(events)}"
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["deliver"])
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    from bench.workers import _env

    _env()
    print(json.dumps(run_deliver(args.count)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
