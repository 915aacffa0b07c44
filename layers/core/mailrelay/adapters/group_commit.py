"""Group commit for the delivery queue: concurrent sends share SendMessageBatch calls.

``send()`` keeps its contract: it returns only once *its own* message is on the queue, and raises
StorageError when that entry was not written (whether the whole call failed or only that entry).
What changes is the number of requests: a sender arriving while none is waiting becomes the head
of a group and waits at most ``max_wait`` seconds for others to join; the group is written as soon
as it is full (10 entries, or the batch byte limit) or the wait is over. Several groups can be in
flight at once, so a slow call never holds up the next group.

``expected`` (optional) says how many sends may be on their way (e.g. the bridge's sessions that are
storing a message): once all of them are waiting or in flight, waiting longer cannot fill the group,
so it is written at once; a lone sender then pays no wait at all.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from mailrelay.ports import OutgoingMessage, Queue, StorageError

MAX_ENTRIES = 10  # SendMessageBatch
# SQS limits a batch request's total payload; stay under the classic 256 KiB so any queue accepts it
# (a larger single message is sent alone: the same limit applies to it either way).
MAX_BATCH_BYTES = 256 * 1024 - 4 * 1024


@dataclass(eq=False)
class _Entry:
    message: OutgoingMessage
    size: int
    deadline: float
    enqueued: float
    taken: bool = False
    error: StorageError | None = None
    done: threading.Event = field(default_factory=threading.Event)


class GroupCommitQueue:
    """A ``Queue`` (mailrelay.ports) that groups concurrent ``send`` calls into batches."""

    def __init__(
        self,
        inner: Queue,
        max_wait: float = 0.005,
        *,
        expected: Callable[[], int] | None = None,
        keep_waits: int = 0,
    ) -> None:
        self.inner = inner
        self.max_wait = max_wait
        self.expected = expected
        self._cond = threading.Condition()
        self._pending: deque[_Entry] = deque()
        self._pending_bytes = 0
        self._in_flight = 0  # taken, written, result not yet known
        self.entries = 0
        # Seconds each entry waited for its group before the write began (the bench reads these).
        self.waits: deque[float] = deque(maxlen=keep_waits)

    def send(self, message: OutgoingMessage) -> None:
        now = time.monotonic()
        entry = _Entry(message, len(message.body), now + self.max_wait, now)
        batch: list[_Entry] | None = None
        with self._cond:
            self._pending.append(entry)
            self._pending_bytes += entry.size
            if len(self._pending) > 1:
                self._cond.notify_all()  # the head may now have a full group
            while not entry.taken:
                if self._pending[0] is entry:
                    remaining = entry.deadline - time.monotonic()
                    if remaining <= 0 or self._full() or self._nobody_else_coming():
                        batch = self._take()
                        break
                    self._cond.wait(remaining)
                else:
                    self._cond.wait()
        if batch is not None:
            self._write(batch)
        entry.done.wait()
        if entry.error is not None:
            raise entry.error

    def send_batch(self, messages: list[OutgoingMessage]) -> dict[str, StorageError | None]:
        return self.inner.send_batch(messages)

    # -- inside the lock --------------------------------------------------------------------------

    def _full(self) -> bool:
        return len(self._pending) >= MAX_ENTRIES or self._pending_bytes >= MAX_BATCH_BYTES

    def _nobody_else_coming(self) -> bool:
        return self.expected is not None and len(self._pending) + self._in_flight >= self.expected()

    def _take(self) -> list[_Entry]:
        """The head entry and those behind it that fit one request; the next entry becomes the head."""
        batch = [self._pending.popleft()]
        size = batch[0].size
        while self._pending and len(batch) < MAX_ENTRIES and size + self._pending[0].size <= MAX_BATCH_BYTES:
            entry = self._pending.popleft()
            size += entry.size
            batch.append(entry)
        self._pending_bytes -= size
        now = time.monotonic()
        for entry in batch:
            entry.taken = True
            if self.waits.maxlen:
                self.waits.append(now - entry.enqueued)
        self.entries += len(batch)
        self._in_flight += len(batch)
        self._cond.notify_all()  # those taken stop waiting; a new head starts its clock
        return batch

    # -- outside the lock -------------------------------------------------------------------------

    def _write(self, batch: list[_Entry]) -> None:
        try:
            if len(batch) == 1:
                self.inner.send(batch[0].message)
                outcome: dict[str, StorageError | None] = {batch[0].message.id: None}
            else:
                outcome = self.inner.send_batch([e.message for e in batch])
        except StorageError as exc:
            outcome = {e.message.id: exc for e in batch}
        except Exception as exc:  # never leave a sender waiting forever
            failure = StorageError(f"SQS write failed: {type(exc).__name__}")
            failure.__cause__ = exc
            outcome = {e.message.id: failure for e in batch}
        with self._cond:
            self._in_flight -= len(batch)
            self._cond.notify_all()  # a waiting head may now have everyone it can expect
        for entry in batch:
            entry.error = outcome.get(entry.message.id, StorageError("no answer for entry"))
            entry.done.set()
