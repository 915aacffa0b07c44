"""The delivery simulator (an upstream of type "simulator"): each behaviour through the real delivery
handler, status records and retries, as production would record them."""

from __future__ import annotations

import hashlib
import json

import pytest

from mailrelay.delivery.upstreams import SIMULATOR_DOMAIN, parse_upstreams
from mailrelay.settings import ConfigurationError
from tests.events_support import EventsPath

SIMULATOR = {"type": "simulator"}


def at(local: str) -> str:
    return f"{local}@{SIMULATOR_DOMAIN}"


@pytest.fixture
def simulator(delivery):
    delivery.configure(SIMULATOR)
    return delivery


_events: dict[str, dict] = {}


def run(delivery, message_id: str, attempts: int = 1):
    """Invoke the handler for the message's record ``attempts`` times, moving the clock past each retry
    (its SQS record is received once: retries are the same record coming back)."""
    event = _events.get(message_id) or _events.setdefault(message_id, delivery.receive())
    failed: list[str] = []
    for _ in range(attempts):
        failed = delivery.invoke(event)
        delivery.clock.advance(hours=1)
    return delivery.status(message_id), failed


def reply_of(status, address: str):
    recipient = next(r for r in status.recipients if r.address == address)
    return recipient.state, recipient.reply and (recipient.reply.code, recipient.reply.enhanced)


@pytest.mark.parametrize(
    ("local", "state", "reply"),
    [
        ("delivered", "delivered", (250, "2.0.0")),
        ("delivered+signup-42", "delivered", (250, "2.0.0")),
        ("bounce", "failed", (550, "5.1.1")),
        ("policy", "failed", (550, "5.7.1")),
        ("nobody-here", "failed", (550, "5.1.1")),
    ],
)
def test_one_attempt_behaviours_reach_their_final_state_and_reply(simulator, local, state, reply):
    message_id = simulator.submit(rcpt=(at(local),))
    status, failed = run(simulator, message_id)
    assert failed == [] and status.state == state and status.attempts == 1
    assert reply_of(status, at(local)) == (state, reply) and status.upstream == "simulator"
    assert simulator.visible() + simulator.in_flight() == 0  # final: the record left the queue


def test_complaint_is_delivered_then_complained_through_the_feedback_path(simulator, aws):
    # Given: a message to a complaining recipient and to one that is only delivered
    events = EventsPath(aws)
    message_id = simulator.submit(rcpt=(at("complaint"), at("delivered")))
    # When: it is delivered
    status, failed = run(simulator, message_id)
    # Then: the complaint moved that recipient on, as an SES complaint would; the message stays delivered
    assert failed == [] and status.state == "delivered"
    assert reply_of(status, at("complaint")) == ("complained", (250, "2.0.0"))
    assert reply_of(status, at("delivered")) == ("delivered", (250, "2.0.0"))
    entry = simulator.services.suppressions.get("shop", at("complaint"))
    assert entry.reason == "complaint" and entry.source.message_id == message_id
    assert entry.source.added_by == "feedback"
    # And: the change is committed as events, after the delivery
    events.drain()
    found = [(e["type"], e["data"].get("recipient")) for e in events.stored() if e["data"]["message_id"] == message_id]
    assert found == [("message.accepted", None), ("recipient.delivered", at("complaint")),
                     ("recipient.delivered", at("delivered")), ("recipient.complained", at("complaint"))]  # fmt: skip
    # And: the next message to that address is refused at acceptance
    again = simulator.submit(rcpt=(at("complaint"),))
    assert simulator.status(again).recipients[0].state == "suppressed"


def test_bounce_at_rcpt_fails_that_recipient_only(simulator):
    message_id = simulator.submit(rcpt=(at("bounce"), at("delivered")))
    status, _ = run(simulator, message_id)
    assert reply_of(status, at("bounce")) == ("failed", (550, "5.1.1"))
    assert reply_of(status, at("delivered")) == ("delivered", (250, "2.0.0"))
    assert status.state == "failed" and "user unknown" in status.last_error


def test_policy_after_data_fails_every_recipient_of_the_transaction(simulator):
    message_id = simulator.submit(rcpt=(at("policy"), at("delivered")))
    status, _ = run(simulator, message_id)
    assert {r.state for r in status.recipients} == {"failed"}
    assert all(r.reply.enhanced == "5.7.1" for r in status.recipients)


