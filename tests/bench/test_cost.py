"""The cost arithmetic of `make bench`: the template's memory, Lambda's rounding, prices applied to counts.

No timing: the durations here are given, not measured.
"""

from __future__ import annotations

import pytest

from bench.cost import billed_gb_seconds, dollars_per_million, memory_mb
from bench.latency import DEFAULT_LATENCY_MS, LATENCY_ENV, aws_latency_ms, percentile
from bench.prices import PRICES, PRICES_DATE, usd


def test_memory_comes_from_the_template() -> None:
    # Given template.yaml, whose functions take Globals' MemorySize unless they set their own
    # Then the API and delivery functions' memory is read from it, not assumed
    assert memory_mb("functions/api") == memory_mb("functions/deliver") > 0


def test_each_invocation_is_billed_rounded_up_to_the_millisecond() -> None:
    # 1.2 ms and 3.0 ms at 1024 MB: 2 ms + 3 ms = 5 ms of 1 GB
    assert billed_gb_seconds([1.2, 3.0], 1024) == pytest.approx(0.005)
    assert billed_gb_seconds([0.01], 512) == pytest.approx(0.0005)


def test_dollars_per_million_add_each_counted_request_at_its_price() -> None:
    per_message = {"sqs.SendMessage": 1.0, "dynamodb.PutItem": 1.0, "apigw.request": 1.0, "sqs.messages": 1.0}
    expected = (usd("sqs.request", 1) + usd("dynamodb.write_unit", 1) + usd("apigw.http_request", 1)) * 1e6
    assert dollars_per_million(per_message, 0.0) == pytest.approx(expected)  # tallies that are not requests: free
    assert dollars_per_million({}, 1.0) == pytest.approx(usd("lambda.gb_second_arm64", 1) * 1e6)


def test_every_price_names_its_source_and_whether_it_was_verified() -> None:
    assert PRICES_DATE == "2026-12-02"
    for price in PRICES.values():
        assert price.source.startswith("https://") and price.verified


def test_the_round_trip_is_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LATENCY_ENV, raising=False)
    assert aws_latency_ms() == DEFAULT_LATENCY_MS == 4.0
    monkeypatch.setenv(LATENCY_ENV, "0")
    assert aws_latency_ms() == 0.0
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0


def test_a_batch_request_is_shown_but_priced_by_what_it_carries() -> None:
    # One BatchGetItem reading 3 keys: three read units, not four
    per_message = {"dynamodb.BatchGetItem": 1.0, "dynamodb.keys_read": 3.0}
    assert dollars_per_million(per_message, 0.0) == pytest.approx(usd("dynamodb.read_unit", 3) * 1e6)


def test_eventbridge_is_priced_per_entry_not_per_request() -> None:
    # One PutEvents carrying 2 entries: two events
    per_message = {"events.PutEvents": 1.0, "events.entries": 2.0}
    assert dollars_per_million(per_message, 0.0) == pytest.approx(usd("eventbridge.event", 2) * 1e6)
