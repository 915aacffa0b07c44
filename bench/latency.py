"""The API under AWS round trips: ``POST /v1/messages`` p50/p99 next to a minimal Powertools handler making
one SendMessage under the same latency, and the batch endpoint with 100 messages.

Every stubbed AWS call sleeps ``aws_latency_ms()`` (bench.stubs). The default, 4 ms, is an assumption
for one in-region call from Lambda over a kept-alive HTTPS connection: AWS documents DynamoDB's
GetItem/PutItem at single-digit milliseconds on average, measured at the service
(https://repost.aws/knowledge-center/dynamodb-high-latency: "most atomic operations, such as GetItem and
PutItem, ... average latencies in single-digit milliseconds"); it publishes no figure for SQS, which
we assume is the same order. Set ``MAILRELAY_BENCH_AWS_LATENCY_MS`` (or ``python -m bench
--aws-latency-ms``) to try other figures; 0 gives the CPU-only figures of case ``api``.

The measuring side runs in a fresh interpreter: ``python -m bench.latency single|baseline|batch --count N``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.cases import Config
    from bench.table import Row

LATENCY_ENV = "MAILRELAY_BENCH_AWS_LATENCY_MS"
DEFAULT_LATENCY_MS = 4.0
BATCH = 100
# As template.yaml sets it for every function: each submission reads the client's suppression list.
SUPPRESSIONS_TABLE = "mailrelay-bench-suppressions"


def aws_latency_ms() -> float:
    return float(os.environ.get(LATENCY_ENV) or DEFAULT_LATENCY_MS)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


# -- the measuring side (a fresh interpreter) ---------------------------------------------------------


def _timed(handler: Any, event: dict[str, Any], context: Any, count: int, expect: int) -> list[float]:
    """Milliseconds per invocation, after a warm-up (the first invocation builds clients and caches)."""
    for _ in range(min(20, count)):
        response = handler(event, context)
    assert response["statusCode"] == expect, response
    durations = []
    for _ in range(count):
        start = time.perf_counter()
        handler(event, context)
        durations.append((time.perf_counter() - start) * 1000)
    return durations


def _api_handler() -> tuple[Any, Any]:
    """The API function as Lambda builds it, over the stubbed clients."""
    from bench.stubs import stubbed_clients

    os.environ.setdefault("MAILRELAY_SUPPRESSIONS_TABLE", SUPPRESSIONS_TABLE)
    calls, clients = stubbed_clients()
    import functions.api.app as app
    from mailrelay.settings import get_settings
    from mailrelay.wiring import Services

    operations = app.build_operations(get_settings(), Services(get_settings(), **clients))
    return calls, app.create_handler(lambda: operations)


def batch_event() -> dict[str, Any]:
    from bench.workers import api_event

    event = api_event()
    one = json.loads(event["body"])
    event["body"] = json.dumps({"messages": [one] * BATCH})
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/v1/messages/batch"
    event["routeKey"] = event["requestContext"]["routeKey"] = "POST /v1/messages/batch"
    return event


def run(case: str, count: int) -> dict[str, Any]:
    from bench.workers import api_event, lambda_context

    if case == "baseline":
        from bench.workers import run_api_baseline

        captured: dict[str, Any] = {}
        import bench.workers as workers

        real = workers._time_invocations

        def timed(handler: Any, event: dict[str, Any], context: Any, n: int) -> float:
            captured["durations"] = _timed(handler, event, context, n, 202)
            return 0.0

        workers._time_invocations = timed  # type: ignore[assignment]
        try:
            result = run_api_baseline(count)
        finally:
            workers._time_invocations = real
        return {"durations": captured["durations"], "calls": result["calls"], "messages": count + min(20, count)}
    calls, handler = _api_handler()
    context = lambda_context("mailrelay-api")
    if case == "single":
        durations = _timed(handler, api_event(), context, count, 202)
        messages = count + min(20, count)
    else:
        durations = _timed(handler, batch_event(), context, count, 200)
        messages = (count + min(20, count)) * BATCH
    return {"durations": durations, "calls": dict(calls.counts), "messages": messages}


def requests_per_message(calls: dict[str, int], messages: int) -> dict[str, float]:
    """AWS requests by operation, per message (the fakes' own tallies such as ``sqs.messages`` left out)."""
    return {name: n / messages for name, n in sorted(calls.items()) if name.split(".")[1][:1].isupper()}


# -- the case ---------------------------------------------------------------------------------------


def api_latency(cfg: Config) -> list[Row]:
    from bench.cases import _python
    from bench.table import Row

    count = 200 if cfg.quick else 1000
    latency = aws_latency_ms()
    p50, p99, base50, base99, batch50, batch_per_msg = [], [], [], [], [], []
    ours_calls: dict[str, float] = {}
    batch_calls: dict[str, float] = {}
    for run_ in range(cfg.runs):
        ours = _python("-m", "bench.latency", "single", "--count", str(count))
        base = _python("-m", "bench.latency", "baseline", "--count", str(count))
        batch = _python("-m", "bench.latency", "batch", "--count", str(max(10, count // 20)))
        p50.append(statistics.median(ours["durations"]))
        p99.append(percentile(ours["durations"], 99))
        base50.append(statistics.median(base["durations"]))
        base99.append(percentile(base["durations"], 99))
        batch50.append(statistics.median(batch["durations"]))
        batch_per_msg.append(batch50[-1] / BATCH)
        ours_calls = requests_per_message(ours["calls"], ours["messages"])
        batch_calls = requests_per_message(batch["calls"], batch["messages"])
        cfg.log(f"  api latency run {run_ + 1}/{cfg.runs}: p50 {p50[-1]:.1f} ms (baseline {base50[-1]:.1f}), "
                f"p99 {p99[-1]:.1f} ms (baseline {base99[-1]:.1f}), batch of {BATCH} {batch50[-1]:.0f} ms")  # fmt: skip

    def calls_note(calls: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in calls.items())

    where = f"every AWS call waits {latency:g} ms (MAILRELAY_BENCH_AWS_LATENCY_MS; see bench/latency.py)"
    return [
        Row("4b api latency", "POST /v1/messages p50", p50, "Powertools + one SendMessage, p50", base50, "ms",
            "<= 1.5x", higher_is_better=False, note=f"{where}; requests per message: {calls_note(ours_calls)}"),
        Row("4b api latency", "POST /v1/messages p99", p99, "Powertools + one SendMessage, p99", base99, "ms",
            higher_is_better=False),
        Row("4b api latency", f"POST /v1/messages/batch ({BATCH} messages) p50", batch50, unit="ms",
            higher_is_better=False, note=f"requests per message: {calls_note(batch_calls)}"),
        Row("4b api latency", "batch p50 per message", batch_per_msg, "single POST p50", p50, "ms",
            higher_is_better=False),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("case", choices=["single", "baseline", "batch"])
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args()
    from bench.workers import _env

    _env()
    print(json.dumps(run(args.case, args.count)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
