"""Client credentials: API keys for HTTP, the same key as the SMTP AUTH password."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from mailrelay.addresses import normalise_allow_entry
from mailrelay.errors import InvalidRequest, Unauthenticated
from mailrelay.models.client import Client
from mailrelay.ports import ClientStore

KEY_PREFIX = "mr_"


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # Keys carry 256 bits of randomness, so a fast hash is enough; a slow KDF would only slow auth.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


class ClientService:
    def __init__(self, store: ClientStore) -> None:
        self.store = store

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
        client = self.store.find_by_key_hash(hash_key(key))
        if client is None or client.state != "active":
            raise Unauthenticated("the API key is not valid or has been revoked")
        return client

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
