"""Feeds the delivery handler the way Lambda's SQS event source mapping does.

Receives in batches, invokes the handler with an SQS event, deletes the records it did not
report in batchItemFailures, and leaves the rest (with whatever visibility the handler set).
A handler exception fails the whole batch, as in Lambda.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from local_stack.http_gateway import LambdaContext

logger = logging.getLogger("local_stack.poller")

Handler = Callable[[dict[str, Any], Any], Mapping[str, Any] | None]


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {k: str(v) for k, v in m.get("Attributes", {}).items()},
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode(), usedforsecurity=False).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


class SqsPoller:
    def __init__(
        self, sqs: Any, queue_url: str, queue_arn: str, handler: Handler, *,
        batch_size: int = 10, window_seconds: int = 1, timeout_ms: int = 30_000, region: str = "us-east-1",
    ) -> None:  # fmt: skip
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.handler = handler
        self.batch_size = max(1, min(batch_size, 10))
        self.window_seconds = max(1, min(window_seconds, 20))
        self.timeout_ms = timeout_ms
        self.region = region
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 35.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                logger.exception("delivery poll failed; retrying")
                self._stop.wait(1.0)

    def poll_once(self) -> int:
        messages = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.window_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return 0
        context = LambdaContext("DeliverFunction", self.timeout_ms)
        try:
            response = self.handler(sqs_event(messages, self.queue_arn, self.region), context) or {}
        except Exception:
            logger.exception("delivery handler failed: the whole batch returns to the queue")
            return len(messages)
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        return len(messages)
