"""AWS faults at the botocore level, for every client in the process.

We wrap ``botocore.client.BaseClient._make_api_call`` rather than registering ``before-call``
handlers on a session: the handlers, the bridge and the poller each make their own
``boto3.session.Session()`` (see ``mailrelay.adapters.aws.LazyClient``), some before the injector is
installed, and an event registered on ``boto3.DEFAULT_SESSION`` would miss all of them. The class
attribute covers every client, whenever and however it was created.

Two kinds of fault, half each: ``before`` (the request is never sent: throttling, 5xx, connection
refused) and ``after`` (the call happened at AWS but its response is lost, e.g. a read timeout),
the second being what exposes "written but told it failed" paths. The exception is the ClientError
botocore itself would raise after its retries were exhausted.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.client import BaseClient
from botocore.exceptions import ClientError

logger = logging.getLogger("ledger.faults")

_ERRORS = {
    "sqs": [("ServiceUnavailable", 503), ("ThrottlingException", 400), ("InternalError", 500)],
    "s3": [("SlowDown", 503), ("InternalError", 500), ("ServiceUnavailable", 503)],
    "dynamodb": [("ProvisionedThroughputExceededException", 400), ("InternalServerError", 500),
                 ("ThrottlingException", 400)],
}  # fmt: skip


class AwsFaults:
    def __init__(self, rng: random.Random, rates: dict[str, float]) -> None:
        self.rng = rng
        self.rates = rates  # service name -> probability per call
        self.enabled = False
        self.injected: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._local = threading.local()
        self._original: Any = None
        self._lock = threading.Lock()

    def install(self) -> None:
        original = BaseClient._make_api_call
        faults = self

        def _make_api_call(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            service = client.meta.service_model.service_name
            mode = faults._decide(service, operation_name)
            if mode == "before":
                raise faults._error(service, operation_name)
            result = original(client, operation_name, api_params)
            if mode == "after":
                raise faults._error(service, operation_name)
            return result

        self._original = original
        BaseClient._make_api_call = _make_api_call  # type: ignore[method-assign]

    def uninstall(self) -> None:
        if self._original is not None:
            BaseClient._make_api_call = self._original  # type: ignore[method-assign]
            self._original = None

    @contextmanager
    def exempt(self) -> Iterator[None]:
        """Calls from this thread (the ledger's own reads) are never faulted."""
        self._local.exempt = True
        try:
            yield
        finally:
            self._local.exempt = False

    def _decide(self, service: str, operation: str) -> str | None:
        rate = self.rates.get(service)
        if rate is None or not self.enabled or getattr(self._local, "exempt", False):
            return None
        with self._lock:
            self.calls[service] += 1
            if self.rng.random() >= rate:
                return None
            mode = "before" if self.rng.random() < 0.5 else "after"
            self.injected[f"{service}:{mode}"] += 1
            self.injected[f"{service}:{operation}"] += 1
        logger.warning("injected %s fault: %s %s", mode, service, operation)
        return mode

    def _error(self, service: str, operation: str) -> ClientError:
        with self._lock:
            code, status = self.rng.choice(_ERRORS[service])
        return ClientError(
            {"Error": {"Code": code, "Message": "injected by the ledger"},
             "ResponseMetadata": {"HTTPStatusCode": status}},
            operation,
        )  # fmt: skip
