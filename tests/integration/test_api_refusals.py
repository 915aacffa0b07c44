"""Bad input, bad credentials and failing storage: a precise answer, and nothing stored."""

from __future__ import annotations

import base64

import boto3
import pytest
from botocore.exceptions import ClientError

VALID = {"from": "app@example.com", "to": ["rcpt@example.org"], "subject": "hi", "text": "hello"}

INJECTIONS = [
    "x\r\nBcc: victim@evil.example",
    "x\nX-Evil: 1",
    "x\rX-Evil: 1",
    "x\x00y",
    "x\u2028y",
    "x\u2029y",
    "x\x85y",
]


def _with(path: str, value: str) -> dict:
    """VALID with one header-bearing field replaced by ``value``."""
    body = {**VALID, "to": list(VALID["to"])}
    match path:
        case "subject":
            body["subject"] = value
        case "from.name":
            body["from"] = {"email": "app@example.com", "name": value}
        case "from.email":
            body["from"] = {"email": f"app{value}@example.com"}
        case "to[0].name":
            body["to"] = [{"email": "rcpt@example.org", "name": value}]
        case "to[0].email":
            body["to"] = [f"rc{value}@example.org"]
        case "cc[0].email":
            body["cc"] = [f"rc{value}@example.org"]
        case "reply_to[0].name":
            body["reply_to"] = [{"email": "r@example.com", "name": value}]
        case "headers.X-Custom":
            body["headers"] = {"X-Custom": value}
        case "attachments[0].filename":
            body["attachments"] = [{"filename": value, "content": base64.b64encode(b"a").decode()}]
    return body


@pytest.mark.parametrize("injection", INJECTIONS, ids=repr)
@pytest.mark.parametrize(
    "field",
    ["subject", "from.name", "from.email", "to[0].name", "to[0].email", "cc[0].email", "reply_to[0].name",
     "headers.X-Custom", "attachments[0].filename"],
)  # fmt: skip
def test_header_injection_is_refused_with_the_field_named(api, client_key, queue_messages, field, injection):
    response = api("POST", "/v1/messages", _with(field, injection), key=client_key)
    assert response.status == 422, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422
    assert field in [e["field"] for e in problem["errors"]]
    assert queue_messages() == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**VALID, "headers": {"From": "ceo@example.com"}}, "headers.From"),
        ({**VALID, "headers": {"content-type": "text/html"}}, "headers.content-type"),
        ({**VALID, "headers": {"Bad Name": "x"}}, "headers.Bad Name"),
        ({**VALID, "from": "not-an-address"}, "from.email"),
        ({**VALID, "to": ["@relay.example:victim@example.org"]}, "to[0].email"),
        ({**VALID, "to": ["victim%example.org@example.com"]}, "to[0].email"),
        ({**VALID, "to": ["host!victim@example.com"]}, "to[0].email"),
        ({**VALID, "to": ['"quoted"@example.org']}, "to[0].email"),
        ({**VALID, "text": None}, "body"),
        ({**VALID, "unknown": 1}, "unknown"),
        ({**VALID, "send_at": "2020-01-01T00:00:00"}, "send_at"),
        ({**VALID, "send_at": "2999-01-01T00:00:00Z"}, "send_at"),
        ({**VALID, "expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
        ({**VALID, "attachments": [{"filename": "a", "content": "***"}]}, "attachments[0].content"),
        ({**VALID, "delivery": "exactly_once"}, "delivery"),
        (
            {"raw": {"data": "aGk=", "mail_from": "app@example.com", "rcpt_to": ["r@example.org"]}, "subject": "x"},
            "body",
        ),
        ({**VALID, "to": [f"r{i}@example.org" for i in range(51)]}, "to"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_invalid_requests_name_the_field(api, client_key, queue_messages, body, field):
    response = api("POST", "/v1/messages", body, key=client_key)
    assert response.status == 422, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]], response.text
    assert queue_messages() == []


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"from": "a@example.com", "to": "b@example.org", "text": "x", "html": "\\ud800"}', "html"),
        ('{"from": "a@example.com", "to": [{"email": "b@example.org", "name": "\\udc00"}], "text": "x"}', "to[0].name"),
        ('{"from": "a@example.com", "to": "b@example.org", "text": "\\udfff", "metadata": {"k": "v"}}', "text"),
    ],
)
def test_unpaired_surrogate_escapes_are_refused_not_a_crash(api, client_key, queue_messages, raw, field):
    response = api("POST", "/v1/messages", raw_body=raw, key=client_key, headers={"content-type": "application/json"})
    assert response.status == 422, response.text
    assert field in [e["field"] for e in response.json()["errors"]]
    assert queue_messages() == []


@pytest.mark.parametrize("raw", ["", "{", "[1,2", "\xff\xfe", "null", '"text"', "[]"])
def test_malformed_bodies_get_a_problem_not_a_crash(api, client_key, queue_messages, raw):
    response = api("POST", "/v1/messages", raw_body=raw, key=client_key, headers={"content-type": "application/json"})
    assert response.status in (400, 422), response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert queue_messages() == []


