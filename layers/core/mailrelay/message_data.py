"""A message's bytes: whole in memory, or a head in memory and a body in a spool file.

The SMTP bridge streams DATA to a spool, so a message costs a bounded buffer, not its size; the
core reads such a message in chunks (hash, upload) and whole only when it is small enough to be
queued inline.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from typing import BinaryIO

CHUNK_OCTETS = 1024 * 1024


class MessageData:
    """``head`` (the added and the sender's header lines) followed by ``body_size`` octets of ``body``."""

    __slots__ = ("_sha256", "body", "body_size", "head")

    def __init__(self, head: bytes, body: BinaryIO | None = None, body_size: int = 0) -> None:
        self.head = head
        self.body = body
        self.body_size = body_size if body is not None else 0
        self._sha256: str | None = None

    @property
    def size(self) -> int:
        return len(self.head) + self.body_size

    def with_head(self, head: bytes) -> MessageData:
        return MessageData(head, self.body, self.body_size)

    def chunks(self, size: int = CHUNK_OCTETS) -> Iterator[bytes]:
        if self.head:
            yield self.head
        if self.body is None:
            return
        self.body.seek(0)
        left = self.body_size
        while left > 0:
            chunk = self.body.read(min(size, left))
            if not chunk:
                raise OSError(f"the spooled body ended {left} octets early")
            left -= len(chunk)
            yield chunk

    def read(self) -> bytes:
        """The whole message in memory: for small messages only (those queued inline)."""
        return self.head if self.body is None else b"".join(self.chunks())

    def sha256(self) -> str:
        if self._sha256 is None:
            hasher = hashlib.sha256()
            for chunk in self.chunks():
                hasher.update(chunk)
            self._sha256 = hasher.hexdigest()
        return self._sha256

    def open(self) -> BinaryIO:
        """A seekable reader over the whole message, for uploads that stream a file body."""
        if self.body is None:
            return io.BytesIO(self.head)
        return io.BufferedReader(_Joined(self))

    def close(self) -> None:
        """Release the spool (a spooled temporary file is deleted when closed)."""
        if self.body is not None:
            self.body.close()


class _Joined(io.RawIOBase):
    """The head then the body's first ``body_size`` octets, as one seekable raw stream."""

    def __init__(self, data: MessageData) -> None:
        assert data.body is not None
        self._head = data.head
        self._body = data.body
        self._size = data.size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        want = min(len(view), self._size - self._pos)
        if want <= 0:
            return 0
        head = len(self._head)
        if self._pos < head:
            n = min(want, head - self._pos)
            view[:n] = self._head[self._pos : self._pos + n]
        else:
            self._body.seek(self._pos - head)
            n = self._body.readinto(view[:want])  # type: ignore[attr-defined]
            if not n:
                raise OSError("the spooled body ended early")
        self._pos += n
        return n
