"""Delivery events from real state transitions: the real submission path and delivery worker against a real
SMTP upstream write the messages table; its stream drives the real events handler; each event is stored and
put on the event bus (moto), once per change, with ids that repeat exactly when a change is handled again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import mailrelay.submission
from tests.events_support import EventsPath
from tests.support import free_port


@pytest.fixture
def upstream(delivery, smtp_server, upstream_secret):
    server = smtp_server("starttls")
    delivery.configure(delivery.upstream(server, "starttls", secret_id=upstream_secret))
    return server


@pytest.fixture
def events(aws) -> EventsPath:
    return EventsPath(aws)


def kinds(found, message_id: str) -> list[tuple[str, str | None, int]]:
    return [
        (e["type"], e["data"].get("recipient"), e["data"]["attempt"])
        for e in found
        if e["data"]["message_id"] == message_id
    ]


def test_accepted_then_per_recipient_outcomes_reach_the_store_and_the_bus(delivery, upstream, events):
    # Given: bob does not exist, carol's mailbox is busy once
    upstream.recorder.rcpt_replies = {
        "bob@example.org": "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown",
        "carol@example.org": "450 4.2.1 Mailbox busy",
    }
    message_id = delivery.submit(rcpt=("alice@example.org", "bob@example.org", "carol@example.org"))
    record = delivery.receive()
    delivery.invoke(record)
    upstream.recorder.rcpt_replies.pop("carol@example.org")
    delivery.clock.advance(minutes=2)
    delivery.invoke(record)
    # When: the stream is handled
    events.drain()
    # Then: one event per change, in order
    expected = [
        ("message.accepted", None, 0),
        ("recipient.delivered", "alice@example.org", 1),
        ("recipient.failed", "bob@example.org", 1),
        ("recipient.deferred", "carol@example.org", 1),
        ("recipient.delivered", "carol@example.org", 2),
    ]
    stored = events.stored()
    assert kinds(stored, message_id) == expected
    failed = next(e for e in stored if e["type"] == "recipient.failed")
    assert failed["data"]["reply"]["enhanced"] == "5.1.1" and failed["data"]["state"] == "failed"
    assert failed["data"]["client_id"] == "shop" and failed["data"]["upstream"]
    bus = events.on_bus()
    assert {(b["source"], b["detail-type"]) for b in bus} == {("mailrelay", t) for t, _, _ in expected}
    assert sorted(b["detail"]["id"] for b in bus) == sorted(e["id"] for e in stored)


def test_a_recipient_deferred_on_each_attempt_has_one_event_per_attempt(delivery, upstream, events):
    upstream.recorder.data_replies = ["451 4.3.0 try later", "451 4.3.0 try later"]
    message_id = delivery.submit()
    record = delivery.receive()
    for _ in range(3):
        delivery.invoke(record)
        delivery.clock.advance(minutes=30)
    events.drain()
    assert kinds(events.stored(), message_id) == [
        ("message.accepted", None, 0),
        ("recipient.deferred", "alice@example.org", 1),
        ("recipient.deferred", "alice@example.org", 2),
        ("recipient.delivered", "alice@example.org", 3),
    ]


def test_scheduled_and_expired(delivery, upstream_secret, events, monkeypatch):
    monkeypatch.setattr(mailrelay.submission, "SQS_MAX_DELAY", 0)
    delivery.configure({"host": "localhost", "port": free_port(), "tls": "starttls", "ca_file": delivery.ca_file,
                        "secret_id": upstream_secret})  # fmt: skip
    now = datetime.now(UTC)
    message_id = delivery.submit(send_at=now + timedelta(minutes=1), expires_at=now + timedelta(minutes=10))
    record = delivery.receive()
    delivery.clock.advance(minutes=2)
    delivery.invoke(record)  # the upstream is down: deferred
    delivery.clock.advance(minutes=10)
    delivery.invoke(record)  # past the expiry
    events.drain()
    found = [e for e in events.stored() if e["data"]["message_id"] == message_id]
    assert [(e["type"], e["data"]["state"]) for e in found] == [
        ("message.accepted", "scheduled"),
        ("message.scheduled", "scheduled"),
        ("recipient.deferred", "deferred"),
        ("message.expired", "expired"),
    ]


def test_a_send_whose_outcome_is_unknown_is_uncertain(delivery, upstream, upstream_secret, events):
    delivery.configure(delivery.upstream(upstream, "starttls", secret_id=upstream_secret),
                       MAILRELAY_SMTP_DATA_DONE_TIMEOUT="0.3")  # fmt: skip
    upstream.recorder.data_delay = 1.0
    message_id = delivery.submit(delivery="at_most_once")
    delivery.invoke(delivery.receive())
    events.drain()
    assert kinds(events.stored(), message_id) == [("message.accepted", None, 0), ("message.uncertain", None, 1)]


def test_a_change_handled_twice_yields_the_same_events_not_new_ones(delivery, upstream, events):
    message_id = delivery.submit()
    delivery.invoke(delivery.receive())
    events.drain()
    first = events.stored()
    first_bus = events.on_bus()
    # When: Lambda hands the same stream records over again (a retried batch)
    events.poller._pending = {k: [] for k in events.poller._pending}
    events.poller._iterators.clear()
    events.drain()
    # Then: nothing new is stored; the bus sees the same ids again, which consumers drop
    assert events.stored() == first
    again = events.on_bus()
    assert sorted(b["detail"]["id"] for b in again) == sorted(b["detail"]["id"] for b in first_bus)
    assert len(kinds(first, message_id)) == 2


class FlakyBus:
    """EventBridge refusing every entry of the first ``failures`` PutEvents calls (an outage, throttling)."""

    def __init__(self, real, failures: int) -> None:
        self.real = real
        self.failures = failures

    def put_events(self, Entries):
        if self.failures > 0:
            self.failures -= 1
            refused = {"ErrorCode": "InternalFailure", "ErrorMessage": "try again"}
            return {"FailedEntryCount": len(Entries), "Entries": [refused for _ in Entries]}
        return self.real.put_events(Entries=Entries)


def test_a_failed_put_holds_the_record_back_until_it_succeeds_and_loses_nothing(delivery, upstream, aws):
    import boto3

    from mailrelay.events.settings import get_event_settings
    from mailrelay.wiring import build_event_recorder

    bus = FlakyBus(boto3.client("events"), failures=2)  # both tries of the first record's put
    events = EventsPath(aws, build_event_recorder(get_event_settings(), eventbridge=bus))
    ids = [delivery.submit() for _ in range(3)]
    # When: the batch fails on its first record (the later ones wait: they come again from the checkpoint)
    assert events.poller.poll_once() == 3
    assert events.on_bus() == []
    # Then: the checkpoint stays at the failed record; the retry from there publishes it and the later ones,
    # each once
    events.drain()
    again = events.on_bus()
    assert sorted(b["detail"]["data"]["message_id"] for b in again) == sorted(ids)
    stored = events.stored()
    assert {e["data"]["message_id"] for e in stored} == set(ids)
    assert sorted(b["detail"]["id"] for b in again) == sorted(e["id"] for e in stored)
