"""Builds the services from settings: the one place that chooses concrete adapters (the API function,
the bridge and the local stack build their graph here; the delivery function in mailrelay.delivery.wiring)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from mailrelay.adapters.dynamo_clients import DynamoClientStore
from mailrelay.adapters.dynamo_ingress import DynamoIngressLog
from mailrelay.adapters.dynamo_messages import DynamoStatusStore
from mailrelay.adapters.group_commit import GroupCommitQueue
from mailrelay.adapters.s3_content import S3ContentArchive
from mailrelay.adapters.s3_payloads import S3PayloadStore
from mailrelay.adapters.s3_uploads import S3UploadStore
from mailrelay.adapters.sqs_queue import SqsQueue
from mailrelay.clients import ClientService
from mailrelay.ports import Queue
from mailrelay.settings import Settings
from mailrelay.submission import SubmissionService, utcnow
from mailrelay.uploads import UploadService


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
            self.settings, self.queue, self.payloads, self.statuses, ingress=ingress, archive=self.content
        )

    @cached_property
    def content(self) -> S3ContentArchive:
        return S3ContentArchive(self.settings.payload_bucket, self.s3)
