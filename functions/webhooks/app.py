"""Webhook function (SQS trigger on the webhook queue, ReportBatchItemFailures): each job -> one signed POST
-> delivered (deleted), or hidden until its next attempt by the retry schedule, or given up; a job whose
endpoint has every slot held (its bound of posts in flight) is queued again, delayed, and this record deleted.

A job's attempt number is the record's ApproximateReceiveCount (1 on its first receive): SQS counts every
receive, so a record received twice without an attempt may skip a step of the schedule, never repeat one.
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
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from mailrelay.events.settings import get_event_settings
from mailrelay.ports import StorageError
from mailrelay.webhooks.settings import get_webhook_settings
from mailrelay.wiring import WebhookWorker, build_webhook_worker

Handler = Callable[[dict[str, Any], Any], PartialItemFailureResponse]
logger = Logger(service="mailrelay-webhooks")
copy_config_to_registered_loggers(source_logger=logger, include={"mailrelay"})
metrics = Metrics(service="mailrelay-webhooks")


class RetryLater(Exception):
    """The job stays on the queue, hidden until its next attempt."""


def create_handler(worker: Callable[[], WebhookWorker]) -> Handler:
    """The whole function around the worker it is given. A BatchProcessor holds the batch it is processing,
    so each handler has its own (a test or a local run may run several, as Lambda runs several environments)."""
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

    def record_handler(record: SQSRecord) -> None:
        attempt = int(record.attributes.approximate_receive_count or 1)
        outcome = worker().sender.send(record.body, attempt)
        metrics.add_metric(name=f"Webhook{outcome.result.title().replace('_', '')}", unit=MetricUnit.Count, value=1)
        if outcome.requeue is not None:
            worker().jobs.send(outcome.requeue)  # StorageError: this record fails and comes back instead
            return
        if outcome.retry_in is None:
            return
        try:
            worker().records.hide(record.receipt_handle, outcome.retry_in)
        except StorageError as exc:  # it comes back after the queue's own visibility timeout instead
            logger.warning("could not hide the job until its retry", extra={"error": str(exc)})
        raise RetryLater(f"attempt {attempt} failed ({outcome.error}); next in {outcome.retry_in}s")

    @metrics.log_metrics
    @logger.inject_lambda_context
    def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    return handler


@cache
def worker() -> WebhookWorker:
    """The webhook function's composition root, with the environment's configuration."""
    return build_webhook_worker(get_webhook_settings(), get_event_settings().event_bus_name)


lambda_handler = create_handler(worker)
