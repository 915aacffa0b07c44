"""/v1/suppressions and suppression at acceptance, through the real API handler (moto DynamoDB)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest


@pytest.fixture
def other_key(services) -> str:
    _, key = services.clients.create("other-shop", ["example.com"])
    return key


def suppress(api, key: str, address: str, reason: str = "manual") -> Any:
    response = api("PUT", f"/v1/suppressions/{quote(address)}", {"reason": reason}, key=key)
    assert response.status == 200, response.text
    return response.json()


def send(api, key: str, to: list[str]) -> Any:
    body = {"from": "app@example.com", "to": to, "subject": "s", "text": "t"}
    response = api("POST", "/v1/messages", body, key=key)
    assert response.status == 202, response.text
    return response.json()


def test_an_entry_is_added_read_listed_and_removed(api, client_key):
    # Given: a manual entry
    entry = suppress(api, client_key, "Someone@Example.NET")
    assert entry["address"] == "Someone@example.net"  # the domain is folded, the local part kept
    assert entry["reason"] == "manual"
    assert entry["source"] == {"added_by": "api"}
    # Then: it is found under any spelling of its domain, also in its Unicode form
    got = api("GET", "/v1/suppressions/Someone@EXAMPLE.net", key=client_key)
    assert got.status == 200 and got.json()["address"] == "Someone@example.net"
    listing = api("GET", "/v1/suppressions", key=client_key).json()
    assert [e["address"] for e in listing["suppressions"]] == ["Someone@example.net"]
    # When: it is removed, it is gone, and removing it again is a 404
    assert api("DELETE", "/v1/suppressions/Someone%40example.net", key=client_key).status == 204
    assert api("GET", "/v1/suppressions/Someone@example.net", key=client_key).status == 404
    assert api("DELETE", "/v1/suppressions/Someone@example.net", key=client_key).status == 404


def test_an_idna_domain_is_one_entry_in_either_form(api, client_key):
    suppress(api, client_key, "kunde@Bücher.DE")
    got = api("GET", "/v1/suppressions/kunde@xn--bcher-kva.de", key=client_key)
    assert got.status == 200, got.text
    assert got.json()["address"] == "kunde@xn--bcher-kva.de"


def test_bad_input_gets_a_precise_problem_and_changes_nothing(api, client_key):
    bad_address = api("PUT", "/v1/suppressions/not-an-address", {"reason": "manual"}, key=client_key)
    assert bad_address.status == 422
    assert bad_address.headers["Content-Type"] == "application/problem+json"
    assert bad_address.json()["errors"][0]["field"] == "email"
    bad_reason = api("PUT", "/v1/suppressions/a@example.net", {"reason": "hard_bounce"}, key=client_key)
    assert bad_reason.status == 422 and bad_reason.json()["errors"][0]["field"] == "reason"
    unknown = api("PUT", "/v1/suppressions/a@example.net", {"reason": "manual", "why": "x"}, key=client_key)
    assert unknown.status == 422 and unknown.json()["errors"][0]["field"] == "why"
    assert api("GET", "/v1/suppressions", key=client_key).json()["suppressions"] == []
    bad_query = api("GET", "/v1/suppressions", key=client_key, query={"reason": "spam", "limit": "0"})
    assert bad_query.status == 422
    assert {e["field"] for e in bad_query.json()["errors"]} == {"reason", "limit"}


def test_pages_follow_signed_cursors_and_a_tampered_cursor_is_refused(api, client_key, other_key):
    for i in range(7):
        suppress(api, client_key, f"user{i}@example.net", "unsubscribe" if i % 2 else "manual")
    seen, cursor = [], None
    while True:
        query = {"reason": "manual", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = api("GET", "/v1/suppressions", key=client_key, query=query).json()
        seen += [e["address"] for e in page["suppressions"]]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == [f"user{i}@example.net" for i in (0, 2, 4, 6)]
    first = api("GET", "/v1/suppressions", key=client_key, query={"limit": "2"}).json()["next_cursor"]
    payload, _, signature = first.partition(".")
    tampered = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + signature
    for key, query in [(client_key, {"cursor": tampered}), (client_key, {"cursor": first, "reason": "manual"}),
                       (other_key, {"cursor": first})]:  # fmt: skip
        refused = api("GET", "/v1/suppressions", key=key, query=query)
        assert refused.status == 422, refused.text
        assert refused.json()["errors"][0]["field"] == "cursor"


def test_clients_cannot_read_or_remove_each_others_entries(api, client_key, other_key):
    suppress(api, client_key, "mine@example.net")
    assert api("GET", "/v1/suppressions/mine@example.net", key=other_key).status == 404
    assert api("DELETE", "/v1/suppressions/mine@example.net", key=other_key).status == 404
    assert api("GET", "/v1/suppressions", key=other_key).json()["suppressions"] == []
    # the other client's own entry for the same address is its own, and leaves ours in place
    suppress(api, other_key, "mine@example.net", "unsubscribe")
    assert api("GET", "/v1/suppressions/mine@example.net", key=client_key).json()["reason"] == "manual"
    assert api("GET", "/v1/suppressions", key=client_key).status == 200


def test_a_suppressed_recipient_is_recorded_and_not_queued(api, client_key, queue_messages):
    suppress(api, client_key, "gone@example.net")
    # When: a message goes to it and to another recipient (spelled with another domain case)
    accepted = send(api, client_key, ["ok@example.net", "gone@EXAMPLE.net"])
    # Then: accepted for the other one; the suppressed one is listed and never queued
    assert accepted["status"] == "queued" and accepted["suppressed"] == ["gone@example.net"]
    [queued] = queue_messages()
    assert queued["rcpt_to"] == ["ok@example.net"]
    status = api("GET", f"/v1/messages/{accepted['id']}", key=client_key).json()
    by_address = {r["address"]: r for r in status["recipients"]}
    assert by_address["gone@example.net"]["state"] == "suppressed"
    assert "suppressed (manual" in by_address["gone@example.net"]["reply"]["text"]
    assert by_address["gone@example.net"]["reply"]["enhanced"] == "5.7.1"
    assert by_address["ok@example.net"]["state"] == "pending"


def test_a_message_to_only_suppressed_recipients_is_failed_at_once(api, client_key, queue_messages):
    suppress(api, client_key, "gone@example.net")
    accepted = send(api, client_key, ["gone@example.net"])
    assert accepted["status"] == "failed" and accepted["suppressed"] == ["gone@example.net"]
    assert queue_messages() == []
    status = api("GET", f"/v1/messages/{accepted['id']}", key=client_key).json()
    assert status["state"] == "failed"
    assert status["completed_at"] is not None


def test_another_clients_entry_does_not_suppress(api, client_key, other_key, queue_messages):
    suppress(api, other_key, "gone@example.net")
    accepted = send(api, client_key, ["gone@example.net"])
    assert accepted["suppressed"] == [] and accepted["status"] == "queued"
    assert len(queue_messages()) == 1


def test_the_cli_imports_a_thousand_addresses_and_adds_lists_and_removes(api, client_key, tmp_path, capsys):
    from local_stack.cli import main as cli

    # Given: a CSV export with a header, 1,000 addresses, one repeated in another domain case, one bad row
    rows = ["email,reason", *(f"user{i:04}@Example.NET," for i in range(999)), "left@example.net,unsubscribe",
            "user0001@EXAMPLE.net,", "not an address,manual"]  # fmt: skip
    export = tmp_path / "export.csv"
    export.write_text("\n".join(rows) + "\n")
    # When
    code = cli(["suppressions", "--client", "shop", "import", str(export)])
    # Then: every distinct valid address is listed; the summary says what was not imported, and why
    out = capsys.readouterr()
    assert code == 1  # a row was not imported
    assert "imported 1000 addresses for shop (1002 rows, 1 repeated, 1 not imported)" in out.out
    assert "row 1002:" in out.err
    listing = api("GET", "/v1/suppressions", key=client_key, query={"reason": "unsubscribe"}).json()
    assert [e["address"] for e in listing["suppressions"]] == ["left@example.net"]
    assert api("GET", "/v1/suppressions/user0998@example.net", key=client_key).json()["source"] == {
        "added_by": "import"}  # fmt: skip
    # And: one address a line works too, and add / remove / list act on the same list
    plain = tmp_path / "plain.txt"
    plain.write_text("a@example.org\n\nb@example.org\n")
    assert cli(["suppressions", "--client", "shop", "import", str(plain), "--reason", "complaint"]) == 0
    assert cli(["suppressions", "--client", "shop", "add", "c@example.org"]) == 0
    assert cli(["suppressions", "--client", "shop", "remove", "a@example.org"]) == 0
    assert cli(["suppressions", "--client", "shop", "remove", "a@example.org"]) == 2
    capsys.readouterr()
    assert cli(["suppressions", "--client", "shop", "list", "--reason", "complaint"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == ["b@example.org"]
    assert api("GET", "/v1/suppressions/c@example.org", key=client_key).json()["reason"] == "manual"
