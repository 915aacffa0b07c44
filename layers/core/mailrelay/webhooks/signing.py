"""Standard Webhooks signatures (https://www.standardwebhooks.com/, "Signature scheme"), so that any
language's verifier works unchanged.

- headers ``webhook-id`` (the event id: a retry or a replay carries the same one), ``webhook-timestamp``
  (Unix seconds of this attempt), ``webhook-signature``;
- a signature is ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``; several are space-separated
  (both the new and the old secret sign during a rotation);
- a secret is ``whsec_<base64 of 24-64 random bytes>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"  # noqa: S105 - the scheme's prefix, not a secret
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode("ascii")


def signed_headers(secrets_in_use: list[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, message_id, timestamp, body) for s in secrets_in_use),
    }
