"""The SnapStart-safety check: environments restored from one snapshot share nothing that must be their own.

In-process, with the real handlers (functions.api.app, functions.deliver.app): init runs and goes further
than Lambda's would (the delivery worker and the API's operations are built, their AWS clients made, an
SMTP session opened to a loopback sink), then the before-snapshot hooks run, then the after-restore hooks
run twice, as in two environments restored from that snapshot (mailrelay.snapstart.restore is what
Lambda's runtime calls). ``python -m bench --case snapstart`` prints the result;
tests/integration/test_snapstart.py asserts the same check.
"""

from __future__ import annotations

import json
import os
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.table import Row


class _Sink:
    def __init__(self) -> None:
        self.quits = 0

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        self.quits += 1
        return "221 Bye"


@contextmanager
def _delivery_to_a_sink() -> Iterator[_Sink]:
    """MAILRELAY_UPSTREAMS names a loopback sink while the check runs; the cached configuration is reread."""
    from aiosmtpd.controller import Controller

    from bench.peers import free_port
    from mailrelay.delivery.settings import get_delivery_settings

    sink = _Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    before = os.environ.get("MAILRELAY_UPSTREAMS")
    upstream = {"name": "sink", "host": "127.0.0.1", "port": controller.port, "insecure_plaintext": True}
    os.environ["MAILRELAY_UPSTREAMS"] = json.dumps([upstream])
    get_delivery_settings.cache_clear()
    try:
        yield sink
    finally:
        controller.stop()
        if before is None:
            os.environ.pop("MAILRELAY_UPSTREAMS", None)
        else:
            os.environ["MAILRELAY_UPSTREAMS"] = before
        get_delivery_settings.cache_clear()


def _aws_client(store: Any) -> Any:
    return store._client()  # the adapter's lazily made boto3 client


def simulate_restores() -> dict[str, bool]:
    """Each check, by what it protects, and whether it held."""
    import functions.api.app as api
    import functions.deliver.app as deliver
    from mailrelay import snapstart
    from mailrelay.delivery.deadline import Deadline

    with _delivery_to_a_sink() as sink:
        deliver.worker.cache_clear()
        api.operations.cache_clear()
        # -- init, as eager as it could be --------------------------------------------------------------
        first = deliver.worker()
        upstream = first.upstreams[0]
        session = first.pool.session(upstream, Deadline.unlimited())
        first_client = _aws_client(first.statuses)
        first_operations = api.operations()
        snapstart.snapshot()
        closed_before_snapshot = sink.quits == 1
        random_state = random.getstate()
        # -- two environments restored from that snapshot --------------------------------------------------
        environments = []
        for _ in range(2):
            random.setstate(random_state)
            snapstart.restore()
            worker = deliver.worker()
            environments.append({
                "worker": worker, "owner": worker.owner, "client": _aws_client(worker.statuses),
                "session": worker.pool.session(upstream, Deadline.unlimited()),
                "operations": api.operations(), "random": random.random(),
            })  # fmt: skip
        for env in environments:
            env["worker"].pool.close_all()
        deliver.worker.cache_clear()
        api.operations.cache_clear()
    a, b = environments
    owners = {first.owner, a["owner"], b["owner"]}
    sessions = {id(session), id(a["session"]), id(b["session"])}
    return {
        "each environment has its own delivery lease owner": len(owners) == 3,
        "SMTP sessions are closed before the snapshot and opened anew": closed_before_snapshot and len(sessions) == 3,
        "AWS clients are made after the restore": first_client is not a["client"] and a["client"] is not b["client"],
        "the API's operations (and their clients) are built after the restore": (
            first_operations is not a["operations"] and a["operations"] is not b["operations"]
        ),
        "random numbers differ between environments": a["random"] != b["random"],
    }


def snapstart_check(cfg: Any) -> list[Row]:
    """The check in a fresh interpreter with the bench's environment (no AWS is called)."""
    from bench.cases import _python

    checks: dict[str, bool] = _python("-m", "bench.snapstart")["checks"]
    cfg.log("  snapstart: " + ", ".join(f"{name}: {'ok' if ok else 'FAILED'}" for name, ok in checks.items()))
    passed = sum(checks.values())
    failed = [name for name, ok in checks.items() if not ok]
    return [Row("7 snapstart", f"SnapStart-safety check: {'pass' if not failed else 'FAIL'}", [float(passed)],
                "checks", [float(len(checks))], "checks", ">= 1.0x",
                note="two simulated restores of one snapshot; " + ("failed: " + "; ".join(failed) if failed
                                                                     else "; ".join(checks)))]  # fmt: skip


def main() -> int:
    from bench.workers import _env

    _env()
    print(json.dumps({"checks": simulate_restores()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
