"""The simulator in the local stack (`simulator_domain` in local.json): each behaviour reaches its
documented final state and SMTP reply through the real API, queue, delivery handler and status records,
on the local stack's short retry schedule; the viewer shows each message's timeline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.e2e


EXPIRES_SOON = {"expires_at": "soon"}  # a few seconds after it is sent


def request(extra: dict[str, str]) -> dict[str, str]:
    if extra.get("expires_at") == "soon":
        return {**extra, "expires_at": (datetime.now(UTC) + timedelta(seconds=10)).isoformat()}
    return extra


# local part, extra request fields, final state, (code, enhanced code) of the recipient's last reply, attempts
BEHAVIOURS = [
    ("delivered", {}, "delivered", (250, "2.0.0"), 1),
    ("complaint", {}, "delivered", (250, "2.0.0"), 1),
    ("bounce+label", {}, "failed", (550, "5.1.1"), 1),
    ("policy", {}, "failed", (550, "5.7.1"), 1),
    ("defer", {}, "delivered", (250, "2.0.0"), 3),
    ("defer-always", EXPIRES_SOON, "expired", (451, "4.3.0"), None),
    ("timeout", {"delivery": "at_most_once"}, "uncertain", None, 1),
    ("timeout", EXPIRES_SOON, "expired", None, None),  # at_least_once: sent again until it expires
]


def test_each_behaviour_reaches_its_final_state_and_reply(stack):
    domain = stack.info["simulator_domain"]
    sent = [
        stack.send(to=[f"{local}@{domain}"], subject=f"simulate {local}", **request(extra))
        for local, extra, *_ in BEHAVIOURS
    ]  # all at once: their retries overlap
    for message_id, (local, extra, state, reply, attempts) in zip(sent, BEHAVIOURS, strict=True):
        viewed = stack.settled(message_id)
        status = viewed["status"]
        (recipient,) = status["recipients"]
        got = recipient["reply"] and (recipient["reply"]["code"], recipient["reply"]["enhanced"])
        assert (viewed["state"], got) == (state, reply), (local, extra, status)
        if attempts is not None:
            assert status["attempts"] == attempts, (local, status)
        else:
            assert status["attempts"] >= 2, (local, status)  # retried before it expired
        tried = [t["title"] for t in viewed["timeline"] if t["kind"] == "attempt"]
        assert tried and all(title.endswith("via simulator") for title in tried), viewed["timeline"]


def test_defer_timeline_shows_each_attempt_and_its_reply(stack):
    message_id = stack.send(to=[f"defer+timeline@{stack.info['simulator_domain']}"], subject="deferred twice")
    viewed = stack.settled(message_id)
    kinds = [t["kind"] for t in viewed["timeline"]]
    assert kinds == ["accepted", "attempt", "attempt", "attempt", "delivered"]
    first, second, third = (t for t in viewed["timeline"] if t["kind"] == "attempt")
    assert "451 4.3.0" in first["details"][0] and "next attempt at" in first["details"][-1]
    assert "451 4.3.0" in second["details"][0] and "250 2.0.0" in third["details"][0]
