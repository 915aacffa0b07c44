"""A message arriving line by line (SMTP DATA), checked and put in canonical form as it comes.

The header section is kept in memory (it is bounded, and policy reads it); the body goes to a
spool file as it arrives, so a message's memory cost does not grow with its size. The first
problem found is kept and the rest of the message is only counted: the client is answered once,
after its final dot, and nothing of a refused message is stored.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from mailrelay.canonical import MAX_LINE_OCTETS, BareNewlinePolicy, canonical_lines
from mailrelay.errors import InvalidRequest, LineTooLong, MailrelayError, MessageTooLarge
from mailrelay.message_data import MessageData
from mailrelay.message_headers import MAX_HEADER_SECTION_OCTETS

# The header section with its blank line may hold this much; past it read_headers refuses the message.
_HEAD_LIMIT = MAX_HEADER_SECTION_OCTETS + 4


class IncomingMessage:
    def __init__(
        self, spool: BinaryIO, *, max_bytes: int, bare_newlines: BareNewlinePolicy, field: str = "message"
    ) -> None:
        self._spool = spool
        self._max_bytes = max_bytes
        self._bare_newlines = bare_newlines
        self._field = field
        self._head: list[bytes] = []
        self._head_size = 0
        self._in_body = False
        self.size = 0  # canonical octets so far (counted on after a problem)
        self.error: MailrelayError | None = None

    def add_line(self, line: bytes) -> None:
        """One line as received, ending with CRLF, dot-stuffing already removed."""
        if self.error is not None:
            self.size += len(line)
            return
        try:
            for canonical in canonical_lines(line, bare_newlines=self._bare_newlines, field=self._field):
                self._store(canonical)
        except InvalidRequest as exc:
            self.fail(exc)

    def line_too_long(self) -> None:
        """A line the reader could not hold (it is drained, never stored)."""
        self.fail(LineTooLong.at(self._field, f"a line is longer than {MAX_LINE_OCTETS} octets"))

    def fail(self, error: MailrelayError) -> None:
        if self.error is None:
            self.error = error
            self._head.clear()
            self._spool.truncate(0)

    def _store(self, line: bytes) -> None:
        self.size += len(line)
        if self.size > self._max_bytes:
            self.fail(MessageTooLarge(self.size, self._max_bytes))
            return
        if self._in_body:
            self._spool.write(line)
            return
        self._head.append(line)
        self._head_size += len(line)
        # The head ends at the blank line, or at the cap (read_headers then refuses the message).
        self._in_body = line == b"\r\n" or self._head_size > _HEAD_LIMIT

    def finish(self) -> MessageData:
        """The message as received; raise the first problem found instead."""
        if isinstance(self.error, MessageTooLarge):
            raise MessageTooLarge(self.size, self._max_bytes)  # the size as received, not where it stopped
        if self.error is not None:
            raise self.error
        head = b"".join(self._head)
        self._head.clear()
        self._spool.flush()
        return MessageData(head, self._spool, self.size - len(head))


def whole_message(data: bytes, *, bare_newlines: BareNewlinePolicy, max_bytes: int) -> MessageData:
    """A message given at once, through the same checks as one received line by line (in memory)."""
    incoming = IncomingMessage(io.BytesIO(), max_bytes=max_bytes, bare_newlines=bare_newlines)
    lines = data.split(b"\r\n")
    last = lines.pop()
    for line in lines:
        incoming.add_line(line + b"\r\n")
    if last:
        incoming.add_line(last + b"\r\n")
    return incoming.finish()
