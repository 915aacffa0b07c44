"""A failure of ours is 451 4.3.0: nothing half-stored, and the client's retry after recovery is accepted."""

from __future__ import annotations

import boto3
import pytest

from tests.bridge.conftest import message


def big_message() -> bytes:
    return message(body="\r\n".join("p" * 70 for _ in range(4000)))  # above the inline limit: S3


def send(smtp, data: bytes) -> tuple[int, bytes]:
    smtp.rset()
    assert smtp.mail("app@example.com")[0] == 250
    assert smtp.rcpt("a@example.net")[0] == 250
    return smtp.data(data)


def test_queue_write_failure_is_451_and_retry_after_recovery_is_accepted(
    aws, start_bridge, shop_login, queued, stored_statuses, stored_payloads
):
    bridge = start_bridge()
    sqs = boto3.client("sqs")
    url = aws.names["DeliveryQueue"]
    sqs.delete_queue(QueueUrl=url)
    with bridge.starttls(shop_login) as smtp:
        for data in (message(), big_message()):
            code, reply = send(smtp, data)
            assert (code, reply[:5]) == (451, b"4.3.0")
        assert stored_statuses() == []  # rolled back
        assert stored_payloads() == []

        sqs.create_queue(QueueName=url.rsplit("/", 1)[1], Attributes=aws.queue_attributes["DeliveryQueue"])
        code, reply = send(smtp, message())
        assert code == 250, reply
    [item] = queued()
    assert item["id"].encode() in reply
    assert len(stored_statuses()) == 1


def test_payload_write_failure_is_451_and_nothing_is_half_stored(
    aws, start_bridge, shop_login, queued, stored_statuses
):
    bridge = start_bridge()
    s3 = boto3.client("s3")
    bucket = aws.names["PayloadBucket"]
    s3.delete_bucket(Bucket=bucket)
    with bridge.starttls(shop_login) as smtp:
        code, reply = send(smtp, big_message())
        assert (code, reply[:5]) == (451, b"4.3.0")
        assert queued() == []
        assert stored_statuses() == []

        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": s3.meta.region_name})
        code, reply = send(smtp, big_message())
        assert code == 250, reply
    [item] = queued()
    assert item["payload"]["kind"] == "s3"


def test_unexpected_errors_in_our_code_are_451_never_5xx(start_bridge, shop_login, queued, monkeypatch):
    bridge = start_bridge()

    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr("smtp_bridge.handler.from_smtp", broken)
    with bridge.starttls(shop_login) as smtp:
        code, reply = send(smtp, message())
        assert (code, reply[:5]) == (451, b"4.3.0")
    # An exception escaping a hook reaches aiosmtpd's handle_exception: still 451, not "500 Error".
    monkeypatch.setattr(type(bridge.bridge.handler), "handle_RCPT", broken)
    with bridge.starttls(shop_login) as smtp:
        assert smtp.mail("app@example.com")[0] == 250
        code, reply = smtp.rcpt("a@example.net")
        assert (code, reply[:5]) == (451, b"4.3.0")
    assert queued() == []


@pytest.mark.parametrize("table", ["ClientsTable"])
def test_client_store_outage_during_auth_is_temporary(aws, start_bridge, shop_login, table):
    bridge = start_bridge()
    boto3.client("dynamodb").delete_table(TableName=aws.names[table])
    with bridge.starttls() as smtp:
        smtp.user, smtp.password = shop_login
        code, reply = smtp.docmd("AUTH", "PLAIN " + __import__("base64").b64encode(smtp.auth_plain().encode()).decode())
        assert code == 454 and reply.startswith(b"4.7.0")
