"""Suppression against real aiosmtpd upstreams: hard bounces add the address, nothing else does, and a
suppressed recipient never reaches the upstream while the others of the same message do."""

from __future__ import annotations

import pytest

from mailrelay.settings import ConfigurationError
from mailrelay.suppression.service import SuppressionRequest


def listed(delivery) -> dict[str, str]:
    page = delivery.services.suppressions.page("shop", None, b"k")
    return {e["address"]: e["reason"] for e in page["suppressions"]}


def test_a_550_5_1_1_adds_hard_bounce_and_policy_or_full_mailbox_replies_add_nothing(delivery, upstream):
    # Given: one unknown user, one refused by policy, one full mailbox, one temporarily busy, one fine
    upstream.recorder.rcpt_replies = {
        "bob@example.org": "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown",
        "carol@example.org": "550 5.7.1 Message rejected: sender blocked by policy",
        "dave@example.org": "552 5.2.2 Mailbox full",
        "erin@example.org": "450 4.2.1 Mailbox busy",
    }
    rcpt = ("alice@example.org", "bob@example.org", "carol@example.org", "dave@example.org", "erin@example.org")
    message_id = delivery.submit(rcpt=rcpt)
    # When
    delivery.invoke(delivery.receive())
    # Then: only bob is on the list, with the message and the reply that put him there
    assert listed(delivery) == {"bob@example.org": "hard_bounce"}
    entry = delivery.services.suppressions.get("shop", "bob@example.org")
    assert entry.source.message_id == message_id
    assert entry.source.reply is not None and (entry.source.reply.code, entry.source.reply.enhanced) == (550, "5.1.1")
    # And: the next message to bob is refused at acceptance, never reaching the upstream
    second = delivery.submit(rcpt=("bob@example.org", "alice@example.org"))
    delivery.invoke(delivery.receive())
    status = delivery.status(second)
    assert {r.address: r.state for r in status.recipients} == {
        "bob@example.org": "suppressed", "alice@example.org": "delivered"}  # fmt: skip
    assert status.state == "delivered"
    assert all("bob@example.org" not in t.rcpt_tos for t in upstream.recorder.transactions[1:])


def test_a_suppressed_recipient_never_reaches_the_upstream_and_the_others_do(delivery, upstream):
    delivery.services.suppressions.put("shop", "bob@example.org", SuppressionRequest(reason="manual"), "test")
    message_id = delivery.submit(rcpt=("alice@example.org", "bob@example.org", "carol@example.org"))
    delivery.invoke(delivery.receive())
    [transaction] = upstream.recorder.transactions
    assert transaction.rcpt_tos == ["alice@example.org", "carol@example.org"]
    status = delivery.status(message_id)
    assert [r.state for r in status.recipients] == ["delivered", "suppressed", "delivered"]
    assert status.state == "delivered"


def test_an_ses_upstream_gets_its_configuration_set_header_first(delivery, smtp_server, upstream_secret):
    # Given: an upstream configured as SES with a configuration set (whose events feed the feedback function)
    server = smtp_server("starttls")
    delivery.configure(delivery.upstream(server, "starttls", secret_id=upstream_secret,
                                         ses_configuration_set="mailrelay-feedback"))  # fmt: skip
    message_id = delivery.submit()
    delivery.invoke(delivery.receive())
    [transaction] = server.recorder.transactions
    assert transaction.content.startswith(b"X-SES-CONFIGURATION-SET: mailrelay-feedback\r\n")
    assert delivery.status(message_id).state == "delivered"


def test_a_configuration_set_name_ses_would_refuse_is_a_configuration_error(delivery, smtp_server):
    server = smtp_server("starttls")
    with pytest.raises(ConfigurationError, match="ses_configuration_set"):
        delivery.configure(delivery.upstream(server, "starttls", ses_configuration_set="bad name\r\nBcc: x"))
