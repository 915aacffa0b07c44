"""Fast in-process stand-ins for the SQS, S3 and DynamoDB clients: the bench measures our own cost.

They answer the calls the core makes with the shapes boto3 returns, count every request, and keep
nothing but counters (and the clients table), so memory stays flat over a long run.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from datetime import UTC, datetime
from typing import Any

CLIENT_ID = "bench"
CLIENT_KEY = "mr_bench-key-0123456789abcdefghijklmnopqrstuvwxyz"
ALLOWED_FROM = ("example.com",)


class Calls:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n


class FakeSQS:
    def __init__(self, calls: Calls, *, keep_bodies: bool = False) -> None:
        self.calls = calls
        self.bodies: list[str] | None = [] if keep_bodies else None
        self._ids = itertools.count()

    def send_message(self, *, MessageBody: str, **kwargs: Any) -> dict[str, Any]:
        self.calls.add("sqs.SendMessage")
        self.calls.add("sqs.messages")
        if self.bodies is not None:
            self.bodies.append(MessageBody)
        return {"MessageId": f"m-{next(self._ids)}"}

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.add("sqs.SendMessageBatch")
        self.calls.add("sqs.messages", len(Entries))
        if self.bodies is not None:
            self.bodies.extend(e["MessageBody"] for e in Entries)
        return {"Successful": [{"Id": e["Id"], "MessageId": f"m-{next(self._ids)}"} for e in Entries], "Failed": []}

    def delete_message(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.add("sqs.DeleteMessage")
        return {}

    def change_message_visibility(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.add("sqs.ChangeMessageVisibility")
        return {}


class FakeS3:
    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    def put_object(self, *, Body: Any, **kwargs: Any) -> dict[str, Any]:
        self.calls.add("s3.PutObject")
        if hasattr(Body, "read"):  # botocore sends a file body in chunks, as read here
            while chunk := Body.read(1 << 20):
                self.calls.add("s3.bytes", len(chunk))
        return {}

    def delete_object(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.add("s3.DeleteObject")
        return {}


class FakeDynamo:
    """The clients table holds the bench client and its key; every other write is only counted."""

    def __init__(self, calls: Calls, *, keep_statuses: bool = False) -> None:
        self.calls = calls
        self.statuses: dict[str, Any] | None = {} if keep_statuses else None
        # Imported here: a cold-start peer that uses only the SQS fake must not load mailrelay.
        from mailrelay.adapters.dynamo import to_item
        from mailrelay.clients import hash_key
        from mailrelay.models.client import Client

        client = Client(
            id=CLIENT_ID, allowed_from=ALLOWED_FROM, created_at=datetime.now(UTC), key_prefix=CLIENT_KEY[:7]
        )
        key_hash = hash_key(CLIENT_KEY)
        self.items = {
            f"client#{CLIENT_ID}": to_item({"pk": f"client#{CLIENT_ID}", "key_hash": key_hash,
                                            **client.model_dump(mode="json")}),
            f"key#{key_hash}": to_item({"pk": f"key#{key_hash}", "client_id": CLIENT_ID}),
        }  # fmt: skip

    def get_item(self, *, Key: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        self.calls.add("dynamodb.GetItem")
        pk = Key.get("pk", {}).get("S")
        item = self.items.get(pk) if pk else None
        return {"Item": item} if item else {}

    def batch_get_item(self, *, RequestItems: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """The suppression look-up: nobody is suppressed."""
        self.calls.add("dynamodb.BatchGetItem")
        self.calls.add("dynamodb.keys_read", sum(len(t["Keys"]) for t in RequestItems.values()))
        return {"Responses": {}, "UnprocessedKeys": {}}

    def put_item(self, *, Item: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        self.calls.add("dynamodb.PutItem")
        if self.statuses is not None and "id" in Item:
            self.statuses[Item["id"]["S"]] = Item
        return {}

    def update_item(self, *, Key: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """The delivery lease: answers with the status record as it was (ReturnValues=ALL_OLD)."""
        self.calls.add("dynamodb.UpdateItem")
        old = self.statuses.get(Key["id"]["S"]) if self.statuses is not None else None
        return {"Attributes": old} if old else {}

    def delete_item(self, **kwargs: Any) -> dict[str, Any]:
        self.calls.add("dynamodb.DeleteItem")
        return {}

    def batch_write_item(self, *, RequestItems: dict[str, list[Any]], **kwargs: Any) -> dict[str, Any]:
        self.calls.add("dynamodb.BatchWriteItem")
        self.calls.add("dynamodb.items_written", sum(len(v) for v in RequestItems.values()))
        return {"UnprocessedItems": {}}


def fake_clients() -> tuple[Calls, FakeSQS, FakeS3, FakeDynamo]:
    calls = Calls()
    return calls, FakeSQS(calls), FakeS3(calls), FakeDynamo(calls)


BENCH_ENV = {
    "MAILRELAY_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/mailrelay-bench",
    "MAILRELAY_PAYLOAD_BUCKET": "mailrelay-bench",
    "MAILRELAY_MESSAGES_TABLE": "mailrelay-bench-messages",
    "MAILRELAY_CLIENTS_TABLE": "mailrelay-bench-clients",
    "MAILRELAY_IDEMPOTENCY_TABLE": "mailrelay-bench-idempotency",
    "MAILRELAY_MAX_MESSAGE_BYTES": "30000000",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "POWERTOOLS_TRACE_DISABLED": "1",
    "POWERTOOLS_METRICS_NAMESPACE": "mailrelay-bench",
}
