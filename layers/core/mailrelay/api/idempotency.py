"""Idempotency-Key support, on Powertools' idempotency utility with a DynamoDB table.

The key is scoped to the client, and the request body's fingerprint is the payload that
Powertools validates: the same key with another body raises, and so does a key whose first
request is still in flight. Failed requests leave no record, so a 503 is never replayed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mailrelay.errors import Conflict, InvalidRequest, TemporarilyUnavailable

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise InvalidRequest.at("Idempotency-Key", "must be 1-255 printable ASCII characters without spaces")
    return key


class IdempotentRunner:
    def __init__(self, table: str, ttl_seconds: int, client: Any | None = None) -> None:
        self.table = table
        self.ttl_seconds = ttl_seconds
        self._client = client
        self._persistence: Any = None
        self._config: Any = None
        self._lambda_context: Any = None

    def register_lambda_context(self, context: Any) -> None:
        """Lets an in-flight record expire with the invocation, so a crashed attempt cannot block retries."""
        self._lambda_context = context

    def _setup(self) -> tuple[Any, Any]:
        if self._persistence is None:
            from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig

            self._persistence = DynamoDBPersistenceLayer(
                table_name=self.table, boto3_client=self._client, static_pk_value="mailrelay-api"
            )
            self._config = IdempotencyConfig(
                event_key_jmespath="key",
                payload_validation_jmespath="fingerprint",
                expires_after_seconds=self.ttl_seconds,
                use_local_cache=False,
            )
        return self._persistence, self._config

    def run(self, scope: str, key: str, fingerprint: str, operation: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        from aws_lambda_powertools.utilities.idempotency import idempotent_function
        from aws_lambda_powertools.utilities.idempotency.exceptions import (
            IdempotencyAlreadyInProgressError,
            IdempotencyPersistenceLayerError,
            IdempotencyValidationError,
        )

        persistence, config = self._setup()
        if self._lambda_context is not None:
            config.register_lambda_context(self._lambda_context)

        done: list[dict[str, Any]] = []

        def send(request: dict[str, str]) -> dict[str, Any]:
            done.append(operation())
            return done[0]

        guarded = idempotent_function(data_keyword_argument="request", persistence_store=persistence, config=config)(
            send
        )
        try:
            result: dict[str, Any] = guarded(request={"key": f"{scope}\n{key}", "fingerprint": fingerprint})
        except IdempotencyValidationError:
            raise Conflict("this Idempotency-Key was used with a different request body") from None
        except IdempotencyAlreadyInProgressError:
            raise Conflict("a request with this Idempotency-Key is still being processed; retry shortly") from None
        except IdempotencyPersistenceLayerError:
            if done:  # accepted; only the key's record could not be completed (it expires as in-progress)
                return done[0]
            raise TemporarilyUnavailable(
                "the idempotency store is unavailable; nothing was accepted, please retry"
            ) from None
        return result
