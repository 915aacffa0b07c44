"""SES bounce and complaint notifications (samples in events/, after AWS's documented examples) move a
delivered recipient to bounced / complained and suppress it; the rest change nothing (moto DynamoDB)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from mailrelay.events.derive import events_for_change
from mailrelay.feedback.service import FeedbackService
from mailrelay.feedback.ses import NotAnSesNotification, feedback_from_sns_event
from mailrelay.message_data import MessageData
from mailrelay.models.client import Client
from mailrelay.submission import Submission, utcnow
from tests.conftest import load_event

OURS = "0190a1b2c3d4e5f60718293a4b5c6d7e"  # the Message-ID local part in the sample notifications


@pytest.fixture
def delivered(services):
    """Our message to alice and bob, both delivered (as the SES upstream accepted it)."""
    client = Client(id="shop", allowed_from=("example.com",), created_at=datetime.now(UTC))
    content = MessageData(b"From: orders@example.com\r\nSubject: Your receipt\r\n\r\nHello.\r\n")
    sub = Submission(message_id=OURS, mail_from="orders@example.com", rcpt_to=("alice@example.org", "bob@example.org"),
                     content=content, source="api")  # fmt: skip
    services.submissions.submit(client, sub)
    status = services.statuses.get(OURS)
    recipients = [r.model_copy(update={"state": "delivered"}) for r in status.recipients]
    services.statuses.put(status.model_copy(update={"state": "delivered", "recipients": recipients}))
    return services.statuses.get(OURS)


def apply(services, event_name: str) -> int:
    service = FeedbackService(services.statuses, services.suppressions, utcnow)
    return sum(service.apply(f) for f in feedback_from_sns_event(load_event(event_name)))


def states(services) -> dict[str, str]:
    return {r.address: r.state for r in services.statuses.get(OURS).recipients}


def test_a_permanent_bounce_moves_the_recipient_to_bounced_and_suppresses_it(services, delivered):
    assert apply(services, "ses_bounce_permanent.json") == 1
    assert states(services) == {"alice@example.org": "delivered", "bob@example.org": "bounced"}
    bob = next(r for r in services.statuses.get(OURS).recipients if r.address == "bob@example.org")
    assert (bob.reply.code, bob.reply.enhanced) == (550, "5.1.1") and "User unknown" in bob.reply.text
    entry = services.suppressions.get("shop", "bob@example.org")
    assert entry.reason == "hard_bounce" and entry.source.message_id == OURS
    # the change is a recipient.bounced event
    events = events_for_change(delivered, services.statuses.get(OURS))
    assert [(e.type, e.data.recipient) for e in events] == [("recipient.bounced", "bob@example.org")]
    # the same notification again changes nothing
    assert apply(services, "ses_bounce_permanent.json") == 0


def test_a_complaint_moves_the_recipient_to_complained_and_suppresses_it(services, delivered):
    assert apply(services, "ses_complaint.json") == 1
    assert states(services)["alice@example.org"] == "complained"
    assert services.suppressions.get("shop", "alice@example.org").reason == "complaint"
    events = events_for_change(delivered, services.statuses.get(OURS))
    assert [e.type for e in events] == ["recipient.complained"]


@pytest.mark.parametrize("event_name", ["ses_bounce_transient.json", "ses_delivery.json"])
def test_transient_bounces_and_deliveries_change_nothing(services, delivered, event_name):
    assert apply(services, event_name) == 0
    assert states(services) == {"alice@example.org": "delivered", "bob@example.org": "delivered"}
    assert services.suppressions.page("shop", None, b"k")["suppressions"] == []


def test_a_notification_for_an_unknown_message_is_logged_and_dropped(services, delivered, caplog):
    with caplog.at_level(logging.WARNING):
        assert apply(services, "ses_bounce_unknown_message.json") == 0
    assert "feedback for an unknown message dropped" in caplog.text
    assert services.suppressions.page("shop", None, b"k")["suppressions"] == []


def test_an_sns_message_that_is_not_an_ses_notification_is_refused():
    event = {"Records": [{"Sns": {"Message": '{"notificationType": "AmazonSnsSubscriptionSucceeded"}'}}]}
    with pytest.raises(NotAnSesNotification):
        feedback_from_sns_event(event)


def test_the_feedback_function_applies_a_complaint_and_drops_what_is_not_ses(services, delivered):
    from functions.feedback.app import create_handler
    from tests.support import LambdaContext

    service = FeedbackService(services.statuses, services.suppressions, utcnow)
    handler = create_handler(lambda: service)
    event = load_event("ses_complaint.json")
    event["Records"].append({"Sns": {"Message": "not json"}})
    assert handler(event, LambdaContext()) == {"recipients_changed": 1}
    assert states(services)["alice@example.org"] == "complained"