def test_oversized_message_is_413(api, client_key, queue_messages):
    ops = api.operations
    ops.settings = ops.settings.model_copy(update={"max_message_bytes": 2_000_000})
    big = base64.b64encode(b"x" * 2_000_000).decode()
    body = {**VALID, "attachments": [{"filename": "big.bin", "content": big}]}
    response = api("POST", "/v1/messages", body, key=client_key)
    assert response.status == 413
    assert response.json()["type"] == "urn:mailrelay:problem:message-too-large"
    assert queue_messages() == []


def test_a_body_over_what_one_lambda_invocation_carries_is_413_pointing_to_uploads(api, client_key, queue_messages):
    big = base64.b64encode(b"x" * 4_700_000).decode()  # 6.27 MB of JSON: over the 6 MB invoke, less our allowance
    body = {**VALID, "attachments": [{"filename": "big.bin", "content": big}]}
    response = api("POST", "/v1/messages", body, key=client_key)
    assert response.status == 413
    assert response.json()["type"] == "urn:mailrelay:problem:request-too-large"
    assert "POST /v1/uploads" in response.json()["detail"]
    assert queue_messages() == []


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer mr_wrong", "Basic dXNlcjpwYXNz", "Bearer " + "mr_" + "A" * 43],
)
def test_missing_or_unknown_key_is_401(api, queue_messages, authorization, client_key):
    headers = {} if authorization is None else {"authorization": authorization}
    response = api("POST", "/v1/messages", VALID, headers=headers)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.headers["Content-Type"] == "application/problem+json"
    assert queue_messages() == []


def test_unauthenticated_request_is_401_before_the_body_is_looked_at(api, queue_messages):
    response = api("POST", "/v1/messages", raw_body="{not json")
    assert response.status == 401


def test_revoked_key_is_401_once_the_key_cache_bound_has_passed(api, services, queue_messages):
    # The API remembers a key's client for MAILRELAY_API_KEY_CACHE_SECONDS (the clock is injected, no sleep)
    now = [1000.0]
    api.operations.clients.clock = lambda: now[0]
    _, key = services.clients.create("temp", ["example.com"])
    assert api("POST", "/v1/messages", VALID, key=key).status == 202
    services.clients.store.revoke("temp")
    now[0] += services.settings.api_key_cache_seconds
    assert api("POST", "/v1/messages", VALID, key=key).status == 401
    assert len(queue_messages()) == 1


def test_revoked_key_is_401_at_once_without_the_key_cache(aws, queue_messages):
    import os

    from mailrelay.settings import settings_from
    from mailrelay.wiring import Services
    from tests.integration.conftest import Api

    services = Services(settings_from({**os.environ, "MAILRELAY_API_KEY_CACHE_SECONDS": "0"}))
    api = Api(services)
    _, key = services.clients.create("temp", ["example.com"])
    assert api("POST", "/v1/messages", VALID, key=key).status == 202
    services.clients.store.revoke("temp")
    assert api("POST", "/v1/messages", VALID, key=key).status == 401
    assert len(queue_messages()) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**VALID, "from": "ceo@other.example"}, "from"),
        ({**VALID, "from": "app@sub.example.com"}, "from"),
        ({**VALID, "from": {"email": "app@example.com.evil.example", "name": "app@example.com"}}, "from"),
    ],
)
def test_sender_not_allowed_is_403(api, client_key, queue_messages, body, field):
    response = api("POST", "/v1/messages", body, key=client_key)
    assert response.status == 403, response.text
    assert response.json()["errors"][0]["field"] == field
    assert queue_messages() == []


@pytest.mark.parametrize(
    "header_from",
    [
        b"From: ceo@other.example",
        b'From: "app@example.com" <ceo@other.example>',
        b"From: app@example.com, ceo@other.example",
        b"From: app@example.com\r\nSender: ceo@other.example",
        b"From: app@example.com\r\nFrom: ceo@other.example",
        b"From: app@example.com)<ceo@other.example>",
        b"From: =?utf-8?q?app=40example=2Ecom?= <ceo@other.example>",
        b"From: undisclosed:;",
    ],
)
def test_raw_message_from_header_is_checked_strictly(api, client_key, queue_messages, header_from):
    raw = header_from + b"\r\nTo: r@example.org\r\nSubject: x\r\n\r\nbody\r\n"
    body = {
        "raw": {"data": base64.b64encode(raw).decode(), "mail_from": "app@example.com", "rcpt_to": ["r@example.org"]}
    }
    response = api("POST", "/v1/messages", body, key=client_key)
    assert response.status in (403, 422), response.text
    assert queue_messages() == []


