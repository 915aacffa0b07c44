"""Refusals a client sees, with their codes, and nothing stored behind them."""

from __future__ import annotations

import smtplib

import pytest

from tests.bridge.conftest import HOST, message


def test_mail_without_auth_is_530(start_bridge, nothing_stored):
    bridge = start_bridge()
    with bridge.starttls() as smtp:
        assert smtp.mail("app@example.com") == (530, b"5.7.0 Authentication required")
        code, _ = smtp.rcpt("a@example.net")
        assert code == 503
        assert smtp.docmd("DATA")[0] == 503
    nothing_stored()


def test_nothing_before_starttls_on_the_submission_port(start_bridge, shop_login, nothing_stored):
    bridge = start_bridge()
    smtp = smtplib.SMTP(HOST, bridge.ports["starttls"], local_hostname="client.test")
    smtp.ehlo()
    code, reply = smtp.docmd("AUTH", "PLAIN " + "AHNob3AAeA==")
    assert (code, reply[:5]) == (530, b"5.7.0")
    assert smtp.mail("app@example.com")[0] == 530
    smtp.quit()
    nothing_stored()


def test_auth_is_not_offered_or_accepted_without_tls(start_bridge, shop_login, nothing_stored):
    """On the cleartext listener (allowlisted networks only) AUTH is neither offered nor accepted."""
    bridge = start_bridge(plain_port=0, allowed_networks=[{"cidr": "127.0.0.0/8", "client_id": "shop"}])
    with bridge.plain() as smtp:
        assert not smtp.has_extn("auth")
        code, reply = smtp.docmd("AUTH", "PLAIN " + "AHNob3AAeA==")
        assert (code, reply[:6]) == (538, b"5.7.11")


def test_wrong_password_is_535(start_bridge, shop_login, nothing_stored):
    bridge = start_bridge()
    with bridge.starttls() as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError) as failed:
            smtp.login("shop", shop_login[1] + "x")
        assert failed.value.smtp_code == 535
        assert failed.value.smtp_error.startswith(b"5.7.8")
        assert smtp.mail("app@example.com")[0] == 530
    with bridge.starttls() as smtp, pytest.raises(smtplib.SMTPAuthenticationError):
        smtp.login("other", shop_login[1])  # right key, wrong user name
    nothing_stored()


def auth_plain(smtp: smtplib.SMTP, user: str, password: str) -> tuple[int, bytes]:
    """Exactly one AUTH PLAIN attempt (smtplib's login() tries every mechanism in turn)."""
    smtp.user, smtp.password = user, password
    return smtp.docmd("AUTH", "PLAIN " + smtplib.encode_base64(smtp.auth_plain().encode(), eol=""))


def test_failed_auth_is_limited_per_client_address_without_locking_out_valid_keys(start_bridge, shop_login):
    bridge = start_bridge(auth_failure_limit=3)
    with bridge.starttls() as smtp:
        assert auth_plain(smtp, "shop", "mr_wrong")[0] == 535
        assert auth_plain(smtp, "shop", "mr_wrong")[0] == 535
    smtp = bridge.starttls()
    code, reply = auth_plain(smtp, "shop", "mr_wrong")
    assert (code, reply[:5]) == (421, b"4.7.0")
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtp.noop()
    # Wrong guesses keep being slowed and cut off from this address...
    smtp = bridge.starttls()
    assert auth_plain(smtp, "shop", "mr_wrong")[0] == 421
    # ...but a client behind the same NAT address with its valid key is not locked out by them.
    with bridge.starttls() as smtp:
        assert auth_plain(smtp, *shop_login)[0] == 235
        assert smtp.mail("app@example.com")[0] == 250


def test_envelope_sender_not_allowed_is_550_5_7_1(start_bridge, shop_login, nothing_stored):
    bridge = start_bridge()
    with bridge.starttls(shop_login) as smtp:
        code, reply = smtp.mail("ceo@bank.example")
        assert (code, reply[:5]) == (550, b"5.7.1")
        code, reply = smtp.mail("app@sub.example.com")  # no implicit subdomains
        assert (code, reply[:5]) == (550, b"5.7.1")
    nothing_stored()


@pytest.mark.parametrize(
    "headers",
    [
        b"From: ceo@bank.example\r\nTo: a@example.net\r\n",
        b"From: app@example.com\r\nSender: ceo@bank.example\r\nTo: a@example.net\r\n",
        b"From: app@example.com, ceo@bank.example\r\nSender: app@example.com\r\nTo: a@example.net\r\n",
    ],
    ids=["from", "sender", "second-from-address"],
)
def test_header_sender_not_allowed_is_550_5_7_1(start_bridge, shop_login, nothing_stored, headers):
    bridge = start_bridge()
    with bridge.starttls(shop_login) as smtp:
        assert smtp.mail("app@example.com")[0] == 250
        assert smtp.rcpt("a@example.net")[0] == 250
        code, reply = smtp.data(headers + b"Subject: x\r\n\r\nbody\r\n")
        assert (code, reply[:5]) == (550, b"5.7.1")
        # The session goes on: a proper message is accepted afterwards.
        assert smtp.mail("app@example.com")[0] == 250
        assert smtp.rcpt("a@example.net")[0] == 250
        assert smtp.data(message())[0] == 250


def test_message_without_from_header_is_refused_permanently(start_bridge, shop_login, nothing_stored):
    bridge = start_bridge()
    with bridge.starttls(shop_login) as smtp:
        smtp.mail("app@example.com")
        smtp.rcpt("a@example.net")
        code, reply = smtp.data(b"To: a@example.net\r\nSubject: x\r\n\r\nbody\r\n")
        assert (code, reply[:5]) == (554, b"5.6.0")
    nothing_stored()


def test_recipients_beyond_the_limit_get_452_and_the_first_100_are_kept(start_bridge, shop_login, queued):
    bridge = start_bridge()
    with bridge.starttls(shop_login) as smtp:
        smtp.mail("app@example.com")
        codes = [smtp.rcpt(f"r{i}@example.net") for i in range(102)]
        assert all(code == 250 for code, _ in codes[:100])
        assert codes[100] == (452, b"4.5.3 Too many recipients")
        assert codes[101][0] == 452
        assert smtp.data(message())[0] == 250
    [item] = queued()
    assert len(item["rcpt_to"]) == 100


def test_size_is_advertised_and_enforced(start_bridge, shop_login, nothing_stored, monkeypatch):
    monkeypatch.setenv("MAILRELAY_MAX_MESSAGE_BYTES", "20000")
    from mailrelay.settings import get_settings

    get_settings.cache_clear()
    bridge = start_bridge()
    limit = bridge.runtime.size_limit
    with bridge.starttls(shop_login) as smtp:
        assert int(smtp.esmtp_features["size"]) == limit
        code, reply = smtp.mail("app@example.com", options=[f"SIZE={limit + 1}"])
        assert (code, reply[:5]) == (552, b"5.3.4")
        assert smtp.mail("app@example.com")[0] == 250
        smtp.rcpt("a@example.net")
        code, reply = smtp.data(message(body="z" * 900 + ("\r\n" + "z" * 900) * 25))
        assert (code, reply[:5]) == (552, b"5.3.4")
    nothing_stored()


def test_overlong_line_is_refused(start_bridge, shop_login, nothing_stored):
    bridge = start_bridge()
    with bridge.starttls(shop_login) as smtp:
        smtp.mail("app@example.com")
        smtp.rcpt("a@example.net")
        code, reply = smtp.data(message(body="w" * 1200))
        assert code == 500 and reply.startswith(b"5.5.2")
    nothing_stored()
