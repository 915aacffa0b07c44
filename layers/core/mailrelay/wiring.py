"""Builds the services from settings: the one place that chooses concrete adapters."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from mailrelay.adapters.dynamo_clients import DynamoClientStore
from mailrelay.adapters.dynamo_messages import DynamoStatusStore
from mailrelay.adapters.s3_payloads import S3PayloadStore
from mailrelay.adapters.s3_uploads import S3UploadStore
from mailrelay.adapters.sqs_queue import SqsQueue
from mailrelay.clients import ClientService
from mailrelay.settings import Settings
from mailrelay.submission import SubmissionService, utcnow
from mailrelay.uploads import UploadService


@dataclass
class Services:
    settings: Settings
    sqs: Any | None = None
    s3: Any | None = None
    dynamodb: Any | None = None

    @cached_property
    def statuses(self) -> DynamoStatusStore:
        return DynamoStatusStore(self.settings.messages_table, self.settings.status_ttl_days, self.dynamodb)

    @cached_property
    def payloads(self) -> S3PayloadStore:
        return S3PayloadStore(self.settings.payload_bucket, self.s3)

    @cached_property
    def queue(self) -> SqsQueue:
        return SqsQueue(self.settings.queue_url, self.sqs)

    @cached_property
    def clients(self) -> ClientService:
        return ClientService(DynamoClientStore(self.settings.clients_table, self.dynamodb))

    @cached_property
    def uploads(self) -> UploadService:
        store = S3UploadStore(self.settings.payload_bucket, self.s3)
        return UploadService(store, self.settings.max_message_bytes, utcnow)

    @cached_property
    def submissions(self) -> SubmissionService:
        return SubmissionService(self.settings, self.queue, self.payloads, self.statuses)
