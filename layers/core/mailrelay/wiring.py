"""Builds the services from settings: the one place that chooses concrete adapters (the API function,
the bridge and the local stack build their graph here; the delivery function in mailrelay.delivery.wiring)."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mailrelay.adapters.dynamo_clients import DynamoClientStore
from mailrelay.adapters.dynamo_events import DynamoEventStore
from mailrelay.adapters.dynamo_ingress import DynamoIngressLog
from mailrelay.adapters.dynamo_messages import DynamoStatusStore
from mailrelay.adapters.dynamo_suppressions import DynamoSuppressionStore
from mailrelay.adapters.dynamo_webhooks import DynamoWebhookStore
from mailrelay.adapters.http_webhooks import resolve_addresses
from mailrelay.adapters.s3_content import S3ContentArchive
from mailrelay.adapters.s3_payloads import S3PayloadStore
from mailrelay.adapters.s3_uploads import S3UploadStore
from mailrelay.adapters.sqs_queue import SqsQueue
from mailrelay.adapters.sqs_records import SqsRecordControl
from mailrelay.clients import ClientService
from mailrelay.events.feed import EventFeed
from mailrelay.events.settings import EventSettings, get_event_settings
from mailrelay.ports import Queue
from mailrelay.settings import Settings
from mailrelay.submission import SubmissionService, utcnow
from mailrelay.suppression.service import SuppressionList
from mailrelay.uploads import UploadService
from mailrelay.webhooks.management import WebhookManagement
from mailrelay.webhooks.settings import WebhookSettings, get_webhook_settings

if TYPE_CHECKING:  # the other functions' graphs: the API's cold start does not load them
    from mailrelay.events.recorder import EventRecorder
    from mailrelay.feedback.service import FeedbackService
    from mailrelay.webhooks.sender import WebhookSender


@dataclass
class Services:
    settings: Settings
    sqs: Any | None = None
    s3: Any | None = None
    dynamodb: Any | None = None
    # Many concurrent submitters (the bridge's sessions) share SendMessageBatch calls: a write waits at most
    # this long (seconds) for the others ``expected_writers`` says are coming. 0: one SendMessage each.
    group_commit_wait: float = 0.0
    expected_writers: Callable[[], int] | None = None

    @cached_property
    def statuses(self) -> DynamoStatusStore:
        return DynamoStatusStore(self.settings.messages_table, self.settings.status_ttl_days, self.dynamodb)

    @cached_property
    def payloads(self) -> S3PayloadStore:
        return S3PayloadStore(self.settings.payload_bucket, self.s3)

    @cached_property
    def queue(self) -> Queue:
        queue = SqsQueue(self.settings.queue_url, self.sqs)
        if self.group_commit_wait <= 0:
            return queue
        from mailrelay.adapters.group_commit import GroupCommitQueue

        return GroupCommitQueue(queue, self.group_commit_wait, expected=self.expected_writers or (lambda: 1))

    @cached_property
    def clients(self) -> ClientService:
        return ClientService(DynamoClientStore(self.settings.clients_table, self.dynamodb))

    @cached_property
    def uploads(self) -> UploadService:
        store = S3UploadStore(self.settings.payload_bucket, self.s3)
        return UploadService(store, self.settings.max_message_bytes, utcnow)

    @cached_property
    def submissions(self) -> SubmissionService:
        ingress = DynamoIngressLog(self.settings.idempotency_table, self.dynamodb)
        return SubmissionService(
            self.settings, self.queue, self.payloads, self.statuses, ingress=ingress, archive=self.content,
            suppressions=self.suppressions,
        )  # fmt: skip

    @cached_property
    def suppressions(self) -> SuppressionList | None:
        return suppression_list(self.settings, self.dynamodb)

    @cached_property
    def content(self) -> S3ContentArchive:
        return S3ContentArchive(self.settings.payload_bucket, self.s3)

    @cached_property
    def event_settings(self) -> EventSettings:
        return get_event_settings()

    @cached_property
    def event_feed(self) -> EventFeed:
        events = self.event_settings
        store = DynamoEventStore(events.events_table, events.retention_days, self.dynamodb)
        return EventFeed(store, events.feed_settle_seconds, utcnow)

    @cached_property
    def webhooks(self) -> WebhookManagement:
        from mailrelay.api.problems import from_validation_error

        hooks, events = get_webhook_settings(), self.event_settings
        store = DynamoWebhookStore(hooks.webhooks_table, self.dynamodb)
        jobs = SqsQueue(hooks.webhook_queue_url, self.sqs)
        stored = DynamoEventStore(events.events_table, events.retention_days, self.dynamodb)
        return WebhookManagement(hooks, store, resolve_addresses, jobs, utcnow, from_validation_error, stored)


def build_event_recorder(
    settings: EventSettings,
    webhooks: WebhookSettings | None = None,
    *,
    dynamodb: Any | None = None,
    eventbridge: Any | None = None,
    sqs: Any | None = None,
) -> EventRecorder:
    """The events function's graph: the event store, the bus ``settings`` names, and the webhook queue."""
    from mailrelay.adapters.eventbridge import EventBridgeBus
    from mailrelay.events.recorder import EventRecorder
    from mailrelay.webhooks.fanout import WebhookFanout

    store = DynamoEventStore(settings.events_table, settings.retention_days, dynamodb)
    fanout = None
    if webhooks is not None and webhooks.webhooks_table and webhooks.webhook_queue_url:
        fanout = WebhookFanout(
            DynamoWebhookStore(webhooks.webhooks_table, dynamodb), SqsQueue(webhooks.webhook_queue_url, sqs)
        )
    return EventRecorder(store, EventBridgeBus(settings.event_bus_name, eventbridge), utcnow, fanout)


