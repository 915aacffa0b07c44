"""The local upstream: an aiosmtpd server (STARTTLS) that stores each delivered message as a .eml file."""

from __future__ import annotations

import hashlib
import ssl
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class CaptureHandler:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{hashlib.sha256(data).hexdigest()[:12]}.eml"
        tmp = self.folder / f".{name}.tmp"
        tmp.write_bytes(data)
        tmp.replace(self.folder / name)  # atomic: a reader never sees half a message
        return "250 2.0.0 captured as " + name


class CaptureServer:
    def __init__(self, folder: Path, host: str, port: int, tls: ssl.SSLContext) -> None:
        self.handler = CaptureHandler(folder)
        self.controller = Controller(
            self.handler, hostname=host, port=port, tls_context=tls, require_starttls=True,
            decode_data=False, data_size_limit=50_000_000, ready_timeout=10,
        )  # fmt: skip

    @property
    def port(self) -> int:
        port: int = self.controller.port
        return port

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
