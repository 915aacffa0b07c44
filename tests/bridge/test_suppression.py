"""RCPT TO an address on the client's suppression list is refused at once (smtplib and swaks, the real bridge)."""

from __future__ import annotations

import re
import smtplib

import pytest

from mailrelay.models.status import SmtpReply
from mailrelay.suppression.service import SuppressionRequest
from tests.bridge.conftest import HOST, message
from tests.bridge.test_real_clients import needs_swaks, run_swaks
from tests.bridge.test_real_clients import queued_id as swaks_queued_id
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


@needs_swaks
def test_swaks_learns_of_each_suppressed_recipient_at_rcpt_and_the_others_are_queued(
    start_bridge, shop_login, services, queued, tmp_path
):
    # Given: one address hard-bounced before, another the client unsubscribed (as its API PUT records it)
    suppressions = services.suppressions
    assert suppressions is not None
    suppressions.record("shop", "gone@example.net", "hard_bounce", "0" * 32, SmtpReply(code=550, enhanced="5.1.1"))
    suppressions.put("shop", "left@example.net", SuppressionRequest(reason="unsubscribe"), "api")
    bridge = start_bridge()
    path = tmp_path / "message.eml"
    path.write_bytes(message(subject="From swaks"))
    # When: a legacy application sends to both and to a third address, over STARTTLS with AUTH
    output = run_swaks(
        "--server", HOST, "--port", str(bridge.ports["starttls"]), "--tls", "--tls-verify", "--tls-ca-path",
        str(bridge.certs.ca_file), "--auth", "PLAIN", "--auth-user", shop_login[0], "--auth-password", shop_login[1],
        "--from", "app@example.com", "--to", "gone@example.net,left@example.net,ok@example.net", "--data", f"@{path}",
    )  # fmt: skip
    # Then: each suppressed RCPT is refused permanently, saying why; the message is queued for the third only
    # (swaks marks a reply over TLS "<~", and an error reply with "*")
    replies = dict(re.findall(r"~> RCPT TO:<([^>]+)>\n<~\*?\s+(.+)", output))
    assert replies["gone@example.net"].startswith("550 5.1.1 Recipient address is suppressed (hard_bounce, since ")
    assert replies["left@example.net"].startswith("550 5.7.1 Recipient address is suppressed (unsubscribe, since ")
    assert replies["ok@example.net"].startswith("250 "), output
    [item] = queued()
    assert item["id"] == swaks_queued_id(output)
    assert item["rcpt_to"] == ["ok@example.net"]
