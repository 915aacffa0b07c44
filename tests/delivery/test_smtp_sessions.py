"""Verified TLS sessions with AUTH to real upstreams on loopback; byte-identical delivery."""

from __future__ import annotations

import hashlib

import boto3
import pytest
import trustme

from tests.delivery.conftest import PASSWORD, USER, message_bytes


def test_starttls_with_auth_delivers_the_queued_bytes_exactly(delivery, smtp_server, upstream_secret):
    # Given: a 587-style upstream that requires STARTTLS, then AUTH
    server = smtp_server("starttls")
    delivery.configure(delivery.upstream(server, "starttls", secret_id=upstream_secret))
    message_id = delivery.submit(rcpt=("alice@example.org", "bob@example.org"))
    # When
    failed = delivery.invoke(delivery.receive())
    # Then: delivered, and what the upstream stored hashes to what was accepted
    assert failed == []
    (stored,) = server.recorder.transactions
    status = delivery.status(message_id)
    assert hashlib.sha256(stored.content).hexdigest() == status.sha256
    assert stored.mail_from == "orders@example.com" and stored.rcpt_tos == ["alice@example.org", "bob@example.org"]
    assert "BODY=8BITMIME" in stored.mail_options and any(o.startswith("SIZE=") for o in stored.mail_options)
    # TLS first, AUTH only after it, with the configured EHLO name
    commands = server.recorder.commands
    assert commands[:4] == ["EHLO", "STARTTLS", "EHLO", "AUTH"] and commands.index("MAIL") > 3
    assert server.recorder.logins == [USER]
    assert server.recorder.ehlo_names[0] == "relay.mailrelay.test"
    assert status.state == "delivered" and status.attempts == 1 and status.completed_at is not None
    assert [(r.address, r.state, r.reply.code) for r in status.recipients] == [
        ("alice@example.org", "delivered", 250), ("bob@example.org", "delivered", 250),
    ]  # fmt: skip
    assert status.recipients[0].reply.text.startswith("2.0.0 queued as 42")


def test_implicit_tls_with_auth_delivers_a_large_s3_payload_and_then_deletes_it(delivery, smtp_server, upstream_secret):
    # Given: a 465-style upstream and a message large enough to travel through S3
    server = smtp_server("implicit")
    delivery.configure(delivery.upstream(server, "implicit", secret_id=upstream_secret))
    big_body = b"".join(b"line %06d of a large message, with a .dot\r\n" % i for i in range(6000))
    message_id = delivery.submit(message_bytes("x", big_body))
    event = delivery.receive()
    assert '"kind":"s3"' in event["Records"][0]["body"]
    # When
    assert delivery.invoke(event) == []
    # Then
    (stored,) = server.recorder.transactions
    assert hashlib.sha256(stored.content).hexdigest() == delivery.status(message_id).sha256
    assert server.recorder.logins == [USER] and "STARTTLS" not in server.recorder.commands
    objects = boto3.client("s3").list_objects_v2(Bucket=delivery.aws.names["PayloadBucket"]).get("Contents", [])
    assert objects == []  # the payload is deleted after the final outcome


@pytest.mark.parametrize(
    ("mode", "server_kwargs", "expected"),
    [
        ("starttls", {"server_ca": trustme.CA()}, "certificate verification failed"),
        ("implicit", {"server_ca": trustme.CA()}, "certificate verification failed"),
        ("starttls", {"names": ("mail.elsewhere.test",)}, "certificate verification failed: Hostname mismatch"),
        ("implicit", {"names": ("mail.elsewhere.test",)}, "certificate verification failed: Hostname mismatch"),
        ("plain", {}, "STARTTLS is not offered"),
    ],
    ids=["untrusted-starttls", "untrusted-implicit", "wrong-host-starttls", "wrong-host-implicit", "no-starttls"],
)
def test_unverifiable_tls_sends_nothing_and_records_why(delivery, smtp_server, upstream_secret, mode, server_kwargs,
                                                        expected):  # fmt: skip
    # Given: an upstream whose TLS cannot be verified (or that does not offer STARTTLS at all)
    server = smtp_server(mode, **server_kwargs)
    client_mode = "starttls" if mode == "plain" else mode
    delivery.configure(delivery.upstream(server, client_mode, secret_id=upstream_secret))
    message_id = delivery.submit()
    # When
    failed = delivery.invoke(delivery.receive())
    # Then: no AUTH, no MAIL, nothing stored; the message waits for a retry with a clear reason
    assert len(failed) == 1
    assert "AUTH" not in server.recorder.commands and "MAIL" not in server.recorder.commands
    assert server.recorder.transactions == [] and server.recorder.logins == []
    status = delivery.status(message_id)
    assert status.state == "deferred"
    assert expected in status.last_error and f"localhost:{server.port}" in status.last_error
    assert [r.state for r in status.recipients] == ["deferred"]


