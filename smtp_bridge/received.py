"""The Received header the bridge prepends (RFC 5321 §4.4), with RFC 3848 protocol names."""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import format_datetime
from typing import Any

from aiosmtpd.smtp import Session

_UNSAFE = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")


def _clean(value: str | None, limit: int = 255) -> str:
    """HELO names and addresses come from the client: keep only characters a host name can have."""
    return _UNSAFE.sub("", value or "")[:limit] or "unknown"


def received_header(server: Any, session: Session, now: datetime) -> bytes:
    protocol = "ESMTP" if session.extended_smtp else "SMTP"
    if server.is_tls:
        protocol += "S"
    if session.authenticated:
        protocol += "A"
    tls = ""
    ssl_object = server.transport.get_extra_info("ssl_object") if server.transport is not None else None
    if ssl_object is not None:
        cipher = ssl_object.cipher()
        tls = f"\r\n\t(using {_clean(ssl_object.version())} with cipher {_clean(cipher[0] if cipher else None)})"
    line = (
        f"Received: from {_clean(session.host_name)} ([{_clean(server.client_address)}]){tls}\r\n"
        f"\tby {_clean(server.hostname)} (mailrelay) with {protocol};\r\n"
        f"\t{format_datetime(now)}\r\n"
    )
    return line.encode("ascii")