def suppression_list(settings: Settings, dynamodb: Any | None = None) -> SuppressionList | None:
    """The clients' suppression lists, when the deployment has a table for them."""
    if not settings.suppressions_table:
        return None
    return SuppressionList(DynamoSuppressionStore(settings.suppressions_table, dynamodb), utcnow)


def build_feedback_service(settings: Settings, *, dynamodb: Any | None = None) -> FeedbackService:
    """The feedback function's graph: status records, and the suppression list when there is one."""
    from mailrelay.feedback.service import FeedbackService

    statuses = DynamoStatusStore(settings.messages_table, settings.status_ttl_days, dynamodb)
    return FeedbackService(statuses, suppression_list(settings, dynamodb), utcnow)


@dataclass
class WebhookWorker:
    """The webhook function's graph: the sender, and control over the records it received."""

    sender: WebhookSender
    records: SqsRecordControl
    jobs: SqsQueue  # where a job whose endpoint is busy is put back


def build_webhook_worker(
    settings: WebhookSettings, bus_name: str, *, dynamodb: Any | None = None, sqs: Any | None = None,
    eventbridge: Any | None = None,
) -> WebhookWorker:  # fmt: skip
    """The webhook function's graph; ``bus_name``: the event bus webhook.disabled goes to."""
    from mailrelay.adapters.dynamo_endpoint_slots import DynamoEndpointSlots
    from mailrelay.adapters.eventbridge import EventBridgeBus
    from mailrelay.adapters.http_webhooks import HttpWebhookPoster
    from mailrelay.webhooks.sender import WebhookSender

    store = DynamoWebhookStore(settings.webhooks_table, dynamodb)
    slots = DynamoEndpointSlots(settings.webhooks_table, dynamodb)
    sender = WebhookSender(
        settings, store, resolve_addresses, HttpWebhookPoster(), utcnow, slots=slots,
        bus=EventBridgeBus(bus_name, eventbridge), holder=secrets.token_hex(8),
    )  # fmt: skip
    queue = settings.webhook_queue_url
    return WebhookWorker(sender, SqsRecordControl(queue, "", sqs), SqsQueue(queue, sqs))
