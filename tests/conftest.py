"""Shared fixtures: moto stands in for AWS, with the resources template.yaml declares."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, settings
from moto import mock_aws

from local_stack.provision import LocalResources, provision
from mailrelay.events.settings import get_event_settings
from mailrelay.settings import Settings, get_settings, settings_from
from mailrelay.webhooks.settings import get_webhook_settings

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"

os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "mailrelay-tests")


# Hypothesis profiles for every suite. No deadlines: these tests assert behaviour, never speed.
# ci (the default, used by `make test`) is derandomized so a landing run is reproducible, with a couple of
# hundred examples per property; soak (HYPOTHESIS_PROFILE=soak) explores new random examples every time.
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "soak", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def load_event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalResources]:
    """A fresh moto account with the template's queues, tables and bucket; env set as in Lambda."""
    for var in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    with mock_aws():
        resources = provision(boto3.session.Session())
        for key, value in resources.environment.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        get_event_settings.cache_clear()
        get_webhook_settings.cache_clear()
        yield resources
    get_settings.cache_clear()
    get_event_settings.cache_clear()
    get_webhook_settings.cache_clear()


@pytest.fixture
def settings(aws: LocalResources) -> Settings:
    return settings_from(dict(os.environ))
