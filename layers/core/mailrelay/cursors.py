"""Opaque page cursors signed with a key derived from the caller's API key: an edited cursor, or one
issued to another key or for other filters, reads as None (the caller answers 422)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any


def cursor_key(purpose: str, api_key: str) -> bytes:
    """One key per listing and API key: a cursor of one listing is never valid for another."""
    return hashlib.sha256(f"mailrelay {purpose} cursor\0".encode() + api_key.encode()).digest()


def _signature(payload: bytes, key: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.digest(key, payload, "sha256")[:16]).decode().rstrip("=")


def sign_cursor(data: dict[str, Any], key: bytes) -> str:
    payload = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=") + "." + _signature(payload, key)


def read_signed_cursor(cursor: str, key: bytes) -> dict[str, Any] | None:
    """The cursor's data, or None when it is not one we signed with ``key``."""
    encoded, _, signature = cursor.partition(".")
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        if not hmac.compare_digest(signature, _signature(payload, key)):
            return None
        data: Any = json.loads(payload)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None
