"""Shared boto3 plumbing: lazy clients and one translation of AWS failures."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

# Fail fast: an entry point answers 503/451 and the sender retries, rather than hang the caller.
BOTO_CONFIG = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})


class StorageError(Exception):
    """An AWS call failed (throttled, unreachable, denied): the operation did not happen."""


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise StorageError(f"{what} failed: {type(exc).__name__}") from exc


class LazyClient:
    """Creates the boto3 client on first use, so importing a module costs nothing."""

    def __init__(self, service: str, client: Any | None = None) -> None:
        self._service = service
        self._client = client

    def get(self) -> Any:
        if self._client is None:
            import boto3

            self._client = boto3.session.Session().client(self._service, config=BOTO_CONFIG)  # type: ignore[call-overload]
        return self._client


def lazy(service: str, client: Any | None) -> Callable[[], Any]:
    return LazyClient(service, client).get
