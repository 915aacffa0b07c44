"""Message status records in DynamoDB (one item per message, expiring by TTL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mailrelay.adapters.aws import aws_call, lazy
from mailrelay.adapters.dynamo import from_item, to_item
from mailrelay.models.status import MessageStatus


class DynamoStatusStore:
    def __init__(self, table: str, ttl_days: int = 30, client: Any | None = None) -> None:
        self.table = table
        self.ttl = timedelta(days=ttl_days)
        self._client = lazy("dynamodb", client)

    def _item(self, status: MessageStatus) -> dict[str, Any]:
        data = status.model_dump(mode="json")
        data["ttl"] = int((status.expires_at + self.ttl).timestamp())
        return to_item(data)

    def create(self, status: MessageStatus) -> None:
        with aws_call("DynamoDB PutItem"):
            self._client().put_item(
                TableName=self.table, Item=self._item(status), ConditionExpression="attribute_not_exists(id)"
            )

    def put(self, status: MessageStatus) -> None:
        with aws_call("DynamoDB PutItem"):
            self._client().put_item(TableName=self.table, Item=self._item(status))

    def get(self, message_id: str) -> MessageStatus | None:
        with aws_call("DynamoDB GetItem"):
            item = (
                self._client()
                .get_item(TableName=self.table, Key={"id": {"S": message_id}}, ConsistentRead=True)
                .get("Item")
            )
        return MessageStatus.model_validate(from_item(item)) if item else None

    def delete(self, message_id: str) -> None:
        with aws_call("DynamoDB DeleteItem"):
            self._client().delete_item(TableName=self.table, Key={"id": {"S": message_id}})