def test_idempotency_key_replays_the_first_response(api, client_key, queue_messages):
    first = api("POST", "/v1/messages", VALID, key=client_key, headers={"Idempotency-Key": "order-1"})
    again = api("POST", "/v1/messages", VALID, key=client_key, headers={"IDEMPOTENCY-KEY": "order-1"})
    assert first.status == again.status == 202
    assert first.json() == again.json()
    assert len(queue_messages()) == 1


def test_idempotency_key_with_another_body_is_409(api, client_key, queue_messages):
    assert api("POST", "/v1/messages", VALID, key=client_key, headers={"idempotency-key": "k"}).status == 202
    other = api("POST", "/v1/messages", {**VALID, "subject": "other"}, key=client_key, headers={"idempotency-key": "k"})
    assert other.status == 409
    assert other.headers["Content-Type"] == "application/problem+json"
    assert len(queue_messages()) == 1


def test_idempotency_keys_are_scoped_per_client(api, client_key, services, queue_messages):
    _, other_key = services.clients.create("other", ["example.com"])
    a = api("POST", "/v1/messages", VALID, key=client_key, headers={"idempotency-key": "same"})
    b = api("POST", "/v1/messages", VALID, key=other_key, headers={"idempotency-key": "same"})
    assert a.json()["id"] != b.json()["id"]
    assert len(queue_messages()) == 2


def _fail_on(client, operation: str):
    """Make one AWS operation fail at the botocore level, as a throttled or unreachable service would."""

    def boom(**kwargs):
        raise ClientError({"Error": {"Code": "ServiceUnavailable", "Message": "injected"}}, operation)

    service = client.meta.service_model.service_name
    client.meta.events.register(f"before-call.{service}.{operation}", boom)
    return boom


@pytest.mark.parametrize(
    ("service", "operation", "large"),
    [("sqs", "SendMessage", False), ("dynamodb", "PutItem", False), ("s3", "PutObject", True),
     ("sqs", "SendMessage", True)],
)  # fmt: skip
def test_storage_failure_is_503_and_leaves_nothing_behind(
    api, client_key, queue_messages, aws, service, operation, large
):
    ops = api.operations
    clients = {"sqs": ops.submissions.queue._client(), "s3": ops.submissions.payloads._client(),
               "dynamodb": ops.submissions.statuses._client()}  # fmt: skip
    boom = _fail_on(clients[service], operation)
    body = dict(VALID)
    if large:
        body["attachments"] = [{"filename": "big.bin", "content": base64.b64encode(b"y" * 300_000).decode()}]
    response = api("POST", "/v1/messages", body, key=client_key, headers={"Idempotency-Key": "retry-me"})
    assert response.status == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["retryable"] is True
    assert queue_messages() == []
    assert boto3.client("dynamodb").scan(TableName=aws.names["MessagesTable"])["Count"] == 0
    assert boto3.client("s3").list_objects_v2(Bucket=aws.names["PayloadBucket"]).get("KeyCount", 0) == 0
    # the failed attempt did not burn the idempotency key: the retry goes through
    clients[service].meta.events.unregister(f"before-call.{service}.{operation}", boom)
    retry = api("POST", "/v1/messages", body, key=client_key, headers={"Idempotency-Key": "retry-me"})
    assert retry.status == 202
    assert len(queue_messages()) == 1


def test_batch_accepts_and_refuses_items_independently(api, client_key, queue_messages):
    items = [VALID, {**VALID, "subject": "bad\r\nBcc: x@evil.example"}, {**VALID, "from": "x@other.example"}, VALID]
    response = api("POST", "/v1/messages/batch", {"messages": items}, key=client_key)
    assert response.status == 200, response.text
    results = response.json()["results"]
    assert [("id" in r) for r in results] == [True, False, False, True]
    assert results[1]["error"]["status"] == 422
    assert results[1]["error"]["errors"][0]["field"] == "messages[1].subject"
    assert results[2]["error"]["status"] == 403
    assert sorted(m["id"] for m in queue_messages()) == sorted([results[0]["id"], results[3]["id"]])


def test_batch_limits(api, client_key):
    assert api("POST", "/v1/messages/batch", {"messages": []}, key=client_key).status == 422
    assert api("POST", "/v1/messages/batch", {"messages": [VALID] * 101}, key=client_key).status == 422
    assert api("POST", "/v1/messages/batch", [VALID], key=client_key).status == 422


def test_openapi_is_public_and_describes_the_routes(api):
    response = api("GET", "/v1/openapi.json")
    assert response.status == 200
    doc = response.json()
    assert doc["openapi"].startswith("3.1")
    assert {"/v1/messages", "/v1/messages/batch", "/v1/messages/{id}"} <= set(doc["paths"])
    assert "SendRequest" in doc["components"]["schemas"]


def test_unknown_route_is_a_problem(api, client_key):
    response = api("GET", "/v1/nothing", key=client_key)
    assert response.status == 404
    assert response.headers["Content-Type"] == "application/problem+json"
