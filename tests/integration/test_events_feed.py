"""GET /v1/events through the real API handler over moto: events the events function stored (from the
messages table's stream) come back to the client that sent the messages, oldest first, page by page."""

from __future__ import annotations

import boto3
import pytest

from mailrelay.events.settings import get_event_settings
from mailrelay.settings import get_settings
from mailrelay.wiring import Services
from tests.events_support import EventsPath
from tests.integration.conftest import Api

MESSAGE = {"from": "app@example.com", "to": ["alice@example.org"], "subject": "Hi", "text": "Hello."}


@pytest.fixture
def services(aws, monkeypatch) -> Services:
    monkeypatch.setenv("MAILRELAY_EVENTS_FEED_SETTLE_SECONDS", "0")  # no concurrent writers in these tests
    get_event_settings.cache_clear()
    return Services(get_settings())


@pytest.fixture
def events(aws) -> EventsPath:
    return EventsPath(aws)


def test_a_client_reads_its_own_events_page_by_page(api: Api, client_key, services, events):
    _, other_key = services.clients.create("other", ["example.com"])
    sent = [api("POST", "/v1/messages", MESSAGE, key=client_key).json()["id"] for _ in range(3)]
    api("POST", "/v1/messages", MESSAGE, key=other_key)
    events.drain()
    first = api("GET", "/v1/events?limit=2", key=client_key)
    assert first.status == 200
    page = first.json()
    assert [e["data"]["message_id"] for e in page["events"]] == sent[:2]
    assert {e["type"] for e in page["events"]} == {"message.accepted"}
    assert page["has_more"] is True
    rest = api("GET", f"/v1/events?limit=2&cursor={page['next_cursor']}", key=client_key).json()
    assert [e["data"]["message_id"] for e in rest["events"]] == sent[2:]
    assert rest["has_more"] is False


def test_filtered_by_message_and_type(api: Api, client_key, events):
    sent = [api("POST", "/v1/messages", MESSAGE, key=client_key).json()["id"] for _ in range(2)]
    events.drain()
    page = api("GET", f"/v1/events?message_id={sent[1]}&type=message.accepted,recipient.failed", key=client_key)
    assert [e["data"]["message_id"] for e in page.json()["events"]] == [sent[1]]
    none = api("GET", f"/v1/events?message_id={sent[1]}&type=recipient.failed", key=client_key)
    assert none.json()["events"] == []


def test_another_clients_message_id_shows_nothing(api: Api, client_key, services, events):
    _, other_key = services.clients.create("other", ["example.com"])
    theirs = api("POST", "/v1/messages", MESSAGE, key=other_key).json()["id"]
    events.drain()
    page = api("GET", f"/v1/events?message_id={theirs}", key=client_key)
    assert page.status == 200 and page.json()["events"] == []


def test_bad_parameters_are_precise_problems(api: Api, client_key):
    answer = api("GET", "/v1/events?since=yesterday&limit=500", key=client_key)
    assert answer.status == 422 and answer.headers["Content-Type"] == "application/problem+json"
    assert {e["field"] for e in answer.json()["errors"]} == {"since", "limit"}


def test_the_feed_needs_a_key(api: Api):
    assert api("GET", "/v1/events").status == 401


def test_many_events_reach_the_bus_in_puts_of_ten(aws):
    from datetime import UTC, datetime

    from mailrelay.adapters.eventbridge import EventBridgeBus
    from mailrelay.events.model import Event, EventData

    calls = []
    real = boto3.client("events")

    class Counting:
        def put_events(self, Entries):
            calls.append(len(Entries))
            return real.put_events(Entries=Entries)

    now = datetime.now(UTC)
    batch = [
        Event(id=f"evt_{n:032x}", type="message.accepted", created_at=now,
              data=EventData(message_id=f"{n:032x}", client_id="shop", state="queued", attempt=0))
        for n in range(23)
    ]  # fmt: skip
    path = EventsPath(aws)
    EventBridgeBus(aws.names["EventBus"], Counting()).publish(batch)
    assert calls == [10, 10, 3]
    assert sorted(b["detail"]["id"] for b in path.on_bus()) == sorted(e.id for e in batch)
