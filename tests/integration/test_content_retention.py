"""Content retention: a client that keeps content can read each accepted message back, for as long as it
chose; a client that does not gets a precise 404."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import boto3
import pytest

import mailrelay.api.operations
from local_stack.cli import main as cli

MESSAGE = {"from": "app@example.com", "to": ["a@example.net"], "subject": "kept", "text": "hello"}


@pytest.fixture
def keeper_key(services) -> str:
    _, key = services.clients.create("keeper", ["example.com"], retain_content_days=7)
    return key


def test_kept_content_reads_back_as_queued(api, keeper_key, client_key, queue_messages):
    message_id = api("POST", "/v1/messages", MESSAGE, key=keeper_key).json()["id"]
    got = api("GET", f"/v1/messages/{message_id}/content", key=keeper_key)
    assert got.status == 200 and got.headers["Content-Type"] == "message/rfc822"
    status = api("GET", f"/v1/messages/{message_id}", key=keeper_key).json()
    (queued,) = queue_messages()
    sent = base64.b64decode(queued["payload"]["data"])
    assert got.text.encode("utf-8", "surrogateescape") == sent and hashlib.sha256(sent).hexdigest() == status["sha256"]
    assert status["retain_content_days"] == 7
    # Another client cannot read it; a client that keeps nothing is told so.
    assert api("GET", f"/v1/messages/{message_id}/content", key=client_key).status == 404
    other_id = api("POST", "/v1/messages", MESSAGE, key=client_key).json()["id"]
    refused = api("GET", f"/v1/messages/{other_id}/content", key=client_key)
    assert refused.status == 404 and "not retained" in refused.json()["detail"]


def test_content_is_gone_after_its_period(api, keeper_key, monkeypatch):
    message_id = api("POST", "/v1/messages", MESSAGE, key=keeper_key).json()["id"]
    later = datetime.now(UTC) + timedelta(days=7, minutes=1)
    monkeypatch.setattr(mailrelay.api.operations, "utcnow", lambda: later)
    gone = api("GET", f"/v1/messages/{message_id}/content", key=keeper_key)
    assert gone.status == 404 and "kept 7 days" in gone.json()["detail"]


def test_large_content_is_a_short_lived_link(api, keeper_key, aws):
    attachment = base64.b64encode(b"\x00\x01" * 2_100_000).decode()
    big = {**MESSAGE, "attachments": [{"filename": "big.bin", "content": attachment}]}
    message_id = api("POST", "/v1/messages", big, key=keeper_key).json()["id"]
    got = api("GET", f"/v1/messages/{message_id}/content", key=keeper_key)
    assert got.status == 303
    location = got.headers["Location"]
    assert f"retained/7d/keeper/{message_id}.eml" in location and "Signature=" in location
    stored = boto3.client("s3").get_object(
        Bucket=aws.names["PayloadBucket"], Key=f"retained/7d/keeper/{message_id}.eml"
    )
    assert stored["ContentLength"] > 4 * 1024 * 1024


def test_the_cli_sets_and_changes_retention(aws, services, capsys):
    table = aws.names["ClientsTable"]
    assert cli(["keys", "--table", table, "create", "--name", "archivist", "--allow-from", "example.com",
                "--retain-content-days", "30"]) == 0  # fmt: skip
    assert services.clients.store.get("archivist").retain_content_days == 30
    assert cli(["keys", "--table", table, "update", "archivist", "--retain-content-days", "0"]) == 0
    assert services.clients.store.get("archivist").retain_content_days == 0
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        cli(["keys", "--table", table, "update", "archivist", "--retain-content-days", "5"])
    assert "invalid choice" in capsys.readouterr().err
    assert cli(["keys", "--table", table, "update", "nobody", "--retain-content-days", "7"]) == 2
