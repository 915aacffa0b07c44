"""What the delivery worker does to the queue records it received: hide them for a while, or
move them to the dead-letter queue when they cannot be processed at all."""

from __future__ import annotations

from typing import Any

from mailrelay.adapters.aws import aws_call, lazy


class SqsRecordControl:
    def __init__(self, queue_url: str, dead_letter_queue_url: str = "", client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._dead_letter_queue_url = dead_letter_queue_url
        self._client = lazy("sqs", client)

    def hide(self, receipt_handle: str, seconds: int) -> None:
        """The record comes back after ``seconds`` (its next attempt), counted from now."""
        with aws_call("SQS ChangeMessageVisibility"):
            self._client().change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )

    def quarantine(self, body: str, reason: str) -> None:
        """Copy the record to the dead-letter queue with the reason; the caller then lets it be deleted."""
        with aws_call("SQS SendMessage"):
            self._client().send_message(
                QueueUrl=self.dead_letter_queue_url(),
                MessageBody=body or "(empty body)",
                MessageAttributes={"quarantine_reason": {"DataType": "String", "StringValue": reason[:1000]}},
            )

    def dead_letter_queue_url(self) -> str:
        """Configured, or else found from the queue's redrive policy (the local stack sets only the queue)."""
        if not self._dead_letter_queue_url:
            import json

            with aws_call("SQS GetQueueAttributes"):
                attributes = self._client().get_queue_attributes(
                    QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy"]
                )["Attributes"]
                arn = json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"]
                _, _, _, _, account, name = arn.split(":")
                self._dead_letter_queue_url = self._client().get_queue_url(
                    QueueName=name, QueueOwnerAWSAccountId=account
                )["QueueUrl"]
        return self._dead_letter_queue_url
