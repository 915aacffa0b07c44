"""The API's cache of clients found by key: how long a revoked key can keep working, and what is never cached.

The clock is injected: nothing here sleeps.
"""

from __future__ import annotations

import pytest

from mailrelay.clients import KEY_CACHE_ENTRIES, ClientService, hash_key
from mailrelay.errors import Unauthenticated
from tests.unit.fakes import MemoryClients

BOUND = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def cached_service() -> tuple[ClientService, Clock]:
    clock = Clock()
    return ClientService(MemoryClients(), cache_seconds=BOUND, clock=clock), clock


def test_a_revoked_key_stops_working_once_the_bound_has_passed() -> None:
    # Given a key the API has just used
    clients, clock = cached_service()
    client, key = clients.create("shop", ["example.com"])
    assert clients.authenticate(key) == client
    # When it is revoked
    clients.store.revoke("shop")
    # Then it may work until the bound, never at or after it
    clock.now += BOUND - 0.001
    assert clients.authenticate(key) == client
    clock.now += 0.001
    with pytest.raises(Unauthenticated):
        clients.authenticate(key)
    clock.now -= 1  # and a refusal is not remembered as an entry that a clock step back could revive
    with pytest.raises(Unauthenticated):
        clients.authenticate(key)


def test_without_a_cache_revocation_is_immediate() -> None:
    clients = ClientService(MemoryClients())
    _, key = clients.create("shop", ["example.com"])
    clients.authenticate(key)
    clients.store.revoke("shop")
    with pytest.raises(Unauthenticated):
        clients.authenticate(key)


def test_an_unknown_key_is_not_remembered_and_a_new_key_works_at_once() -> None:
    clients, _ = cached_service()
    key = "mr_" + "k" * 43
    with pytest.raises(Unauthenticated):
        clients.authenticate(key)
    client, _ = clients.create("shop", ["example.com"], key=key)
    assert clients.authenticate(key) == client


def test_the_bridge_recheck_always_reads_the_store() -> None:
    clients, _ = cached_service()
    _, key = clients.create("shop", ["example.com"])
    clients.authenticate(key)
    clients.store.revoke("shop")
    with pytest.raises(Unauthenticated):
        clients.reauthenticate("shop", hash_key(key))


def test_the_cache_holds_a_bounded_number_of_keys() -> None:
    clients, _ = cached_service()
    keys = [clients.create(f"c{i}", ["example.com"])[1] for i in range(KEY_CACHE_ENTRIES + 5)]
    for key in keys:
        clients.authenticate(key)
    assert len(clients._cache) == KEY_CACHE_ENTRIES
    assert hash_key(keys[0]) not in clients._cache and hash_key(keys[-1]) in clients._cache
