"""Feeds the delivery handler the way Lambda's SQS event source mapping does.

Long-polls, gathers a batch as the mapping's batching window says, invokes the handler with an SQS
event, deletes the records it did not report in batchItemFailures, and leaves the rest (with whatever
visibility the handler set). A handler exception fails the whole batch, as in Lambda.

The batching window, as Lambda applies it (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html,
https://docs.aws.amazon.com/lambda/latest/api/API_CreateEventSourceMapping.html): MaximumBatchingWindowInSeconds
is "the maximum amount of time Lambda spends gathering records before invoking the function", 0 to 300,
default 0 for SQS; BatchSize is at most 10 unless the window is at least 1 s (then up to 10,000). With a
window of 0 the function gets what one receive returned; with a window it waits for a full batch or the
window's end, so at low volume every message waits the whole window.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
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
        batch_size: int = 10, window_seconds: float = 0, timeout_ms: int = 30_000, region: str = "us-east-1",
        wait_seconds: int = 1,
    ) -> None:  # fmt: skip
        if not 0 <= window_seconds <= 300:
            raise ValueError(f"MaximumBatchingWindowInSeconds {window_seconds} is outside 0..300")
        if not 1 <= batch_size <= (10_000 if window_seconds >= 1 else 10):
            raise ValueError(f"BatchSize {batch_size} needs a batching window of at least 1 s (at most 10 without)")
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.handler = handler
        self.batch_size = batch_size
        self.window_seconds = window_seconds
        # Lambda long-polls for 20 s; a shorter wait here only lets stop() return sooner (a long poll
        # answers as soon as a message is there, so it adds no latency).
        self.wait_seconds = max(0, min(wait_seconds, 20))
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
        messages = self.gather()
        if not messages:
            return 0
        context = LambdaContext("DeliverFunction", self.timeout_ms)
        try:
            response = self.handler(sqs_event(messages, self.queue_arn, self.region), context) or {}
        except Exception:
            logger.exception("delivery handler failed: the whole batch returns to the queue")
            return len(messages)
        self.after_invocation(messages)
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )
        return len(messages)

    def gather(self) -> list[dict[str, Any]]:
        """One batch: what a long poll returns, then more until the batch is full or the window ends."""
        messages = self._receive(self.batch_size, self.wait_seconds)
        if not messages:
            return []
        deadline = time.monotonic() + self.window_seconds
        while len(messages) < self.batch_size and (left := deadline - time.monotonic()) > 0:
            more = self._receive(self.batch_size - len(messages), 0)
            messages += more
            if not more and self._stop.wait(min(left, 0.05)):
                break
        return messages

    def after_invocation(self, messages: list[dict[str, Any]]) -> None:
        """Between the handler's return and the deletes (where a test injects a crash)."""

    def _receive(self, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(count, 10),  # SQS's most per ReceiveMessage
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        return messages
