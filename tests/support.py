"""Helpers every suite shares: a free loopback port, waiting for a condition, and the Lambda context the
handlers are called with."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """The first truthy value of ``predicate()``, polled; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class LambdaContext:
    """What a handler reads of Lambda's context; the time left stays as given (tests decide deadlines)."""

    remaining_ms: int = 25_000
    function_name: str = "mailrelay"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:mailrelay"
    aws_request_id: str = "6c1f0b0e-0000-4000-8000-000000000001"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
