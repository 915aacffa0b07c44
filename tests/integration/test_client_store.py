"""The clients table as the bridge reads it: at every MAIL and after every DATA."""

from __future__ import annotations

from mailrelay.clients import hash_key
from mailrelay.wiring import Services


def test_every_read_sees_a_change_at_once_and_an_unchanged_client_is_parsed_once(services: Services) -> None:
    # Given a client that has been read once
    _, key = services.clients.create("memo", ["example.com"])
    store = services.clients.store
    first = store.get("memo")
    assert first is not None and first.state == "active"

    # When it is read again unchanged, then it is the same parsed client, by id and by key
    assert store.get("memo") is first
    assert store.find_by_key_hash(hash_key(key)) is first

    # When it is revoked, then the very next read says so
    store.revoke("memo")
    revoked = store.get("memo")
    assert revoked is not None and revoked.state == "revoked"
    assert store.find_by_key_hash(hash_key(key)) is None  # revoking removes the key
