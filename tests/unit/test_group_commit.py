"""Group commit: concurrent sends share SendMessageBatch calls; each send still answers for its own entry."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from mailrelay.adapters.group_commit import MAX_BATCH_BYTES, GroupCommitQueue
from mailrelay.ports import OutgoingMessage, StorageError


class Recorder:
    def __init__(self, fail_ids: set[str] = frozenset(), fail_all: bool = False, delay: float = 0.0) -> None:
        self.calls: list[list[str]] = []
        self.fail_ids = fail_ids
        self.fail_all = fail_all
        self.delay = delay
        self.lock = threading.Lock()

    def send(self, message: OutgoingMessage) -> None:
        self.send_batch([message])
        if message.id in self.fail_ids:
            raise StorageError("entry failed")

    def send_batch(self, messages: list[OutgoingMessage]) -> dict[str, StorageError | None]:
        time.sleep(self.delay)
        with self.lock:
            self.calls.append([m.id for m in messages])
        if self.fail_all:
            raise StorageError("SQS SendMessageBatch failed: ClientError")
        return {m.id: StorageError("entry failed") if m.id in self.fail_ids else None for m in messages}


def msg(i: int, size: int = 10) -> OutgoingMessage:
    return OutgoingMessage(id=f"m{i}", body="x" * size)


def send_all(queue: GroupCommitQueue, messages: list[OutgoingMessage]) -> dict[str, Exception | None]:
    def one(m: OutgoingMessage) -> Exception | None:
        try:
            queue.send(m)
        except StorageError as exc:
            return exc
        return None

    with ThreadPoolExecutor(len(messages)) as pool:
        return dict(zip((m.id for m in messages), pool.map(one, messages), strict=True))


def test_concurrent_sends_share_batches_and_each_returns_after_its_entry_is_written() -> None:
    inner = Recorder(delay=0.01)
    queue = GroupCommitQueue(inner, max_wait=0.05)
    outcome = send_all(queue, [msg(i) for i in range(20)])
    assert all(v is None for v in outcome.values())
    assert sorted(i for call in inner.calls for i in call) == sorted(f"m{i}" for i in range(20))
    assert len(inner.calls) < 20
    assert all(len(call) <= 10 for call in inner.calls)


def test_a_failed_entry_fails_only_its_own_send() -> None:
    inner = Recorder(fail_ids={"m3"})
    queue = GroupCommitQueue(inner, max_wait=0.05)
    outcome = send_all(queue, [msg(i) for i in range(8)])
    assert isinstance(outcome["m3"], StorageError)
    assert [k for k, v in outcome.items() if v is not None] == ["m3"]


def test_a_failed_request_fails_every_send_in_it() -> None:
    queue = GroupCommitQueue(Recorder(fail_all=True), max_wait=0.05)
    outcome = send_all(queue, [msg(i) for i in range(5)])
    assert all(isinstance(v, StorageError) for v in outcome.values())


def test_an_unexpected_error_is_a_storage_error_and_nobody_hangs() -> None:
    class Broken(Recorder):
        def send_batch(self, messages: list[OutgoingMessage]) -> dict[str, StorageError | None]:
            raise RuntimeError("bug")

    queue = GroupCommitQueue(Broken(), max_wait=0.01)
    outcome = send_all(queue, [msg(i) for i in range(3)])
    assert all(isinstance(v, StorageError) for v in outcome.values())


def test_a_lone_sender_does_not_wait_when_nobody_else_is_expected() -> None:
    inner = Recorder()
    queue = GroupCommitQueue(inner, max_wait=1.0, expected=lambda: 1)
    start = time.monotonic()
    queue.send(msg(1))
    assert time.monotonic() - start < 0.5
    assert inner.calls == [["m1"]]


def test_the_wait_is_bounded() -> None:
    queue = GroupCommitQueue(Recorder(), max_wait=0.05)
    start = time.monotonic()
    queue.send(msg(1))
    assert 0.04 <= time.monotonic() - start < 1.0


@pytest.mark.parametrize("size", [MAX_BATCH_BYTES // 3, MAX_BATCH_BYTES + 1])
def test_batches_stay_under_the_request_size_limit(size: int) -> None:
    inner = Recorder()
    queue = GroupCommitQueue(inner, max_wait=0.05)
    outcome = send_all(queue, [msg(i, size) for i in range(6)])
    assert all(v is None for v in outcome.values())
    for call in inner.calls:
        assert len(call) == 1 or len(call) * size <= MAX_BATCH_BYTES
