"""Builds the delivery worker from settings: the one place that picks its concrete adapters."""

from __future__ import annotations

from typing import Any

from mailrelay.adapters.dynamo_messages import DynamoStatusStore
from mailrelay.adapters.dynamo_suppressions import DynamoSuppressionStore
from mailrelay.adapters.parameters import SmtpCredentialStore, SsmParameterReader
from mailrelay.adapters.s3_payloads import S3PayloadStore
from mailrelay.adapters.sqs_records import SqsRecordControl
from mailrelay.delivery.connections import SessionPool
from mailrelay.delivery.deadline import Deadline
from mailrelay.delivery.settings import DeliverySettings
from mailrelay.delivery.smtp_session import UpstreamSession
from mailrelay.delivery.upstreams import Upstream, load_upstreams
from mailrelay.delivery.worker import DeliveryWorker
from mailrelay.feedback.service import FeedbackService
from mailrelay.settings import Settings
from mailrelay.submission import utcnow
from mailrelay.suppression.service import SuppressionList


def build_worker(
    settings: Settings,
    delivery: DeliverySettings,
    *,
    sqs: Any | None = None,
    s3: Any | None = None,
    dynamodb: Any | None = None,
    secretsmanager: Any | None = None,
    ssm: Any | None = None,
) -> DeliveryWorker:
    """Raises ConfigurationError (naming the variable and field) when the upstreams are invalid."""
    upstreams = load_upstreams(delivery, SsmParameterReader(ssm).read)
    credentials = SmtpCredentialStore(delivery.secret_max_age, secretsmanager)
    worker_timeouts = DeliveryWorker.timeouts_for(delivery)
    suppressions = None
    if settings.suppressions_table:  # hard bounces are added to the client's list
        suppressions = SuppressionList(DynamoSuppressionStore(settings.suppressions_table, dynamodb), utcnow)

    def open_session(upstream: Upstream, deadline: Deadline) -> UpstreamSession:
        return UpstreamSession.open(upstream, credentials, delivery.ehlo_name, deadline, worker_timeouts)

    statuses = DynamoStatusStore(settings.messages_table, settings.status_ttl_days, dynamodb)
    return DeliveryWorker(
        delivery,
        upstreams,
        statuses,
        S3PayloadStore(settings.payload_bucket, s3),
        SqsRecordControl(settings.queue_url, delivery.dead_letter_queue_url, sqs),
        SessionPool(open_session, worker_timeouts, delivery.idle_close),
        suppressions=suppressions,
        feedback=FeedbackService(statuses, suppressions, utcnow),  # the simulator's complaints
    )
