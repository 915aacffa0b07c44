"""Shared boto3 plumbing: lazy clients and one translation of AWS failures.

boto3 and botocore are imported on first use, not at import: a Lambda cold start that never
reaches AWS (a refused request) does not pay for them, and the rest pay once, later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from mailrelay.ports import StorageError

if TYPE_CHECKING:
    from botocore.config import Config

# Fail fast: an entry point answers 503/451 and the sender retries, rather than hang the caller.
# Client-side parameter validation is off: it walks every nested attribute of every request (a fifth
# of the delivery worker's CPU per message, measured by make bench); AWS validates the request anyway,
# and its ValidationException becomes a StorageError like any other failed call.
BOTO_CONFIG_OPTIONS: dict[str, Any] = {
    "connect_timeout": 3,
    "read_timeout": 10,
    "retries": {"max_attempts": 3, "mode": "standard"},
    "parameter_validation": False,
}


@cache
def boto_config() -> Config:
    from botocore.config import Config

    return Config(**BOTO_CONFIG_OPTIONS)


@contextmanager
def aws_call(what: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        if _is_aws_error(exc):
            raise StorageError(f"{what} failed: {type(exc).__name__}") from exc
        raise


def _is_aws_error(exc: Exception) -> bool:
    # botocore is loaded by then whenever the error came from a client call.
    from botocore.exceptions import BotoCoreError, ClientError

    return isinstance(exc, ClientError | BotoCoreError)


class LazyClient:
    """Creates the boto3 client on first use, so importing a module costs nothing."""

    def __init__(self, service: str, client: Any | None = None, **options: Any) -> None:
        self._service = service
        self._client = client
        self._options = options  # botocore Config options on top of BOTO_CONFIG_OPTIONS

    def get(self) -> Any:
        if self._client is None:
            import boto3
            from botocore.config import Config

            config = boto_config().merge(Config(**self._options)) if self._options else boto_config()
            self._client = boto3.session.Session().client(self._service, config=config)  # type: ignore[call-overload]
        return self._client


def preload() -> None:
    """Import the SDK now: before a SnapStart snapshot, so that restored environments do not pay for it.
    Clients are still made after the restore (they hold credentials and connections)."""
    import importlib

    for module in ("boto3", "boto3.dynamodb.types", "botocore.config", "botocore.exceptions"):
        importlib.import_module(module)


def lazy(service: str, client: Any | None, **options: Any) -> Callable[[], Any]:
    return LazyClient(service, client, **options).get
