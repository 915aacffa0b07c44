"""Feeds the events handler the way Lambda's DynamoDB Streams event source mapping does.

Per shard, in order: reads up to ``batch_size`` records, invokes the handler with a DynamoDB Streams
event, and checkpoints as Lambda does (https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-batchfailurereporting.html):
with batchItemFailures, at the lowest sequence number reported, every record from there is retried;
an empty or missing itemIdentifier fails the whole batch; a handler exception fails the whole batch,
which BisectBatchOnFunctionError halves before the retry. Failed records are retried without end,
as MaximumRetryAttempts -1 does until a record leaves the stream after 24 hours (a local run does
not last that long). The record shape is Lambda's: https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from local_stack.http_gateway import LambdaContext

logger = logging.getLogger("local_stack.stream")

Handler = Callable[[dict[str, Any], Any], Mapping[str, Any] | None]


def streams_client(region: str) -> Any:
    """botocore's account-based endpoint (<account>.streams-ddb...) is unknown to moto; the regional one works."""
    import boto3
    from botocore.config import Config

    return boto3.client("dynamodbstreams", region_name=region, config=Config(account_id_endpoint_mode="disabled"))


def lambda_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    images = dict(record["dynamodb"])
    created = images.get("ApproximateCreationDateTime")
    if created is not None and not isinstance(created, int | float):
        images["ApproximateCreationDateTime"] = int(created.timestamp())  # Lambda sends epoch seconds
    return {**record, "awsRegion": region, "dynamodb": images, "eventSourceARN": stream_arn}


class StreamPoller:
    def __init__(
        self, streams: Any, stream_arn: str, handler: Handler, *, batch_size: int = 100, window_seconds: float = 1,
        timeout_ms: int = 60_000, region: str = "us-east-1", bisect: bool = True,
    ) -> None:  # fmt: skip
        self.streams = streams
        self.stream_arn = stream_arn
        self.handler = handler
        self.batch_size = max(1, min(batch_size, 10_000))
        self.window_seconds = window_seconds
        self.timeout_ms = timeout_ms
        self.region = region
        self.bisect = bisect
        self._iterators: dict[str, str | None] = {}
        self._pending: dict[str, list[dict[str, Any]]] = {}  # read, not yet checkpointed
        self._limit: dict[str, int] = {}  # the batch size, halved after a handler error
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.poll_once() == 0:
                    self._stop.wait(self.window_seconds)
            except Exception:
                logger.exception("stream poll failed; retrying")
                self._stop.wait(1.0)

    def poll_once(self) -> int:
        """One invocation per shard with records; the number of records handed to the handler."""
        shards = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        handled = 0
        for shard in shards:
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self.streams.get_shard_iterator(
                    StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
            pending = self._pending.setdefault(shard_id, [])
            iterator = self._iterators[shard_id]
            if len(pending) < self.batch_size and iterator:
                got = self.streams.get_records(ShardIterator=iterator, Limit=self.batch_size - len(pending))
                pending.extend(got.get("Records", []))
                self._iterators[shard_id] = got.get("NextShardIterator")
            if pending:
                handled += self._invoke(shard_id, pending)
        return handled

    def _invoke(self, shard_id: str, pending: list[dict[str, Any]]) -> int:
        batch = pending[: self._limit.get(shard_id, self.batch_size)]
        event = {"Records": [lambda_record(r, self.stream_arn, self.region) for r in batch]}
        try:
            response = self.handler(event, LambdaContext("EventsFunction", self.timeout_ms)) or {}
        except Exception:
            logger.exception("events handler failed: the batch is retried")
            if self.bisect and len(batch) > 1:
                self._limit[shard_id] = max(1, len(batch) // 2)
            return len(batch)
        self._limit.pop(shard_id, None)
        failures = [f.get("itemIdentifier") for f in response.get("batchItemFailures") or []]
        sequence = [r["dynamodb"]["SequenceNumber"] for r in batch]
        if any(f not in sequence for f in failures):
            logger.error("a batch item failure names no record of the batch: the whole batch is retried")
            return len(batch)
        done = min((sequence.index(f) for f in failures), default=len(batch))  # checkpoint: the lowest failed
        del pending[:done]
        return len(batch)
