"""Captured messages: the .eml files of the capture server and the simulator, parsed for display."""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

_PARSER = BytesParser(policy=policy.default)
_MAX_FILES = 5000  # newest first; a local folder past this is old mail


@dataclass(frozen=True)
class Part:
    """A leaf of the MIME tree other than the text and HTML bodies: an attachment or inline file."""

    index: int
    filename: str
    content_type: str
    size: int
    content_id: str | None
    inline: bool

    def public_view(self) -> dict[str, Any]:
        return {
            "part": self.index, "filename": self.filename, "content_type": self.content_type, "size": self.size,
            "content_id": self.content_id, "inline": self.inline,
        }  # fmt: skip


@dataclass(frozen=True)
class Captured:
    path: Path
    raw: bytes
    sha256: str
    received_at: datetime
    message: EmailMessage = field(repr=False)

    def header(self, name: str) -> str:
        value = self.message.get(name)
        return "" if value is None else str(value)

    def addresses(self, name: str) -> list[dict[str, str]]:
        found = []
        for value in self.message.get_all(name) or ():
            for address in getattr(value, "addresses", ()):
                found.append({"name": address.display_name, "address": address.addr_spec})
        return found

    def headers(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for name, value in self.message.items():
            grouped.setdefault(name, []).append(str(value))
        return grouped

    def text(self) -> str | None:
        return _content(self.message.get_body(preferencelist=("plain",)))

    def html(self) -> str | None:
        return _content(self.message.get_body(preferencelist=("html",)))

    def parts(self) -> list[Part]:
        return [_describe(index, part) for index, part in self._files()]

    def part_bytes(self, index: int) -> tuple[Part, bytes] | None:
        for number, part in self._files():
            if number == index:
                payload = part.get_payload(decode=True)
                return _describe(number, part), payload if isinstance(payload, bytes) else b""
        return None

    def _files(self) -> list[tuple[int, EmailMessage]]:
        bodies = {id(b) for b in (self.message.get_body(("plain",)), self.message.get_body(("html",))) if b}
        leaves = [p for p in self.message.walk() if not p.is_multipart() and id(p) not in bodies]
        if leaves == [self.message]:  # a single-part message is its own body
            return []
        return list(enumerate(leaves, start=1))


def _content(part: Any) -> str | None:
    if part is None:
        return None
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset or broken encoding: show what there is
        payload = part.get_payload(decode=True) or b""
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
    return content if isinstance(content, str) else None


def _describe(index: int, part: EmailMessage) -> Part:
    payload = part.get_payload(decode=True)
    content_id = part.get("Content-ID")
    return Part(
        index=index,
        filename=part.get_filename() or f"part-{index}",
        content_type=part.get_content_type(),
        size=len(payload) if isinstance(payload, bytes) else 0,
        content_id=str(content_id).strip().strip("<>") if content_id else None,
        inline=part.get_content_disposition() != "attachment",
    )


class Mailbox:
    """The .eml files in some folders, parsed once each (by name, size and modification time)."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = folders
        self._cache: dict[Path, tuple[tuple[int, int], Captured]] = {}
        self._lock = threading.Lock()

    def messages(self) -> list[Captured]:
        files = sorted((p for folder in self.folders for p in _eml_files(folder)), key=_mtime, reverse=True)
        found: list[Captured] = []
        with self._lock:
            for path in files[:_MAX_FILES]:
                captured = self._load(path)
                if captured is not None:
                    found.append(captured)
            for stale in set(self._cache) - set(files):
                del self._cache[stale]
        return found

    def signature(self) -> tuple[tuple[str, int], ...]:
        """Changes whenever a file appears or goes: what live updates compare."""
        return tuple(sorted((p.name, _mtime(p)) for folder in self.folders for p in _eml_files(folder)))

    def clear(self) -> int:
        removed = 0
        for folder in self.folders:
            for path in _eml_files(folder):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _load(self, path: Path) -> Captured | None:
        try:
            stat = path.stat()
            key = (stat.st_size, stat.st_mtime_ns)
            cached = self._cache.get(path)
            if cached and cached[0] == key:
                return cached[1]
            raw = path.read_bytes()
        except OSError:  # removed meanwhile
            return None
        message = _PARSER.parsebytes(raw)
        assert isinstance(message, EmailMessage)
        received = datetime.fromtimestamp(stat.st_mtime, UTC)
        captured = Captured(path, raw, hashlib.sha256(raw).hexdigest(), received, message)
        self._cache[path] = (key, captured)
        return captured


_EML = re.compile(r"^[^.].*\.eml$")  # not the writers' ".name.tmp" files


def _eml_files(folder: Path) -> list[Path]:
    try:
        return [p for p in folder.iterdir() if _EML.match(p.name)]
    except OSError:
        return []


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0
