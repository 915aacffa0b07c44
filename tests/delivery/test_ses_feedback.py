"""SES feedback finds the message by the id SES gave it in its 250 reply: a real STARTTLS upstream answers
the end of DATA as SES's SMTP interface does, then SES's bounce notification for that id (the client wrote
its own Message-ID) goes through the real feedback function (moto DynamoDB)."""

from __future__ import annotations

import json

from functions.feedback.app import create_handler
from mailrelay.adapters.dynamo_messages import PROVIDER_ID_PREFIX
from mailrelay.adapters.dynamo_stream import status_change
from mailrelay.wiring import build_feedback_service
from tests.conftest import load_event
from tests.support import LambdaContext

SES_ID = "0100018c2f1e3a4b-5c6d7e8f-9a0b-4c1d-8e2f-3a4b5c6d7e8f-000000"
CLIENTS_OWN = "<order-42.shipped@shop.example.com>"


def clients_message() -> bytes:
    return (
        b"From: Shop <orders@example.com>\r\nTo: alice@example.org, bob@example.org\r\nSubject: Shipped\r\n"
        + f"Message-ID: {CLIENTS_OWN}\r\n\r\nYour order is on its way.\r\n".encode()
    )


def bounce_for(bounced: str) -> dict:
    """The permanent bounce sample, about SES's id for our message and the client's own Message-ID."""
    event = load_event("ses_bounce_permanent.json")
    notification = json.loads(event["Records"][0]["Sns"]["Message"])
    notification["mail"]["messageId"] = SES_ID
    notification["mail"]["commonHeaders"]["messageId"] = CLIENTS_OWN
    notification["mail"]["headers"] = [h if h["name"] != "Message-ID" else {**h, "value": CLIENTS_OWN}
                                       for h in notification["mail"]["headers"]]  # fmt: skip
    notification["bounce"]["bouncedRecipients"][0]["emailAddress"] = bounced
    event["Records"][0]["Sns"]["Message"] = json.dumps(notification)
    return event


def test_a_bounce_names_the_message_by_the_id_in_ses_s_250_reply(delivery, smtp_server, upstream_secret):
    # Given: an SES upstream (it has a configuration set) that answers the final dot as SES does
    server = smtp_server("starttls")
    server.recorder.data_replies = [f"250 Ok {SES_ID}"]
    delivery.configure(delivery.upstream(server, "starttls", secret_id=upstream_secret,
                                         ses_configuration_set="mailrelay-feedback"))  # fmt: skip
    message_id = delivery.submit(clients_message(), rcpt=("alice@example.org", "bob@example.org"))
    delivery.invoke(delivery.receive())
    [transaction] = server.recorder.transactions
    assert f"Message-ID: {CLIENTS_OWN}".encode() in transaction.content  # the client's, not ours
    status = delivery.status(message_id)
    assert status.state == "delivered"
    assert [r.provider_message_id for r in status.recipients] == [SES_ID, SES_ID]
    # When: SES reports bob's permanent bounce for that id
    handler = create_handler(lambda: build_feedback_service(delivery.services.settings))
    assert handler(bounce_for("bob@example.org"), LambdaContext()) == {"recipients_changed": 1}
    # Then: bob is bounced (with the receiver's reply) and suppressed for the client; alice is untouched
    status = delivery.status(message_id)
    assert {r.address: r.state for r in status.recipients} == {
        "alice@example.org": "delivered", "bob@example.org": "bounced"}  # fmt: skip
    bob = status.recipients[1]
    assert bob.reply is not None and (bob.reply.code, bob.reply.enhanced) == (550, "5.1.1")
    entry = delivery.services.suppressions.get("shop", "bob@example.org")
    assert entry.reason == "hard_bounce" and entry.source.message_id == message_id
    # And: the next message to bob is refused at acceptance
    second = delivery.submit(rcpt=("bob@example.org",))
    assert delivery.status(second).recipients[0].state == "suppressed"


def test_an_upstream_that_is_not_ses_records_no_provider_id(delivery, smtp_server, upstream_secret):
    # Given: an ordinary smarthost whose reply happens to read like SES's
    server = smtp_server("starttls")
    server.recorder.data_replies = [f"250 Ok {SES_ID}"]
    delivery.configure(delivery.upstream(server, "starttls", secret_id=upstream_secret))
    message_id = delivery.submit(clients_message(), rcpt=("bob@example.org",))
    delivery.invoke(delivery.receive())
    [bob] = delivery.status(message_id).recipients
    assert bob.state == "delivered" and bob.provider_message_id is None
    # Then: an SES notification naming that id finds nothing, and changes nothing
    handler = create_handler(lambda: build_feedback_service(delivery.services.settings))
    assert handler(bounce_for("bob@example.org"), LambdaContext()) == {"recipients_changed": 0}
    assert delivery.status(message_id).recipients[0].state == "delivered"


def test_the_link_from_ses_s_id_is_no_status_change_for_the_events_function():
    # Given: the stream record of the item delivery writes beside the status record (SES's id -> ours)
    link = {"id": {"S": PROVIDER_ID_PREFIX + SES_ID}, "message_id": {"S": "0" * 32}, "ttl": {"N": "1"}}
    record = {"eventName": "INSERT", "dynamodb": {"Keys": {"id": link["id"]}, "NewImage": link}}
    # Then: no status before or after, hence no event (and no undecodable record)
    assert status_change(record) == (None, None)
