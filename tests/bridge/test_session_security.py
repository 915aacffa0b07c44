"""Findings of an outside review, replayed with real SMTP clients: forged senders hidden from the check,
keys revoked during an open session, sessions that never end, envelopes queued as typed, PROXY trust."""

from __future__ import annotations

import smtplib
import time

import pytest

from mailrelay.settings import ConfigurationError
from smtp_bridge.settings import bridge_settings_from
from tests.bridge.conftest import message

HIDDEN_SENDER = (
    b"From: app@example.com\r\nX-Mailer : x\r\nFrom: CEO <ceo@victim.com>\r\nSender: ceo@victim.com\r\n"
    b"To: x@y.org\r\n\r\nhi\r\n"
)


def test_a_from_hidden_behind_a_malformed_header_line_is_refused(start_bridge, shop_login, nothing_stored):
    bridge = start_bridge()
    with bridge.starttls(shop_login) as smtp:
        assert smtp.mail("app@example.com")[0] == 250
        assert smtp.rcpt("x@y.org")[0] == 250
        code, reply = smtp.data(HIDDEN_SENDER)
        assert (code, reply[:5]) == (554, b"5.6.0"), reply
        assert b"white space before the colon" in reply
    nothing_stored()


@pytest.mark.parametrize(
    "header",
    [b"From : ceo@victim.com", b"Resent-From: ceo@victim.com", b"Authentication-Results: mx; dmarc=pass"],
)
def test_other_sender_claims_over_smtp_are_refused(start_bridge, shop_login, nothing_stored, header):
    bridge = start_bridge()
    with bridge.starttls(shop_login) as smtp:
        smtp.mail("app@example.com")
        smtp.rcpt("x@y.org")
        code, _ = smtp.data(b"From: app@example.com\r\n" + header + b"\r\nTo: x@y.org\r\n\r\nhi\r\n")
        assert code in (550, 554)
    nothing_stored()


def test_a_key_revoked_during_a_session_stops_at_the_next_mail(start_bridge, services, shop_login, queued):
    bridge = start_bridge()
    with bridge.starttls(shop_login) as smtp:
        smtp.sendmail("app@example.com", ["a@example.net"], message())
        services.clients.store.revoke("shop")
        smtp.rset()
        code, reply = smtp.mail("app@example.com")
        assert (code, reply[:5]) == (530, b"5.7.0"), reply
    assert len(queued()) == 1


def test_a_key_revoked_between_mail_and_the_final_dot_gets_nothing_queued(
    start_bridge, services, shop_login, nothing_stored
):
    bridge = start_bridge()
    with bridge.starttls(shop_login) as smtp:
        assert smtp.mail("app@example.com")[0] == 250
        assert smtp.rcpt("a@example.net")[0] == 250
        services.clients.store.revoke("shop")
        code, reply = smtp.data(message())
        assert (code, reply[:5]) == (530, b"5.7.0"), reply
    nothing_stored()


def test_a_session_ends_at_its_lifetime_but_finishes_its_transaction(start_bridge, shop_login, queued):
    bridge = start_bridge(session_max_seconds=1)
    smtp = bridge.starttls(shop_login)
    assert smtp.mail("app@example.com")[0] == 250
    time.sleep(1.5)  # the lifetime passes inside the transaction
    assert smtp.rcpt("a@example.net")[0] == 250
    assert smtp.data(message())[0] == 250
    assert ended_with_421(smtp)  # then, and only then, the session is closed
    assert len(queued()) == 1

    idle = bridge.starttls(shop_login)
    for _ in range(3):  # RSET resets the idle timer, not the lifetime
        assert idle.rset()[0] == 250
        time.sleep(0.3)
    time.sleep(0.5)
    assert ended_with_421(idle)


def ended_with_421(smtp: smtplib.SMTP) -> bool:
    """The server said 421 4.4.2 on its own and closed the connection."""
    code, reply = smtp.getreply()
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.noop()
    return (code, reply[:5]) == (421, b"4.4.2")


def test_the_envelope_is_queued_as_the_policy_checked_it(start_bridge, shop_login, queued):
    bridge = start_bridge()
    with bridge.starttls(shop_login) as smtp:
        # fullwidth 'e' and an ideographic full stop: the policy saw example.com
        smtp.sendmail("app@\uff45xample.com", ["Someone@EXAMPLE\u3002net"], message(), mail_options=["SMTPUTF8"])
    (item,) = queued()
    assert item["mail_from"] == "app@example.com"
    assert item["rcpt_to"] == ["Someone@example.net"]
    assert item["smtputf8"] is False  # nothing in the envelope or the headers needs it any more


def test_proxy_protocol_without_trusted_networks_does_not_start():
    env = {"MAILRELAY_BRIDGE_PROXY_PROTOCOL": "true", "MAILRELAY_BRIDGE_TLS_CERT_FILE": "c",
           "MAILRELAY_BRIDGE_TLS_KEY_FILE": "k"}  # fmt: skip
    with pytest.raises(ConfigurationError, match="PROXY_TRUSTED_NETWORKS"):
        bridge_settings_from(env)
    assert bridge_settings_from({**env, "MAILRELAY_BRIDGE_PROXY_TRUSTED_NETWORKS": '["10.0.0.0/8"]'}).proxy_protocol


def test_an_internationalised_sender_over_smtputf8_is_accepted_and_flagged(start_bridge, shop_login, queued):
    bridge = start_bridge()
    data = "From: José <äpp@example.com>\r\nTo: x@example.net\r\nSubject: olá\r\n\r\nhi\r\n".encode()
    with bridge.starttls(shop_login) as smtp:
        smtp.sendmail("äpp@example.com", ["x@example.net"], data, mail_options=["SMTPUTF8"])
    (item,) = queued()
    assert item["mail_from"] == "äpp@example.com"
    assert item["smtputf8"] is True


def test_a_bcc_header_sent_over_smtp_is_not_relayed(start_bridge, shop_login, queued):
    bridge = start_bridge()
    data = b"From: app@example.com\r\nTo: x@example.net\r\nBcc: secret@example.net\r\nSubject: s\r\n\r\nhi\r\n"
    with bridge.starttls(shop_login) as smtp:
        smtp.sendmail("app@example.com", ["x@example.net", "secret@example.net"], data)
    (item,) = queued()
    assert b"Bcc" not in item["raw"] and b"secret@example.net" not in item["raw"]
    assert item["rcpt_to"] == ["x@example.net", "secret@example.net"]