def test_rotated_secret_is_fetched_again_after_535(delivery, smtp_server, upstream_secret):
    # Given: the cached secret is stale (rotated after the worker read it)
    secrets = boto3.client("secretsmanager")
    secrets.put_secret_value(SecretId=upstream_secret, SecretString='{"username": "relay-user", "password": "old"}')
    server = smtp_server("starttls")
    delivery.configure(delivery.upstream(server, "starttls", secret_id=upstream_secret))
    first = delivery.submit()
    delivery.invoke(delivery.receive())  # 535 twice: deferred (and "old" is now cached)
    assert delivery.status(first).state == "deferred" and "535" in delivery.status(first).last_error
    secrets.put_secret_value(
        SecretId=upstream_secret, SecretString=f'{{"username": "{USER}", "password": "{PASSWORD}"}}'
    )
    # When: the next attempt meets a 535 with the cached value
    delivery.clock.advance(minutes=5)
    second = delivery.submit()
    failed = delivery.invoke(delivery.receive())
    # Then: one forced refresh, and the message goes out
    assert failed == []
    assert delivery.status(second).state == "delivered"


def test_failover_to_the_next_upstream_by_priority(delivery, smtp_server, upstream_secret):
    from tests.support import free_port

    server = smtp_server("starttls")
    down = {"name": "primary", "host": "localhost", "port": free_port(), "priority": 1}
    backup = delivery.upstream(server, "starttls", secret_id=upstream_secret, name="backup", priority=5)
    delivery.configure(backup, down)
    message_id = delivery.submit()
    assert delivery.invoke(delivery.receive()) == []
    status = delivery.status(message_id)
    assert status.state == "delivered" and status.upstream == "backup"
    assert len(server.recorder.transactions) == 1


def test_smtp_sink_receives_the_exact_message(delivery, smtp_sink):
    # Given: Postfix's smtp-sink as a plaintext local upstream (explicitly insecure, local use only)
    sink = smtp_sink()
    delivery.configure({"host": "127.0.0.1", "port": sink.port, "insecure_plaintext": True})
    message_id = delivery.submit(rcpt=("alice@example.org", "bob@example.org"))
    # When
    assert delivery.invoke(delivery.receive()) == []
    # Then: smtp-sink's dump (LF lines, its own trace headers first) holds our bytes exactly
    (dump,) = sink.messages()
    head, _, rest = dump.partition(b"\nX-Rcpt-Args: <bob@example.org>\n")
    assert b"X-Mail-Args: <orders@example.com>" in head
    stored = rest.split(b"\n", 3)[3]  # after smtp-sink's 3-line Received header
    assert stored.endswith(b"\n\n")
    stored = stored[:-1].replace(b"\n", b"\r\n")
    assert hashlib.sha256(stored).hexdigest() == delivery.status(message_id).sha256


def test_smtp_sink_hard_rejecting_the_data_fails_the_message(delivery, smtp_sink):
    sink = smtp_sink("-f", ".")  # a hard (5xx) reply to the final "."
    delivery.configure({"host": "127.0.0.1", "port": sink.port, "insecure_plaintext": True})
    message_id = delivery.submit()
    assert delivery.invoke(delivery.receive()) == []  # final: the record is deleted, not retried
    status = delivery.status(message_id)
    assert status.state == "failed" and status.recipients[0].reply.code >= 500
    assert delivery.visible() + delivery.in_flight() == 0
