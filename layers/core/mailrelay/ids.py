"""Message ids: time-ordered, unguessable, safe in a Message-ID header and an S3 key."""

from __future__ import annotations

import re
import secrets
import time

_ID = re.compile(r"^[0-9a-f]{32}$")


def new_message_id() -> str:
    return f"{int(time.time() * 1000):012x}{secrets.token_hex(10)}"


def is_message_id(value: str) -> bool:
    return bool(_ID.match(value))


def message_id_header(message_id: str, domain: str) -> str:
    return f"<{message_id}@{domain}>"
