"""Client credentials: API keys for HTTP, the same key as the SMTP AUTH password."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime

from mailrelay.addresses import normalise_allow_entry
from mailrelay.errors import InvalidRequest, Unauthenticated
from mailrelay.models.client import Client
from mailrelay.ports import ClientStore

KEY_PREFIX = "mr_"
KEY_CACHE_ENTRIES = 1024  # keys remembered at once; the oldest goes first


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough; a slow KDF would only slow auth.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


class ClientService:
    """``cache_seconds`` > 0: ``authenticate`` remembers an active client found by a key for that long
    (by ``clock``), so a warm API function does not read the clients table for every request. A key
    revoked meanwhile keeps working until its entry expires: ``cache_seconds`` bounds that delay. A key
    that is not found is never remembered (a new key works at once), and ``reauthenticate`` (the bridge's
    re-check of an open session) always reads the store.
    """

    def __init__(
        self, store: ClientStore, *, cache_seconds: float = 0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._cache: dict[str, tuple[float, Client]] = {}  # key hash -> (expires, client)

    def create(
        self, name: str, allow_from: list[str], key: str | None = None, *, retain_content_days: int = 0
    ) -> tuple[Client, str]:
        """A new client and its key; ``key`` lets the local stack keep its dev key across restarts."""
        if not allow_from:
            raise InvalidRequest.at("allow_from", "at least one allowed sender (domain or address) is required")
        entries = tuple(dict.fromkeys(normalise_allow_entry(e) for e in allow_from))
        key = key or new_api_key()
        client = Client(
            id=name, allowed_from=entries, created_at=datetime.now(UTC), key_prefix=key[:7],
            retain_content_days=retain_content_days,
        )  # fmt: skip
        self.store.create(client, hash_key(key))
        return client, key

    def authenticate(self, key: str | None) -> Client:
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
            raise Unauthenticated("a valid API key is required")
        key_hash = hash_key(key)
        cached = self._cached(key_hash)
        if cached is not None:
            return cached
        client = self.store.find_by_key_hash(key_hash)
        if client is None or client.state != "active":
            raise Unauthenticated("the API key is not valid or has been revoked")
        self._remember(key_hash, client)
        return client

    def _cached(self, key_hash: str) -> Client | None:
        entry = self._cache.get(key_hash)
        if entry is None:
            return None
        if self.clock() >= entry[0]:
            del self._cache[key_hash]
            return None
        return entry[1]

    def _remember(self, key_hash: str, client: Client) -> None:
        if self.cache_seconds <= 0:
            return
        while len(self._cache) >= KEY_CACHE_ENTRIES:
            del self._cache[next(iter(self._cache))]
        self._cache[key_hash] = (self.clock() + self.cache_seconds, client)

    def reauthenticate(self, client_id: str, key_hash: str) -> Client:
        """The client an earlier authentication found, if that key still belongs to it and it is active."""
        client = self.store.find_by_key_hash(key_hash)
        if client is None or client.state != "active" or client.id != client_id:
            raise Unauthenticated("the API key is not valid or has been revoked")
        return client

    def authenticate_login(self, username: str, password: str) -> Client:
        """SMTP AUTH: the username is the client's name and the password its API key."""
        client = self.authenticate(password)
        if not hmac.compare_digest(client.id.encode(), username.encode("utf-8", "surrogateescape")):
            raise Unauthenticated("the username does not match the key")
        return client


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None
