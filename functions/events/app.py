"""Events function (DynamoDB Streams trigger on the messages table, ReportBatchItemFailures): each change
record -> its events, stored, put on the event bus and queued for webhooks -> a partial batch response.

Lambda checkpoints a stream at the lowest sequence number reported failed and retries every record from
there, so a failed record holds back the records after it on its shard instead of losing them
(https://docs.aws.amazon.com/lambda/latest/dg/services-ddb-batchfailurereporting.html). A record whose
image is not a status record can never yield an event: it is logged and counted, not retried for 24 h.
So once a record of a batch fails, the records after it are reported failed without being handled: they
come again from the checkpoint, and handling them now would only queue their webhooks twice.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from mailrelay.adapters.dynamo_stream import status_change
from mailrelay.events.recorder import EventRecorder
from mailrelay.events.settings import get_event_settings
from mailrelay.webhooks.settings import get_webhook_settings
from mailrelay.wiring import build_event_recorder

Handler = Callable[[dict[str, Any], Any], PartialItemFailureResponse]
logger = Logger(service="mailrelay-events")
copy_config_to_registered_loggers(source_logger=logger, include={"mailrelay"})
metrics = Metrics(service="mailrelay-events")
processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)


class RetriedFromCheckpoint(Exception):
    """Not handled now: the stream delivers this record again after the failed one before it."""


def create_handler(recorder: Callable[[], EventRecorder]) -> Handler:
    """The whole function around the recorder it is given (built at the first record)."""

    failed = [False]  # a record of the batch being handled has failed

    def record_handler(record: DynamoDBRecord) -> None:
        if failed[0]:
            raise RetriedFromCheckpoint("an earlier record of this batch failed")
        failed[0] = True  # until this record is done
        handle(record)
        failed[0] = False

    def handle(record: DynamoDBRecord) -> None:
        try:
            old, new = status_change(record.raw_event)
        except ValidationError as exc:
            logger.error("stream record is not a status record; no events", extra={"error": str(exc)[:500]})
            metrics.add_metric(name="UndecodableRecords", unit=MetricUnit.Count, value=1)
            return
        for event in recorder().record(old, new):
            logger.info(
                "event",
                extra={"event_id": event.id, "type": event.type, "message_id": event.data.message_id,
                       "recipient": event.data.recipient, "attempt": event.data.attempt},
            )  # fmt: skip
            metrics.add_metric(name="Events", unit=MetricUnit.Count, value=1)

    @metrics.log_metrics
    @logger.inject_lambda_context
    def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
        failed[0] = False
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    return handler


@cache
def recorder() -> EventRecorder:
    """The events function's composition root, with the environment's configuration."""
    return build_event_recorder(get_event_settings(), get_webhook_settings())


lambda_handler = create_handler(recorder)
