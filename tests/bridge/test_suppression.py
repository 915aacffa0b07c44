"""RCPT TO an address on the client's suppression list is refused at once (smtplib, the real bridge)."""

from __future__ import annotations

import smtplib

import pytest

from mailrelay.models.status import SmtpReply
from mailrelay.suppression.service import SuppressionRequest
from tests.bridge.conftest import message
from tests.bridge.test_submission import queued_id


def test_rcpt_to_a_suppressed_address_is_refused_and_the_others_are_sent(
    start_bridge, shop_login, services, queued, stored_statuses
):
    # Given: one address unsubscribed, another that hard-bounced before
    suppressions = services.suppressions
    assert suppressions is not None
    suppressions.put("shop", "Left@Example.NET", SuppressionRequest(reason="unsubscribe"), "test")
    suppressions.record("shop", "gone@example.net", "hard_bounce", "0" * 32, SmtpReply(code=550, enhanced="5.1.1"))
    bridge = start_bridge()
    with bridge.starttls(shop_login) as smtp:
        assert smtp.mail("app@example.com")[0] == 250
        # When: the application names them (in another domain case) and a third recipient
        left = smtp.rcpt("Left@example.net")
        gone = smtp.rcpt("gone@EXAMPLE.net")
        ok = smtp.rcpt("ok@example.net")
        code, reply = smtp.data(message())
    # Then: a permanent refusal per suppressed recipient, saying why; the message goes to the third only
    assert left[0] == 550 and left[1].startswith(b"5.7.1 Recipient address is suppressed (unsubscribe, since ")
    assert gone[0] == 550 and gone[1].startswith(b"5.1.1 Recipient address is suppressed (hard_bounce")
    assert ok[0] == 250 and code == 250
    [item] = queued()
    assert item["id"] == queued_id(reply)
    assert item["rcpt_to"] == ["ok@example.net"]


def test_a_message_whose_every_recipient_is_suppressed_is_never_taken(start_bridge, shop_login, services, queued):
    suppressions = services.suppressions
    assert suppressions is not None
    suppressions.put("shop", "left@example.net", SuppressionRequest(reason="manual"), "test")
    bridge = start_bridge()
    with bridge.starttls(shop_login) as smtp:
        assert smtp.mail("app@example.com")[0] == 250
        assert smtp.rcpt("left@example.net")[0] == 550
        with pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.data(message())
    assert refused.value.smtp_code == 503  # no valid recipients
    assert queued() == []
