"""POST /v1/uploads and attachments that name an upload: signed for exactly what was declared, checked at
acceptance, and never readable by another client."""

from __future__ import annotations

import base64
import email
from datetime import UTC, datetime, timedelta
from email import policy
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

VALID = {"from": "app@example.com", "to": ["rcpt@example.org"], "subject": "hi", "text": "hello"}


def put_as_the_client_would(aws, client_id: str, upload_id: str, data: bytes, declared: int | None = None) -> None:
    """What the presigned PUT stores (moto does not check signatures, so the object is written directly)."""
    size = len(data) if declared is None else declared
    boto3.client("s3").put_object(Bucket=aws.names["PayloadBucket"], Key=f"uploads/{client_id}/{upload_id}",
                                  Body=data, Metadata={"declared-size": str(size)})  # fmt: skip


def create(api, key, **body):
    return api("POST", "/v1/uploads", {"filename": "report.pdf", "content_type": "application/pdf", **body}, key=key)


def test_an_upload_is_a_presigned_put_signed_for_its_size_type_and_owner(api, client_key):
    response = create(api, client_key, size=1234)
    assert response.status == 201, response.text
    upload = response.json()
    assert upload["method"] == "PUT"
    assert upload["upload_id"].startswith("upl_")
    url = urlsplit(upload["url"])
    assert url.path.endswith(f"/uploads/shop/{upload['upload_id']}")
    query = parse_qs(url.query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    # S3 refuses a PUT whose length, type or declared size differs from what was signed
    assert set(query["X-Amz-SignedHeaders"][0].split(";")) >= {"content-length", "content-type", "host"}
    assert upload["headers"] == {"Content-Type": "application/pdf", "x-amz-meta-declared-size": "1234"}
    expires = datetime.fromisoformat(upload["expires_at"])
    assert timedelta(minutes=55) < expires - datetime.now(UTC) <= timedelta(hours=1)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"size": 0}, 422, "size"),
        ({"size": 1, "filename": "../etc/passwd"}, 422, "filename"),
        ({"size": 1, "content_type": "multipart/mixed"}, 422, "content_type"),
        ({"size": 1, "extra": True}, 422, "extra"),
        ({"size": 10_000_001}, 413, "body"),
    ],
)
def test_a_bad_upload_request_is_refused_precisely(api, client_key, body, status, field):
    response = create(api, client_key, **body)
    assert response.status == status, response.text
    assert response.json()["errors"][0]["field"] == field


def test_uploads_need_a_key(api):
    assert create(api, None, size=10).status == 401


def test_an_uploaded_attachment_is_sent_as_uploaded(api, client_key, aws, queue_messages):
    upload = create(api, client_key, size=300_000).json()
    data = bytes(range(256)) * 1171 + b"tail"
    data = data[:300_000]
    put_as_the_client_would(aws, "shop", upload["upload_id"], data)
    attachment = {"filename": "report.pdf", "content_type": "application/pdf", "upload_id": upload["upload_id"]}
    response = api("POST", "/v1/messages", {**VALID, "attachments": [attachment]}, key=client_key)
    assert response.status == 202, response.text
    (queued,) = queue_messages()
    payload = queued["payload"]
    raw = boto3.client("s3").get_object(Bucket=payload["bucket"], Key=payload["key"])["Body"].read()
    (part,) = email.message_from_bytes(raw, policy=policy.default).iter_attachments()
    assert part.get_content() == data


@pytest.mark.parametrize("case", ["never uploaded", "another client's", "size differs", "malformed id"])
def test_an_upload_that_is_not_this_clients_or_not_as_declared_is_refused(
    api, client_key, services, aws, queue_messages, case
):
    upload_id = create(api, client_key, size=100).json()["upload_id"]
    if case == "another client's":
        _, other_key = services.clients.create("other", ["example.com"])
        upload_id = create(api, other_key, size=100).json()["upload_id"]
        put_as_the_client_would(aws, "other", upload_id, b"x" * 100)
    elif case == "size differs":
        put_as_the_client_would(aws, "shop", upload_id, b"x" * 150, declared=100)
    elif case == "malformed id":
        upload_id = "upl_../../messages/x"
    attachment = {"filename": "a.bin", "upload_id": upload_id}
    response = api("POST", "/v1/messages", {**VALID, "attachments": [attachment]}, key=client_key)
    assert response.status == 422, response.text
    assert response.json()["errors"][0]["field"].startswith("attachments[0]")
    assert queue_messages() == []


def test_an_attachment_gives_content_or_an_upload_not_both(api, client_key):
    both = {"filename": "a.bin", "content": base64.b64encode(b"x").decode(), "upload_id": "upl_" + "a" * 32}
    response = api("POST", "/v1/messages", {**VALID, "attachments": [both]}, key=client_key)
    assert response.status == 422
    assert "exactly one of 'content'" in response.json()["errors"][0]["detail"]
