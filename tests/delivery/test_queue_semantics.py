"""The worker and the queue: duplicates, connection reuse, scheduling, expiry, deadline, quarantine."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import boto3

import mailrelay.submission
from mailrelay.delivery.deadline import Deadline
from mailrelay.delivery.wiring import build_worker
from tests.support import free_port


def dead_letters(delivery) -> list[dict]:
    sqs = boto3.client("sqs")
    return sqs.receive_message(
        QueueUrl=delivery.aws.names["DeliveryDeadLetterQueue"], MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", [])


def test_the_same_record_twice_is_sent_once(delivery, upstream):
    message_id = delivery.submit()
    event = delivery.receive()
    # When: the record arrives again after it was delivered (at-least-once queues)
    assert delivery.invoke(event) == []
    assert delivery.invoke(event) == []  # finished: nothing to retry either
    # Then
    assert upstream.recorder.count("MAIL") == 1 and len(upstream.recorder.transactions) == 1
    assert delivery.status(message_id).attempts == 1


def test_the_same_record_received_concurrently_is_sent_once(delivery, upstream):
    # Given: two execution environments received the same record; the first is in the middle of DATA
    message_id = delivery.submit()
    record = delivery.receive()["Records"][0]
    in_data, finish = threading.Event(), threading.Event()
    upstream.recorder.data_hook = lambda: (in_data.set(), finish.wait(10))
    assert delivery.settings is not None
    workers = [build_worker(delivery.services.settings, delivery.settings) for _ in range(2)]
    results: list = []
    sender = threading.Thread(
        target=lambda: results.append(workers[0].handle(record["body"], record["receiptHandle"], Deadline.unlimited()))
    )
    sender.start()
    assert in_data.wait(10)
    # When: the second tries while the first holds the lease
    busy = workers[1].handle(record["body"], record["receiptHandle"], Deadline.unlimited())
    finish.set()
    sender.join(10)
    again = workers[1].handle(record["body"], record["receiptHandle"], Deadline.unlimited())
    # Then: the second neither sent nor deleted while busy; afterwards it sees the message finished
    assert (busy.keep, busy.reason) == (True, "busy") and busy.retry_in > 0
    assert (results[0].keep, results[0].reason) == (False, "delivered")
    assert (again.keep, again.reason) == (False, "duplicate")
    assert upstream.recorder.count("MAIL") == 1 and len(upstream.recorder.transactions) == 1
    assert delivery.status(message_id).state == "delivered"
    for worker in workers:
        worker.pool.close_all()


def test_ten_messages_in_one_batch_share_one_connection(delivery, upstream):
    ids = [delivery.submit(rcpt=(f"user{i}@example.org",)) for i in range(10)]
    event = delivery.receive()
    assert len(event["Records"]) == 10
    # When
    assert delivery.invoke(event) == []
    # Then: ten transactions over one TCP connection, reset between messages
    assert len(upstream.recorder.transactions) == 10
    assert len({t.peer for t in upstream.recorder.transactions}) == 1 and len(upstream.recorder.peers) == 1
    assert upstream.recorder.count("RSET") == 9
    assert {delivery.status(i).state for i in ids} == {"delivered"}


def test_a_warm_invocation_reuses_a_live_connection_and_an_idle_one_is_replaced(delivery, upstream):
    delivery.submit()
    delivery.invoke(delivery.receive())
    delivery.submit()
    delivery.invoke(delivery.receive())
    assert len(upstream.recorder.peers) == 1 and upstream.recorder.count("NOOP") == 1
    # When: the connection has been idle longer than allowed
    assert delivery.worker is not None
    for session in delivery.worker.pool._sessions.values():
        session.last_used -= 3600
    delivery.submit()
    delivery.invoke(delivery.receive())
    # Then: closed and replaced by a new one
    assert len(upstream.recorder.peers) == 2 and len(upstream.recorder.transactions) == 3


def test_send_at_in_the_future_is_delivered_after_it_not_before(delivery, upstream, monkeypatch):
    # Given: a scheduled message whose queue delay (at most 15 min in SQS) has already run out
    monkeypatch.setattr(mailrelay.submission, "SQS_MAX_DELAY", 0)
    send_at = datetime.now(UTC) + timedelta(hours=1)
    message_id = delivery.submit(send_at=send_at)
    event = delivery.receive()
    # When: it arrives early
    assert len(delivery.invoke(event)) == 1
    # Then: not sent; hidden until due
    assert upstream.recorder.transactions == [] and delivery.status(message_id).state == "scheduled"
    assert delivery.visible() == 0 and delivery.in_flight() == 1
    delivery.clock.advance(minutes=59)
    assert len(delivery.invoke(event)) == 1 and upstream.recorder.transactions == []
    # When: it is due
    delivery.clock.advance(minutes=1, seconds=1)
    assert delivery.invoke(event) == []
    # Then
    status = delivery.status(message_id)
    assert status.state == "delivered" and status.attempts == 1 and status.updated_at >= send_at
    assert len(upstream.recorder.transactions) == 1


def test_expiry_passing_while_the_upstream_is_down_records_expired(delivery, upstream_secret):
    delivery.configure({"host": "localhost", "port": free_port(), "tls": "starttls", "ca_file": delivery.ca_file,
                        "secret_id": upstream_secret})  # fmt: skip
    message_id = delivery.submit(expires_at=datetime.now(UTC) + timedelta(minutes=10))
    event = delivery.receive()
    assert len(delivery.invoke(event)) == 1
    assert delivery.status(message_id).state == "deferred"
    # When: the record comes back after the expiry
    delivery.clock.advance(minutes=11)
    failed = delivery.invoke(event)
    # Then: expired, final, record gone
    status = delivery.status(message_id)
    assert failed == [] and status.state == "expired" and status.recipients[0].state == "expired"
    assert "expired" in status.last_error and status.completed_at is not None
    assert delivery.visible() + delivery.in_flight() == 0


def test_retries_back_off_and_never_beyond_the_expiry(delivery, upstream_secret):
    delivery.configure({"host": "localhost", "port": free_port(), "tls": "starttls", "ca_file": delivery.ca_file,
                        "secret_id": upstream_secret})  # fmt: skip
    message_id = delivery.submit(expires_at=datetime.now(UTC) + timedelta(hours=3))
    event = delivery.receive()
    waits = []
    for _ in range(5):
        delivery.invoke(event)
        status = delivery.status(message_id)
        waits.append((status.next_attempt_at - status.updated_at).total_seconds())
        delivery.clock.advance(seconds=waits[-1])
    assert waits[0] < 120 and waits == sorted(waits) and waits[3] > waits[0] * 4
    assert status.next_attempt_at <= status.expires_at + timedelta(seconds=2)


def test_short_remaining_time_starts_no_send_and_reports_the_records(delivery, upstream):
    ids = [delivery.submit() for _ in range(3)]
    event = delivery.receive()
    # When: the invocation has less time left than a send needs
    failed = delivery.invoke(event, remaining_ms=3_000)
    # Then: nothing sent, all three reported, none marked attempted
    assert sorted(failed) == sorted(r["messageId"] for r in event["Records"])
    assert upstream.recorder.commands == []
    assert {delivery.status(i).state for i in ids} == {"queued"}


def test_a_malformed_record_is_quarantined_not_retried(delivery, upstream):
    boto3.client("sqs").send_message(QueueUrl=delivery.queue_url, MessageBody='{"v": 1, "id": "x"}')
    event = delivery.receive()
    # When
    assert delivery.invoke(event) == []  # deleted from the queue...
    # Then: ...and kept in the dead-letter queue with the reason
    (dead,) = dead_letters(delivery)
    assert dead["Body"] == '{"v": 1, "id": "x"}'
    assert "not a valid queued message" in dead["MessageAttributes"]["quarantine_reason"]["StringValue"]


def test_a_payload_that_fails_its_checksum_is_quarantined_and_never_sent(delivery, upstream):
    message_id = delivery.submit()
    event = delivery.receive()
    body = json.loads(event["Records"][0]["body"])
    body["sha256"] = "0" * 64
    event["Records"][0]["body"] = json.dumps(body)
    # When
    assert delivery.invoke(event) == []
    # Then
    assert upstream.recorder.commands == []
    status = delivery.status(message_id)
    assert status.state == "failed" and "SHA-256" in status.last_error
    (dead,) = dead_letters(delivery)
    assert "SHA-256" in dead["MessageAttributes"]["quarantine_reason"]["StringValue"]


def test_delivered_status_is_visible_through_the_api(delivery, upstream, api, client_key):
    # Given: a message submitted through the HTTP API
    sent = api("POST", "/v1/messages", {"from": "orders@example.com", "to": ["alice@example.org", "bob@example.org"],
                                        "subject": "hi", "text": "Hello"}, key=client_key)  # fmt: skip
    assert sent.status == 202
    message_id = sent.json()["id"]
    # When: delivery runs
    assert delivery.invoke(delivery.receive()) == []
    # Then
    got = api("GET", f"/v1/messages/{message_id}", key=client_key).json()
    assert got["state"] == "delivered" and got["attempts"] == 1 and got["completed_at"]
    assert [(r["address"], r["state"], r["reply"]["code"]) for r in got["recipients"]] == [
        ("alice@example.org", "delivered", 250), ("bob@example.org", "delivered", 250),
    ]  # fmt: skip
    assert "lease_owner" not in got and "client_id" not in got
    (stored,) = upstream.recorder.transactions
    assert f"Message-ID: <{message_id}@".encode() in stored.content
