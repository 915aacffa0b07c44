"""Events derived from the status record's real state transitions (the delivery policy's own functions):
one per change, with ids that a repeated change record reproduces exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailrelay.delivery.policy import apply_outcomes, expire, interrupted
from mailrelay.delivery.replies import RecipientOutcome, reply_from
from mailrelay.events.derive import events_for_change
from mailrelay.events.model import EVENT_TYPES
from mailrelay.models.status import MessageStatus, RecipientStatus

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
OK = reply_from(250, "2.0.0 OK queued")
LATER = reply_from(451, "4.7.1 try again later")
NO_USER = reply_from(550, "5.1.1 no such user")


def accepted(*, state: str = "queued", delivery: str = "at_least_once", rcpt=("a@example.org", "b@example.org")):
    return MessageStatus(
        id="0" * 32, client_id="shop", state=state, mail_from="app@example.com",
        recipients=[RecipientStatus(address=r) for r in rcpt], size=10, sha256="0" * 64,
        created_at=T0, updated_at=T0, expires_at=T0 + timedelta(days=3), delivery=delivery,
        tags={"category": "receipt"}, metadata={"order": "1234"},
    )  # fmt: skip


def sending(status: MessageStatus, minutes: int = 1) -> MessageStatus:
    """The lease write delivery makes before each attempt."""
    return status.model_copy(update={"state": "sending", "updated_at": T0 + timedelta(minutes=minutes)})


def attempt(status: MessageStatus, outcomes: dict[str, RecipientOutcome], minutes: int) -> MessageStatus:
    return apply_outcomes(status, outcomes, None, "primary", T0 + timedelta(minutes=minutes))


def kinds(events) -> list[tuple[str, str | None, int]]:
    return [(e.type, e.data.recipient, e.data.attempt) for e in events]


def test_an_accepted_message_is_one_event_with_the_envelope_fields() -> None:
    (event,) = events_for_change(None, accepted())
    envelope = event.envelope()
    assert envelope["type"] == "message.accepted"
    assert envelope["id"].startswith("evt_")
    assert envelope["created_at"] == "2026-12-02T12:00:00.000Z"
    assert envelope["data"] == {
        "message_id": "0" * 32, "client_id": "shop", "state": "queued", "reply": None, "upstream": None,
        "attempt": 0, "tags": {"category": "receipt"}, "metadata": {"order": "1234"},
    }  # fmt: skip


def test_a_scheduled_message_is_accepted_and_scheduled() -> None:
    events = events_for_change(None, accepted(state="scheduled"))
    assert [e.type for e in events] == ["message.accepted", "message.scheduled"]
    assert {e.data.state for e in events} == {"scheduled"}


def test_taking_the_sending_lease_is_not_an_event() -> None:
    status = accepted()
    assert events_for_change(status, sending(status)) == []


def test_each_recipient_outcome_is_its_own_event_with_its_reply() -> None:
    status = sending(accepted())
    after = attempt(status, {"a@example.org": RecipientOutcome("delivered", OK),
                             "b@example.org": RecipientOutcome("failed", NO_USER)}, 2)  # fmt: skip
    events = events_for_change(status, after)
    assert kinds(events) == [("recipient.delivered", "a@example.org", 1), ("recipient.failed", "b@example.org", 1)]
    failed = events[1].envelope()["data"]
    assert failed["reply"] == {"code": 550, "enhanced": "5.1.1", "text": "5.1.1 no such user"}
    assert failed["state"] == "failed"
    assert failed["upstream"] == "primary"
    assert events[0].created_at == T0 + timedelta(minutes=2)


def test_a_recipient_deferred_on_every_attempt_has_one_event_per_attempt() -> None:
    status = accepted(rcpt=("a@example.org",))
    seen = []
    for n in range(1, 4):
        leased = sending(status, minutes=10 * n)
        status = attempt(leased, {"a@example.org": RecipientOutcome("deferred", LATER)}, 10 * n + 1)
        seen += events_for_change(leased, status)
    assert kinds(seen) == [("recipient.deferred", "a@example.org", n) for n in (1, 2, 3)]
    assert len({e.id for e in seen}) == 3
    leased = sending(status, minutes=40)
    done = attempt(leased, {"a@example.org": RecipientOutcome("delivered", OK)}, 41)
    assert kinds(events_for_change(leased, done)) == [("recipient.delivered", "a@example.org", 4)]


def test_a_recipient_already_settled_is_not_reported_again() -> None:
    status = sending(accepted())
    first = attempt(status, {"a@example.org": RecipientOutcome("delivered", OK),
                             "b@example.org": RecipientOutcome("deferred", LATER)}, 2)  # fmt: skip
    leased = sending(first, 5)
    second = attempt(leased, {"b@example.org": RecipientOutcome("delivered", OK)}, 6)
    assert kinds(events_for_change(leased, second)) == [("recipient.delivered", "b@example.org", 2)]


def test_expiry_is_a_message_event() -> None:
    outcomes = {
        "a@example.org": RecipientOutcome("deferred", LATER),
        "b@example.org": RecipientOutcome("delivered", OK),
    }
    status = sending(attempt(sending(accepted()), outcomes, 2), 9)
    expired = expire(status, T0 + timedelta(days=3, minutes=1))
    (event,) = events_for_change(status, expired)
    assert (event.type, event.data.state, event.data.attempt) == ("message.expired", "expired", 1)


def test_a_cancel_is_a_message_event() -> None:
    scheduled = accepted(state="scheduled")
    cancelled = scheduled.model_copy(update={"state": "cancelled", "updated_at": T0 + timedelta(minutes=3)})
    (event,) = events_for_change(scheduled, cancelled)
    assert (event.type, event.data.state, event.created_at) == ("message.cancelled", "cancelled", cancelled.updated_at)


def test_an_interrupted_at_most_once_send_is_uncertain() -> None:
    status = sending(accepted(delivery="at_most_once"))
    after = interrupted(status, T0 + timedelta(minutes=5))
    assert [e.type for e in events_for_change(status, after)] == ["message.uncertain"]


def test_an_uncertain_at_least_once_message_reports_each_uncertain_attempt() -> None:
    unknown = RecipientOutcome("uncertain", None)
    status = sending(accepted(rcpt=("a@example.org",)))
    first = attempt(status, {"a@example.org": unknown}, 2)
    second = attempt(sending(first, 5), {"a@example.org": unknown}, 6)
    one = events_for_change(status, first)
    two = events_for_change(sending(first, 5), second)
    assert kinds(one) == [("message.uncertain", None, 1)]
    assert kinds(two) == [("message.uncertain", None, 2)]
    assert one[0].id != two[0].id


def test_the_same_change_always_yields_the_same_events() -> None:
    status = sending(accepted())
    after = attempt(status, {"a@example.org": RecipientOutcome("delivered", OK)}, 2)
    assert events_for_change(status, after) == events_for_change(status, after)
    assert events_for_change(None, accepted()) == events_for_change(None, accepted())


def test_removal_by_ttl_is_not_an_event() -> None:
    assert events_for_change(accepted(), None) == []


def test_later_event_types_are_already_named() -> None:
    assert {"message.cancelled", "recipient.suppressed", "recipient.bounced", "recipient.complained"} <= set(
        EVENT_TYPES
    )


def test_a_recipient_suppressed_at_acceptance_is_one_recipient_suppressed_event() -> None:
    status = accepted()
    refused = reply_from(550, "5.7.1 Recipient address is suppressed (manual, since 2026-12-01)")
    status.recipients[1] = status.recipients[1].model_copy(update={"state": "suppressed", "reply": refused})
    events = events_for_change(None, status)
    assert kinds(events) == [("message.accepted", None, 0), ("recipient.suppressed", "b@example.org", 0)]
    assert events[1].data.reply == refused
    # delivering the other recipient later does not repeat it
    later = attempt(sending(status), {"a@example.org": RecipientOutcome("delivered", OK)}, 2)
    assert kinds(events_for_change(sending(status), later)) == [("recipient.delivered", "a@example.org", 1)]
    assert later.state == "delivered"
