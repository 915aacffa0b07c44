"""Real boto3 clients whose calls never leave the process (what botocore's Stubber does, in any order).

Clients get the product's botocore config (mailrelay.adapters.aws) and serialise requests as usual;
a ``before-call`` hook then answers from the fakes in bench.fakes instead of sending the request.
So the CPU botocore spends per call is counted; the network is stood in for by a sleep of
``aws_latency_ms()`` per call (bench.latency says where the default comes from).
"""

from __future__ import annotations

import contextvars
import time
from types import SimpleNamespace
from typing import Any

import boto3
from botocore import xform_name

from bench.fakes import Calls, FakeDynamo, FakeS3, FakeSQS
from bench.latency import aws_latency_ms
from mailrelay.adapters.aws import boto_config

_params: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("params")
_OK = SimpleNamespace(status_code=200, headers={}, raw=None, content=b"", text="")


def stubbed(service: str, fake: Any, latency_ms: float | None = None) -> Any:
    """``latency_ms``: the round trip each call waits (default: ``aws_latency_ms()``, from the environment)."""
    delay = (aws_latency_ms() if latency_ms is None else latency_ms) / 1000
    session = boto3.session.Session(region_name="eu-west-1", aws_access_key_id="bench", aws_secret_access_key="bench")
    client = session.client(service, config=boto_config())  # type: ignore[call-overload]  # as the product's

    def keep(params: dict[str, Any], **kwargs: Any) -> None:
        _params.set(dict(params))

    def answer(model: Any, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        if delay > 0:
            time.sleep(delay)  # the round trip: the GIL is released, as it is while a socket waits
        method = getattr(fake, xform_name(model.name), None)
        if method is None:
            calls = getattr(fake, "calls", None)
            if calls is not None:  # answered empty, but still counted: every request costs
                calls.add(f"{service}.{model.name}")
            return _OK, {}
        return _OK, method(**_params.get())

    client.meta.events.register_first("before-parameter-build.*.*", keep)
    client.meta.events.register("before-call.*.*", answer)
    return client


def stubbed_clients(calls: Calls | None = None) -> tuple[Calls, dict[str, Any]]:
    calls = calls or Calls()
    fakes = {"sqs": FakeSQS(calls), "s3": FakeS3(calls), "dynamodb": FakeDynamo(calls)}
    return calls, {name: stubbed(name, fake) for name, fake in fakes.items()}
