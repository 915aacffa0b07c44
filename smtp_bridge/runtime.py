"""What one bridge process shares between its sessions: ``SessionRuntime`` is what a session may use of
it; ``Runtime`` is the process's own wiring (the storage thread pool, the grouped queue writes) behind it."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import ssl
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TypeVar, cast

from mailrelay.clients import ClientService
from mailrelay.ports import Queue
from mailrelay.settings import Settings
from mailrelay.submission import SubmissionService
from mailrelay.wiring import Services
from smtp_bridge.access import AuthThrottle, ConnectionCaps
from smtp_bridge.budget import InflightBudget, derived_limit
from smtp_bridge.observability import Metrics, metrics
from smtp_bridge.settings import BridgeSettings

if TYPE_CHECKING:
    from smtp_bridge.protocol import BridgeSMTP

T = TypeVar("T")

# Room for the Received, Message-ID and Date headers we add: SIZE advertises what the core will still accept.
ADDED_HEADERS_ROOM = 2048


class SessionRuntime(Protocol):
    """What a session (BridgeSMTP and its handler's hooks) uses of the process it runs in."""

    settings: BridgeSettings
    core: Settings
    metrics: Metrics
    tls_context: ssl.SSLContext | None
    caps: ConnectionCaps
    throttle: AuthThrottle
    budget: InflightBudget
    sessions: set[BridgeSMTP]
    draining: bool
    transactions: int  # sessions inside a transaction: the group commit waits for no more writers

    @property
    def clients(self) -> ClientService: ...
    @property
    def submissions(self) -> SubmissionService: ...
    @property
    def size_limit(self) -> int: ...
    def new_spool(self) -> BinaryIO: ...
    async def run_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...


@dataclass
class Runtime:
    settings: BridgeSettings
    core: Settings
    services: Services
    tls_context: ssl.SSLContext | None
    metrics: Metrics = metrics
    sessions: set[BridgeSMTP] = field(default_factory=set)
    draining: bool = False
    # Sessions between an accepted MAIL and the end of that transaction: the group commit waits for
    # no more queue writes than these (a lone session's message is written at once).
    transactions: int = 0
    caps: ConnectionCaps = field(init=False)
    throttle: AuthThrottle = field(init=False)
    budget: InflightBudget = field(init=False)
    executor: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.caps = ConnectionCaps(self.settings.max_connections, self.settings.max_connections_per_client)
        self.throttle = AuthThrottle(self.settings.auth_failure_limit, self.settings.auth_failure_window_seconds)
        self.spool_dir = self.settings.spool_dir or tempfile.gettempdir()
        limit = self.settings.inflight_bytes or derived_limit(self.spool_dir, self.settings.workers)
        self.budget = InflightBudget(limit)
        # boto3 is blocking: storage calls run here, so a slow AWS call never stalls other sessions.
        self.executor = ThreadPoolExecutor(self.settings.storage_threads, thread_name_prefix="bridge-storage")
        # The same adapters, with the queue writes of concurrent sessions grouped (built in mailrelay.wiring).
        self.services = dataclasses.replace(
            self.services, group_commit_wait=self.settings.group_commit_ms / 1000, expected_writers=self._open
        )

    def _open(self) -> int:
        return self.transactions

    @property
    def queue(self) -> Queue:
        return self.services.queue

    @property
    def submissions(self) -> SubmissionService:
        return self.services.submissions

    @property
    def clients(self) -> ClientService:
        return self.services.clients

    @property
    def size_limit(self) -> int:
        return max(1024, self.core.max_message_bytes - ADDED_HEADERS_ROOM)

    def new_spool(self) -> BinaryIO:
        """Where one message's DATA goes: memory up to a small size, then an unlinked temporary file."""
        spool = tempfile.SpooledTemporaryFile(max_size=self.settings.spool_memory_bytes, dir=self.spool_dir)  # noqa: SIM115
        return cast(BinaryIO, spool)

    async def run_blocking(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=False)
