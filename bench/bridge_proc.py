"""The real bridge (``smtp_bridge.server.serve``, workers and all) with the fake AWS clients behind it.

Run as ``python -m bench.bridge_proc STATS_DIR``; configured by the usual MAILRELAY_* variables. Each
process that served writes ``STATS_DIR/<pid>.json`` (request counts, group-commit waits) when it stops.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from bench.fakes import BENCH_ENV, fake_clients


def main() -> int:
    stats_dir = Path(sys.argv[1])
    for key, value in BENCH_ENV.items():
        os.environ.setdefault(key, value)

    from collections import deque

    from mailrelay.adapters.group_commit import GroupCommitQueue
    from smtp_bridge import server
    from smtp_bridge.runtime import Runtime

    real_services = server.Services
    real_close = server.Bridge.close
    calls_by_pid: dict[int, Any] = {}

    def services(core: Any) -> Any:
        calls, sqs, s3, dynamodb = fake_clients()
        calls_by_pid[os.getpid()] = calls
        return real_services(core, sqs=sqs, s3=s3, dynamodb=dynamodb)

    async def close(self: server.Bridge) -> None:
        await real_close(self)
        runtime: Runtime = self.runtime
        calls = calls_by_pid.get(os.getpid())
        queue = runtime.queue
        waits = list(queue.waits) if isinstance(queue, GroupCommitQueue) else []
        stats = {"calls": dict(calls.counts) if calls else {}, "waits": waits,
                 "accepted": runtime.metrics.snapshot().get("messages_accepted", 0),
                 "queue": type(queue).__name__}  # fmt: skip
        (stats_dir / f"{os.getpid()}.json").write_text(json.dumps(stats))

    real_post_init = Runtime.__post_init__

    def post_init(self: Runtime) -> None:
        real_post_init(self)
        if isinstance(self.queue, GroupCommitQueue):
            self.queue.waits = deque(maxlen=500_000)

    Runtime.__post_init__ = post_init  # type: ignore[method-assign]
    server.Services = services  # type: ignore[assignment,misc]
    server.Bridge.close = close  # type: ignore[method-assign]
    return server.main([])


if __name__ == "__main__":
    sys.exit(main())
