"""Lambda SnapStart: environments restored from one snapshot each get their own identity, randomness and
connections, and the handlers keep working after a restore (mailrelay.snapstart, simulated in-process)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from bench.snapstart import simulate_restores
from tests.conftest import load_event
from tests.support import LambdaContext


def test_two_restored_environments_share_no_lease_owner_client_session_or_random_state(aws):
    # Given: both handlers initialised as eagerly as possible (worker, clients, an open SMTP session)
    # When: the snapshot is taken and restored twice, as Lambda resumes two environments from it
    checks = simulate_restores()
    # Then: every per-environment resource was made anew in each
    assert [name for name, held in checks.items() if not held] == []
    assert len(checks) == 5


def test_the_api_answers_after_a_restore(aws, client_key):
    import functions.api.app as app
    from mailrelay import snapstart

    event = load_event("api_send_message.json")
    event["headers"]["authorization"] = f"Bearer {client_key}"
    app.operations.cache_clear()
    before = app.operations()
    try:
        snapstart.snapshot()
        snapstart.restore()
        # When: the first request reaches the restored environment
        response = app.lambda_handler(event, LambdaContext())
        # Then: it is served by operations built after the restore
        assert response["statusCode"] == 202, response
        assert app.operations() is not before
    finally:
        app.operations.cache_clear()


def test_in_lambdas_runtime_the_hooks_are_registered_with_it(monkeypatch):
    # Given: Lambda's snapshot_restore_py (present only in the managed runtime)
    registered: dict[str, object] = {}
    runtime = ModuleType("snapshot_restore_py")
    runtime.register_before_snapshot = lambda hook: registered.setdefault("before", hook)  # type: ignore[attr-defined]
    runtime.register_after_restore = lambda hook: registered.setdefault("after", hook)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    # When: the module loads there (a separate copy: the process's own registry stays as it is)
    import mailrelay.snapstart

    spec = importlib.util.spec_from_file_location("snapstart_in_lambda", mailrelay.snapstart.__file__)
    assert spec is not None and spec.loader is not None
    copy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(copy)
    # Then: the runtime calls the same snapshot and restore that the bench and these tests simulate with
    assert registered == {"before": copy.snapshot, "after": copy.restore}


def test_hooks_run_in_the_order_lambda_runs_them(monkeypatch):
    from mailrelay import snapstart

    monkeypatch.setattr(snapstart, "_before_snapshot", [])
    monkeypatch.setattr(snapstart, "_after_restore", [])
    ran: list[str] = []
    for name in ("first", "second"):
        snapstart.before_snapshot(lambda name=name: ran.append(f"snapshot {name}"))
        snapstart.after_restore(lambda name=name: ran.append(f"restore {name}"))
    snapstart.snapshot()
    snapstart.restore()
    # Lambda runs before-snapshot hooks in the reverse order of registration, after-restore hooks in order
    assert ran == ["snapshot second", "snapshot first", "restore first", "restore second"]
