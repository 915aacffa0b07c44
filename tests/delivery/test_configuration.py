"""Upstream configuration: loaded from an env var or SSM, and a clear error naming the field."""

from __future__ import annotations

import json
import os

import boto3
import pytest

from mailrelay.delivery.policy import retry_delay
from mailrelay.delivery.replies import reply_from
from mailrelay.delivery.settings import delivery_settings_from
from mailrelay.delivery.upstreams import candidates_for, load_upstreams, parse_upstreams
from mailrelay.settings import ConfigurationError
from tests.conftest import load_event
from tests.support import LambdaContext


@pytest.mark.parametrize(
    ("upstreams", "message"),
    [
        ([{"host": "smtp.example.com", "port": 70000}], "upstreams[0].port"),
        ([{"host": "smtp.example.com", "port": 587, "tls": "ssl"}], "upstreams[0].tls"),
        ([{"host": "smtp.example.com", "port": 587, "pasword": "x"}], "upstreams[0].pasword"),
        ([{"host": "relay", "port": 2525, "insecure_plaintext": True, "secret_id": "s"}], "credentials never travel"),
        # AWS blocks outbound port 25 from Lambda: such mail would retry until it expired
        ([{"host": "mx.example.com", "port": 25}], "upstreams[0].port: port 25 is blocked"),
        ([{"host": "smtp.example.com", "port": 587, "ca_file": "/nonexistent/ca.pem"}], "upstreams[0].ca_file"),
        ([], "at least one upstream"),
    ],
)
def test_bad_upstream_configuration_names_the_field(upstreams, message):
    with pytest.raises(ConfigurationError) as info:
        parse_upstreams(json.dumps(upstreams), "MAILRELAY_UPSTREAMS")
    assert message in str(info.value) and "MAILRELAY_UPSTREAMS" in str(info.value)


def test_bad_configuration_fails_the_first_invocation_loudly(delivery):
    from functions.deliver.app import create_handler
    from mailrelay.delivery.wiring import build_worker

    settings = delivery_settings_from({**os.environ, "MAILRELAY_UPSTREAMS": '[{"host": "x.example", "port": "25x"}]'})
    handler = create_handler(lambda: build_worker(delivery.services.settings, settings), lambda: settings)
    with pytest.raises(ConfigurationError, match=r"upstreams\[0\]\.port"):
        handler(load_event("sqs_deliver.json"), LambdaContext())


def test_upstreams_from_an_ssm_parameter(aws):
    boto3.client("ssm").put_parameter(
        Name="/mailrelay/upstreams", Type="String",
        Value=json.dumps([{"name": "ses", "host": "email-smtp.eu-west-1.amazonaws.com", "port": 465,
                           "tls": "implicit", "secret_id": "mailrelay/ses"}]),
    )  # fmt: skip
    from mailrelay.adapters.parameters import SsmParameterReader

    settings = delivery_settings_from({"MAILRELAY_UPSTREAMS_PARAMETER": "/mailrelay/upstreams"})
    (upstream,) = load_upstreams(settings, SsmParameterReader().read)
    assert (upstream.name, upstream.port, upstream.tls) == ("ses", 465, "implicit")


def test_routing_by_sender_domain_then_priority():
    upstreams = parse_upstreams(json.dumps([
        {"name": "backup", "host": "b.example.net", "port": 587, "priority": 20},
        {"name": "main", "host": "a.example.net", "port": 587, "priority": 10},
        {"name": "brand", "host": "c.example.net", "port": 465, "tls": "implicit", "sender_domains": ["Brand.example"]},
    ]), "test")  # fmt: skip
    assert [u.name for u in candidates_for(upstreams, "news@brand.example")] == ["brand"]
    assert [u.name for u in candidates_for(upstreams, "orders@example.com")] == ["main", "backup"]


def test_sample_event_is_a_valid_queued_message():
    from mailrelay.models.queued_message import QueuedMessage, digest

    body = QueuedMessage.model_validate_json(load_event("sqs_deliver.json")["Records"][0]["body"])
    assert digest(body.inline_bytes()) == body.sha256


def test_replies_keep_code_enhanced_code_and_text():
    reply = reply_from(550, b"5.7.1 Service unavailable; client host blocked using zen.spamhaus.org")
    assert (reply.code, reply.enhanced) == (550, "5.7.1") and "spamhaus" in reply.text
    assert reply_from(250, b"Ok").enhanced is None
    assert reply_from(451, b"5.1.1 mismatched class").enhanced is None  # class must match the code


def test_backoff_grows_from_minutes_to_hours_and_is_capped():
    delays = [retry_delay(n, 60, 43_000) for n in range(1, 16)]  # +-10 % jitter
    assert 54 <= delays[0] <= 66 and 3600 < delays[7] < 3 * 3600
    assert max(delays) <= 43_000 and min(delays[-3:]) >= 0.9 * 43_000
