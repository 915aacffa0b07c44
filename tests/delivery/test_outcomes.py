"""Per-recipient outcomes and retries, against a real aiosmtpd upstream."""

from __future__ import annotations

import hashlib

import pytest

from tests.support import free_port


def test_4xx_then_2xx_is_deferred_then_delivered(delivery, upstream):
    # Given: the upstream answers the data with a temporary failure once
    upstream.recorder.data_replies = ["451 4.3.0 Temporary local problem, try later"]
    message_id = delivery.submit()
    event = delivery.receive()
    # When
    assert len(delivery.invoke(event)) == 1
    # Then: deferred with the full reply, and the record is hidden until its retry
    status = delivery.status(message_id)
    assert status.state == "deferred" and status.attempts == 1 and status.next_attempt_at is not None
    reply = status.recipients[0].reply
    assert (reply.code, reply.enhanced) == (451, "4.3.0") and "Temporary local problem" in reply.text
    assert delivery.visible() == 0 and delivery.in_flight() == 1
    # When: the record comes back
    delivery.clock.advance(minutes=2)
    assert delivery.invoke(event) == []
    # Then
    status = delivery.status(message_id)
    assert status.state == "delivered" and status.attempts == 2 and status.last_error is None
    assert len(upstream.recorder.transactions) == 1


def test_one_rejected_recipient_fails_alone_and_delivered_ones_are_never_resent(delivery, upstream):
    # Given: bob does not exist, carol's mailbox is busy once, alice is fine
    upstream.recorder.rcpt_replies = {
        "bob@example.org": "550 5.1.1 <bob@example.org>: Recipient address rejected: User unknown",
        "carol@example.org": "450 4.2.1 Mailbox busy",
    }
    message_id = delivery.submit(rcpt=("alice@example.org", "bob@example.org", "carol@example.org"))
    event = delivery.receive()
    # When
    assert len(delivery.invoke(event)) == 1
    # Then: one delivered, one failed for good, one waiting
    states = {r.address: r.state for r in delivery.status(message_id).recipients}
    assert states == {"alice@example.org": "delivered", "bob@example.org": "failed", "carol@example.org": "deferred"}
    # When: carol's mailbox is free again and the record comes back
    upstream.recorder.rcpt_replies.pop("carol@example.org")
    delivery.clock.advance(minutes=2)
    assert delivery.invoke(event) == []
    # Then: the retry went to carol only
    first, second = upstream.recorder.transactions
    assert first.rcpt_tos == ["alice@example.org"] and second.rcpt_tos == ["carol@example.org"]
    status = delivery.status(message_id)
    bob = next(r for r in status.recipients if r.address == "bob@example.org")
    assert (bob.reply.code, bob.reply.enhanced) == (550, "5.1.1")
    assert [r.state for r in status.recipients] == ["delivered", "failed", "delivered"]
    assert status.state == "failed" and "bob@example.org" in status.last_error


def test_policy_rejection_keeps_its_enhanced_code(delivery, upstream):
    upstream.recorder.rcpt_replies = {"alice@example.org": "554 5.7.1 Message rejected: sender blocked by policy"}
    message_id = delivery.submit()
    assert delivery.invoke(delivery.receive()) == []
    reply = delivery.status(message_id).recipients[0].reply
    assert (reply.code, reply.enhanced) == (554, "5.7.1") and "policy" in reply.text


def test_5xx_after_data_fails_and_is_not_retried(delivery, upstream):
    upstream.recorder.data_replies = ["554 5.6.0 Message content rejected"]
    message_id = delivery.submit(rcpt=("alice@example.org", "bob@example.org"))
    # When
    assert delivery.invoke(delivery.receive()) == []  # final outcome: the record is deleted
    # Then
    status = delivery.status(message_id)
    assert status.state == "failed" and status.completed_at is not None
    assert {r.state for r in status.recipients} == {"failed"}
    assert delivery.visible() + delivery.in_flight() == 0
    assert "DATA" in upstream.recorder.commands and upstream.recorder.transactions == []


def test_upstream_down_then_up_is_delivered_after_retry(delivery, smtp_server, upstream_secret):
    # Given: the upstream's port has nobody listening
    port = free_port()
    delivery.configure({"host": "localhost", "port": port, "tls": "starttls", "ca_file": delivery.ca_file,
                        "secret_id": upstream_secret})  # fmt: skip
    message_id = delivery.submit()
    event = delivery.receive()
    assert len(delivery.invoke(event)) == 1
    status = delivery.status(message_id)
    assert status.state == "deferred" and "ConnectionRefusedError" in status.last_error
    # When: it comes up and the record comes back
    server = smtp_server("starttls", port=port)
    delivery.clock.advance(minutes=2)
    assert delivery.invoke(event) == []
    # Then
    assert delivery.status(message_id).state == "delivered"
    assert len(server.recorder.transactions) == 1


@pytest.mark.parametrize("mode", ["at_least_once", "at_most_once"])
def test_timeout_after_final_dot_is_uncertain(delivery, upstream, mode, monkeypatch):
    # Given: the upstream takes longer to answer the final "." than delivery waits
    delivery.configure(delivery.upstream(upstream, "starttls", secret_id=delivery_secret(delivery)),
                       MAILRELAY_SMTP_DATA_DONE_TIMEOUT="0.3")  # fmt: skip
    upstream.recorder.data_delay = 1.0
    message_id = delivery.submit(delivery=mode)
    event = delivery.receive()
    # When
    failed = delivery.invoke(event)
    # Then: uncertain, shown to the user
    status = delivery.status(message_id)
    assert status.state == "uncertain" and status.recipients[0].state == "uncertain"
    assert "may have" in status.last_error
    upstream.recorder.data_delay = 0
    if mode == "at_most_once":
        assert failed == [] and status.completed_at is not None  # never retried
        return
    # at_least_once: retried with the same bytes (same Message-ID)
    assert len(failed) == 1
    delivery.clock.advance(minutes=2)
    assert delivery.invoke(event) == []
    assert delivery.status(message_id).state == "delivered"
    # (aiosmtpd drops the first transaction when the client hangs up; a real upstream may keep it)
    sent = upstream.recorder.transactions
    assert sent and all(hashlib.sha256(t.content).hexdigest() == status.sha256 for t in sent)


def delivery_secret(delivery) -> str:
    import boto3

    return boto3.client("secretsmanager").describe_secret(SecretId="mailrelay/upstream")["ARN"]
