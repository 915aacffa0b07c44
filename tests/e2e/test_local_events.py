"""`mailrelay run`'s events path as a user sees it: the feed named in local.json, and each event in the log."""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.test_local_stack import stack  # noqa: F401 - the fixture
from tests.support import wait_for

pytestmark = pytest.mark.e2e


def test_a_messages_events_reach_the_feed_and_the_log(stack):  # noqa: F811 - the fixture
    info, _, _, log = stack
    assert info["events_url"] == f"{info['api_url']}/v1/events"
    auth = {"Authorization": f"Bearer {info['api_key']}"}
    message = {"from": "app@example.com", "to": ["alice@example.org"], "subject": "hi", "text": "hello"}
    sent = httpx.post(f"{info['api_url']}/v1/messages", headers=auth, json=message, timeout=30)
    assert sent.status_code == 202, sent.text
    message_id = sent.json()["id"]

    def events():
        got = httpx.get(info["events_url"], params={"message_id": message_id}, headers=auth, timeout=10)
        assert got.status_code == 200, got.text
        found = [e["type"] for e in got.json()["events"]]
        return found if "recipient.delivered" in found else None

    assert wait_for(events, 60, "the delivered event in the feed") == ["message.accepted", "recipient.delivered"]
    text = log.read_text()
    assert '"type":"recipient.delivered"' in text and message_id in text


def test_a_loopback_webhook_receives_signed_events(stack):  # noqa: F811 - the fixture
    from tests.webhook_receiver import WebhookReceiver

    info, _, _, _ = stack
    auth = {"Authorization": f"Bearer {info['api_key']}"}
    receiver = WebhookReceiver()
    try:
        created = httpx.post(f"{info['api_url']}/v1/webhooks", headers=auth, json={"url": receiver.url}, timeout=30)
        assert created.status_code == 201, created.text
        receiver.secrets.append(created.json()["secret"])
        message = {"from": "app@example.com", "to": ["alice@example.org"], "subject": "hi", "text": "hello"}
        sent = httpx.post(f"{info['api_url']}/v1/messages", headers=auth, json=message, timeout=30).json()["id"]

        def arrived():
            types = sorted(e["type"] for e in receiver.verified if e["data"]["message_id"] == sent)
            return types if len(types) >= 2 else None  # webhooks promise no order

        assert wait_for(arrived, 60, "signed webhooks") == ["message.accepted", "recipient.delivered"]
        assert receiver.unverified == 0
    finally:
        receiver.close()
