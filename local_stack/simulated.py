"""The delivery simulator in the local stack: added to the upstreams unless one is configured already."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The local stack retries on a short schedule, so a deferred message is retried within seconds.
LOCAL_RETRY_SCHEDULE = {"MAILRELAY_RETRY_BASE_SECONDS": "2", "MAILRELAY_RETRY_MAX_SECONDS": "60"}


def with_simulator(upstreams_json: str, copy_to: Path) -> tuple[str, str | None]:
    """The upstream list with a simulator in it, and the simulator's domain (None: the list is not JSON
    we can read, and it stays as it is for delivery to report)."""
    from mailrelay.delivery.upstreams import SIMULATOR_DOMAIN

    try:
        upstreams: list[dict[str, Any]] = json.loads(upstreams_json)
    except ValueError:
        return upstreams_json, None
    if not isinstance(upstreams, list) or not all(isinstance(u, dict) for u in upstreams):
        return upstreams_json, None
    existing = next((u for u in upstreams if u.get("type") == "simulator"), None)
    if existing is not None:
        return upstreams_json, str(existing.get("domain", SIMULATOR_DOMAIN)).lower()
    simulator = {"type": "simulator", "name": "simulator", "copy_to": str(copy_to)}
    return json.dumps([simulator, *upstreams]), SIMULATOR_DOMAIN
