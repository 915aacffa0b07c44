"""Delivery function (SQS trigger, ReportBatchItemFailures): records -> core worker -> partial batch response.

Importing this module loads the batch handling only; the configuration and the worker's module graph
(adapters, models, SMTP) are loaded with the worker, at the first invocation, or before the snapshot when
SnapStart is on (mailrelay.snapstart), so that a bad configuration fails the version's publication.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, assert_never

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from mailrelay import snapstart
from mailrelay.delivery.deadline import Deadline

if TYPE_CHECKING:
    from mailrelay.delivery.settings import DeliverySettings
    from mailrelay.delivery.worker import DeliveryWorker, RecordOutcome, RecordReason

Handler = Callable[[dict[str, Any], Any], PartialItemFailureResponse]
logger = Logger(service="mailrelay-deliver")
copy_config_to_registered_loggers(source_logger=logger, include={"mailrelay"})
metrics = Metrics(service="mailrelay-deliver")
# A batch in which every record waits (scheduled, deferred) is normal, not an invocation error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class KeepRecord(Exception):
    """The record stays on the queue (already hidden until its next attempt)."""


def metric_for(reason: RecordReason) -> str | None:
    """The metric a record's outcome counts in; mypy proves every reason is decided here."""
    match reason:
        case "delivered" | "deferred" | "failed" | "expired" | "uncertain" | "quarantined" | "cancelled":
            return reason.capitalize()
        case "duplicate":
            return "DuplicateSkipped"
        case "queued" | "scheduled" | "sending" | "deadline" | "busy" | "lease_lost" | "quarantine_failed":
            return None
        case _:
            assert_never(reason)


def _count(outcome: RecordOutcome) -> None:
    name = metric_for(outcome.reason)
    if name:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=1)
    if outcome.since_accepted is not None:
        metrics.add_metric(name="TimeToDelivery", unit=MetricUnit.Seconds, value=outcome.since_accepted)


def create_handler(worker: Callable[[], DeliveryWorker], settings: Callable[[], DeliverySettings]) -> Handler:
    """The whole function around the worker it is given (built lazily: a bad configuration fails the first
    invocation, naming the field)."""

    def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
        deadline = Deadline(lambda_context.get_remaining_time_in_millis, settings().deadline_margin)
        outcome = worker().handle(record.body, record.receipt_handle, deadline)
        _count(outcome)
        if outcome.keep:
            raise KeepRecord(f"{outcome.reason}; next attempt in {outcome.retry_in}s")

    @metrics.log_metrics
    @logger.inject_lambda_context
    def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
        worker().begin_batch()
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )

    return handler


@cache
def worker() -> DeliveryWorker:
    """The delivery function's composition root, with the environment's configuration."""
    from mailrelay.delivery.wiring import build_worker
    from mailrelay.settings import get_settings

    return build_worker(get_settings(), delivery_settings())


def delivery_settings() -> DeliverySettings:
    from mailrelay.delivery.settings import get_delivery_settings

    return get_delivery_settings()


@snapstart.before_snapshot
def _warm() -> None:
    """Into the snapshot: the configuration, checked, and the modules the first batch loads; no open SMTP
    session goes into it."""
    import mailrelay.delivery.wiring  # noqa: F401
    from mailrelay.adapters.aws import preload
    from mailrelay.settings import get_settings

    get_settings()
    delivery_settings()
    preload()
    if worker.cache_info().currsize:
        worker().pool.close_all()


@snapstart.after_restore
def _new_worker() -> None:
    """The worker's lease-owner id, AWS clients and SMTP sessions belong to one execution environment:
    each restored environment builds its own at its first invocation."""
    if worker.cache_info().currsize:
        worker().pool.close_all()
    worker.cache_clear()


lambda_handler = create_handler(worker, delivery_settings)
