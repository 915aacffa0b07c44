"""The delivery queue: SendMessage / SendMessageBatch."""

from __future__ import annotations

from typing import Any

from mailrelay.adapters.aws import aws_call, lazy
from mailrelay.ports import OutgoingMessage, StorageError


class SqsQueue:
    def __init__(self, queue_url: str, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._client = lazy("sqs", client)

    def send(self, message: OutgoingMessage) -> None:
        with aws_call("SQS SendMessage"):
            self._client().send_message(
                QueueUrl=self.queue_url, MessageBody=message.body, DelaySeconds=message.delay_seconds
            )

    def send_batch(self, messages: list[OutgoingMessage]) -> dict[str, StorageError | None]:
        """Up to 10 messages in one call; returns each message's own outcome by id."""
        assert len(messages) <= 10
        with aws_call("SQS SendMessageBatch"):
            response = self._client().send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": m.id, "MessageBody": m.body, "DelaySeconds": m.delay_seconds} for m in messages],
            )
        outcome: dict[str, StorageError | None] = {m.id: StorageError("no answer for entry") for m in messages}
        for ok in response.get("Successful", []):
            outcome[ok["Id"]] = None
        for failed in response.get("Failed", []):
            outcome[failed["Id"]] = StorageError(f"SQS SendMessageBatch entry failed: {failed.get('Code')}")
        return outcome
