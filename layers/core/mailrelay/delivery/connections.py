"""Open SMTP sessions, one per upstream, reused across the messages of a batch and across warm
invocations while they are alive; sessions idle too long are closed rather than kept."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from mailrelay.delivery.deadline import Deadline
from mailrelay.delivery.smtp_session import SmtpTimeouts, UpstreamSession
from mailrelay.delivery.upstreams import Upstream

logger = logging.getLogger(__name__)

Opener = Callable[[Upstream, Deadline], UpstreamSession]


class SessionPool:
    def __init__(
        self, opener: Opener, timeouts: SmtpTimeouts, max_idle: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._open = opener
        self._timeouts = timeouts
        self._max_idle = max_idle
        self._clock = clock
        self._sessions: dict[str, UpstreamSession] = {}
        self._checked: set[str] = set()  # sessions known alive in this batch

    def begin_batch(self) -> None:
        """Close sessions idle for too long; the others get a NOOP before their first use."""
        now = self._clock()
        for name, session in list(self._sessions.items()):
            if now - session.last_used > self._max_idle:
                self.discard(name)
        self._checked.clear()

    def session(self, upstream: Upstream, deadline: Deadline) -> UpstreamSession:
        current = self._sessions.get(upstream.name)
        if current is not None:
            fresh_batch = upstream.name not in self._checked
            if not current.broken and current.check(deadline, self._timeouts, reset=not fresh_batch):
                self._checked.add(upstream.name)
                return current
            self.discard(upstream.name)
        session = self._open(upstream, deadline)
        self._sessions[upstream.name] = session
        self._checked.add(upstream.name)
        tls = "none (insecure_plaintext)" if upstream.insecure_plaintext else upstream.tls
        logger.info("connected to upstream", extra={"upstream": upstream.name, "tls": tls})
        return session

    def release(self, session: UpstreamSession) -> None:
        """After a transaction: a session left in an unknown state is not reused."""
        if session.broken:
            self.discard(session.upstream.name)

    def discard(self, name: str) -> None:
        session = self._sessions.pop(name, None)
        self._checked.discard(name)
        if session is not None:
            session.close()

    def close_all(self) -> None:
        for name in list(self._sessions):
            self.discard(name)
