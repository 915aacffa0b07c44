"""Lambda SnapStart: what each execution environment restored from one snapshot must make its own.

With SnapStart (template parameter ``SnapStart=enabled``) Lambda runs a function's init once, when a
version is published, snapshots the memory, and resumes every new execution environment from that
snapshot (https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html). Whatever init left in memory is
then shared by all of them: ids meant to be unique, seeded random state, open connections
(https://docs.aws.amazon.com/lambda/latest/dg/snapstart-uniqueness.html).

The entry points register here what to prepare before the snapshot and what to rebuild after a restore.
Lambda's Python runtime calls ``snapshot`` and ``restore`` through its ``snapshot_restore_py`` hooks
(https://docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-python.html); that library exists
only in the managed runtime, so elsewhere (tests, the bench) calling ``restore()`` simulates a restore
with the very same hooks. After-restore hooks must finish within Lambda's 10-second restore limit.
"""

from __future__ import annotations

import random
from collections.abc import Callable

Hook = Callable[[], None]

_before_snapshot: list[Hook] = []
_after_restore: list[Hook] = []


def before_snapshot(hook: Hook) -> Hook:
    """Run ``hook`` just before the snapshot is taken (warm what every environment will need)."""
    _before_snapshot.append(hook)
    return hook


def after_restore(hook: Hook) -> Hook:
    """Run ``hook`` in each restored environment, before its first invocation."""
    _after_restore.append(hook)
    return hook


def snapshot() -> None:
    for hook in reversed(_before_snapshot):  # the runtime's order: the reverse of registration
        hook()


def restore() -> None:
    # The random module was seeded once, at import: every restored environment would draw the same
    # numbers (botocore's retry jitter among them). secrets/uuid4 read the kernel's pool on each call.
    random.seed()
    for hook in _after_restore:
        hook()


def _register_with_runtime() -> None:
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:  # not in Lambda's managed runtime
        return
    register_before_snapshot(snapshot)
    register_after_restore(restore)


_register_with_runtime()
