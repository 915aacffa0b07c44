"""GET /v1/messages and POST /v1/messages/{id}/cancel through the real API handler (moto DynamoDB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest


@pytest.fixture
def other_key(services) -> str:
    _, key = services.clients.create("other-shop", ["example.com"])
    return key


def send(api, key: str, **fields: Any) -> str:
    body = {"from": "app@example.com", "to": ["a@example.net"], "subject": "s", "text": "t", **fields}
    response = api("POST", "/v1/messages", body, key=key)
    assert response.status == 202, response.text
    return response.json()["id"]


def every_page(api, key: str, query: dict[str, str]) -> list[dict[str, Any]]:
    found, cursor = [], None
    while True:
        page = api("GET", "/v1/messages", key=key, query={**query, **({"cursor": cursor} if cursor else {})})
        assert page.status == 200, page.text
        body = page.json()
        found += body["messages"]
        assert body["has_more"] == (body["next_cursor"] is not None)
        if not body["has_more"]:
            return found
        cursor = body["next_cursor"]


def test_each_client_pages_through_only_its_own_messages_with_filters(api, client_key, other_key):
    kinds = ["receipt" if i % 3 == 0 else "notice" for i in range(130)]
    mine = [send(api, client_key, subject=f"mine {i}", to=[f"r{i % 5}@example.net"],
                 tags=[{"name": "kind", "value": kind}]) for i, kind in enumerate(kinds)]  # fmt: skip
    theirs = [send(api, other_key, subject=f"theirs {i}") for i in range(120)]

    listed = every_page(api, client_key, {"limit": "17"})
    assert [m["id"] for m in listed] == mine[::-1]  # newest first, every one, no other client's
    first = listed[-1]
    assert first["subject"] == "mine 0" and first["from"] == "app@example.com" and first["state"] == "queued"
    assert first["recipients"] == [{"address": "r0@example.net", "state": "pending"}]
    assert first["tags"] == {"kind": "receipt"} and first["created_at"].endswith("Z")
    assert {m["id"] for m in every_page(api, other_key, {"limit": "100"})} == set(theirs)

    receipts = every_page(api, client_key, {"tag": "kind:receipt", "limit": "7"})
    assert [m["id"] for m in receipts] == [m for i, m in enumerate(mine) if i % 3 == 0][::-1]
    to_r2 = every_page(api, client_key, {"recipient": "R2@EXAMPLE.NET"})
    assert [m["id"] for m in to_r2] == [m for i, m in enumerate(mine) if i % 5 == 2][::-1]
    assert every_page(api, client_key, {"state": "delivered"}) == []
    assert len(every_page(api, client_key, {"state": "queued,scheduled"})) == 130
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert every_page(api, client_key, {"since": future}) == []
    assert len(every_page(api, client_key, {"until": future, "limit": "100"})) == 130


def test_a_tampered_or_foreign_cursor_is_refused(api, client_key, other_key):
    for i in range(3):
        send(api, client_key, subject=f"m{i}")
    page = api("GET", "/v1/messages", key=client_key, query={"limit": "1"}).json()
    cursor = page["next_cursor"]
    payload, signature = cursor.split(".")
    tampered = [payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + signature,
                payload + "." + signature[::-1], "not-a-cursor", cursor + "x"]  # fmt: skip
    for bad in tampered:
        response = api("GET", "/v1/messages", key=client_key, query={"limit": "1", "cursor": bad})
        assert response.status == 422 and response.json()["errors"][0]["field"] == "cursor", response.text
    # Another client's key cannot use it, and other filters cannot either.
    assert api("GET", "/v1/messages", key=other_key, query={"limit": "1", "cursor": cursor}).status == 422
    assert api("GET", "/v1/messages", key=client_key, query={"state": "queued", "cursor": cursor}).status == 422
    assert api("GET", "/v1/messages", key=client_key, query={"limit": "1", "cursor": cursor}).status == 200


@pytest.mark.parametrize(
    ("query", "field"),
    [({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"), ({"state": "lost"}, "state"),
     ({"tag": "novalue"}, "tag"), ({"since": "yesterday"}, "since"), ({"recipient": "not an address"}, "recipient"),
     ({"colour": "red"}, "colour"), ({"since": "2026-12-02T10:00:00Z", "until": "2026-12-01T10:00:00Z"}, "since")],
)  # fmt: skip
def test_bad_filters_are_refused_naming_the_parameter(api, client_key, query, field):
    response = api("GET", "/v1/messages", key=client_key, query=query)
    assert response.status == 422, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert field in {e["field"] for e in response.json()["errors"]}


def test_cancel_answers_200_then_409_and_404_for_another_clients_message(api, client_key, other_key):
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    message_id = send(api, client_key, send_at=later)
    assert api("POST", f"/v1/messages/{message_id}/cancel", key=other_key).status == 404
    cancelled = api("POST", f"/v1/messages/{message_id}/cancel", key=client_key)
    assert cancelled.status == 200 and cancelled.json()["state"] == "cancelled"
    again = api("POST", f"/v1/messages/{message_id}/cancel", key=client_key)
    assert again.status == 409 and "cancelled" in again.json()["detail"]
    assert api("GET", f"/v1/messages/{message_id}", key=client_key).json()["state"] == "cancelled"
    assert api("POST", "/v1/messages/" + "0" * 32 + "/cancel", key=client_key).status == 404