def test_defer_is_deferred_twice_then_delivered_on_the_third_attempt(simulator):
    message_id = simulator.submit(rcpt=(at("defer"),))
    event = simulator.receive()
    for attempt in (1, 2):
        assert len(simulator.invoke(event)) == 1  # kept on the queue, hidden until the retry
        status = simulator.status(message_id)
        assert (status.state, status.attempts) == ("deferred", attempt) and status.next_attempt_at is not None
        assert reply_of(status, at("defer")) == ("deferred", (451, "4.3.0"))
        simulator.clock.advance(hours=1)
    assert simulator.invoke(event) == []
    status = simulator.status(message_id)
    assert (status.state, status.attempts) == ("delivered", 3)
    assert reply_of(status, at("defer")) == ("delivered", (250, "2.0.0"))


def test_defer_always_retries_until_the_message_expires(simulator):
    message_id = simulator.submit(rcpt=(at("defer-always+x"),))
    status, failed = run(simulator, message_id, attempts=3)
    assert (status.state, status.attempts, len(failed)) == ("deferred", 3, 1)
    simulator.clock.advance(days=4)  # past the default expiry (3 days)
    status, failed = run(simulator, message_id)
    assert status.state == "expired" and failed == []
    assert reply_of(status, at("defer-always+x")) == ("expired", (451, "4.3.0"))


def test_timeout_at_most_once_ends_uncertain(simulator):
    message_id = simulator.submit(rcpt=(at("timeout"),), delivery="at_most_once")
    status, failed = run(simulator, message_id)
    assert failed == [] and status.state == "uncertain" and status.completed_at is not None
    assert reply_of(status, at("timeout")) == ("uncertain", None) and "may have it" in status.last_error


def test_timeout_at_least_once_is_sent_again_until_it_expires(simulator):
    message_id = simulator.submit(rcpt=(at("timeout"),))
    status, failed = run(simulator, message_id, attempts=2)
    assert (status.state, status.attempts, len(failed)) == ("uncertain", 2, 1)
    assert status.completed_at is None and status.next_attempt_at is not None
    simulator.clock.advance(days=4)
    status, failed = run(simulator, message_id)
    assert status.state == "expired" and failed == []


def test_other_domains_go_to_the_smtp_upstream_in_the_same_attempt(delivery, smtp_server):
    server = smtp_server("starttls", auth=False)
    delivery.configure(SIMULATOR, delivery.upstream(server, "starttls"))
    message_id = delivery.submit(rcpt=("alice@example.org", at("bounce")))
    status, _ = run(delivery, message_id)
    assert reply_of(status, "alice@example.org")[0] == "delivered"
    assert reply_of(status, at("bounce")) == ("failed", (550, "5.1.1"))
    (sent,) = server.recorder.transactions
    assert sent.rcpt_tos == ["alice@example.org"]  # the simulator's recipient never reached the network
    assert status.upstream == f"simulator, localhost:{server.port}"


def test_copy_to_keeps_one_copy_of_each_message_given_to_the_simulator(delivery, tmp_path):
    delivery.configure({**SIMULATOR, "copy_to": str(tmp_path)})
    refused = delivery.submit(rcpt=(at("bounce"),))
    deferred = delivery.submit(rcpt=(at("defer"),))
    run(delivery, refused, attempts=3)  # one event holds both records: defer is tried three times
    assert (delivery.status(refused).state, delivery.status(deferred).state) == ("failed", "delivered")
    copies = {hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.glob("*.eml")}
    assert copies == {delivery.status(refused).sha256, delivery.status(deferred).sha256}
    assert len(list(tmp_path.glob("*.eml"))) == 2


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"type": "simulator", "domian": "x.example"}, "upstreams[0].domian"),
        ({"type": "simulator", "domain": "bad domain"}, "upstreams[0].domain"),
        ({"type": "smtp", "host": "smtp.example.com", "port": 587, "pasword": "x"}, "upstreams[0].pasword"),
    ],
)
def test_bad_simulator_configuration_names_the_field(entry, message):
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_upstreams(json.dumps([entry]), "MAILRELAY_UPSTREAMS")
