"""Webhook endpoints in DynamoDB: one item per endpoint, keyed by client (partition) and endpoint id, so a
client's endpoints are one Query and no client can name another's. Beside them, under the same client, the
log of delivery attempts (``delivery#<endpoint>#<time>#<event>``), expiring by TTL."""

from __future__ import annotations

import builtins
from datetime import timedelta
from typing import Any

from mailrelay.adapters.aws import aws_call, lazy
from mailrelay.adapters.dynamo import from_item, to_item
from mailrelay.webhooks.model import DeliveryAttempt, Endpoint

ATTEMPTS_KEPT = timedelta(days=14)


class DynamoWebhookStore:
    def __init__(self, table: str, client: Any | None = None) -> None:
        self.table = table
        self._client = lazy("dynamodb", client)

    def create(self, endpoint: Endpoint) -> None:
        with aws_call("DynamoDB PutItem"):
            self._client().put_item(
                TableName=self.table, Item=to_item(endpoint.model_dump(mode="json")),
                ConditionExpression="attribute_not_exists(id)",
            )  # fmt: skip

    def save(self, endpoint: Endpoint) -> None:
        with aws_call("DynamoDB PutItem"):
            self._client().put_item(TableName=self.table, Item=to_item(endpoint.model_dump(mode="json")))

    def get(self, client_id: str, endpoint_id: str) -> Endpoint | None:
        with aws_call("DynamoDB GetItem"):
            item = (
                self._client()
                .get_item(
                    TableName=self.table,
                    Key={"client_id": {"S": client_id}, "id": {"S": endpoint_id}},
                    ConsistentRead=True,
                )
                .get("Item")
            )
        return Endpoint.model_validate(from_item(item)) if item else None

    def list(self, client_id: str) -> list[Endpoint]:
        request: dict[str, Any] = {
            "TableName": self.table, "KeyConditionExpression": "client_id = :c AND begins_with(id, :endpoint)",
            "ExpressionAttributeValues": {":c": {"S": client_id}, ":endpoint": {"S": "wh_"}},
        }  # fmt: skip
        found = []
        while True:
            with aws_call("DynamoDB Query"):
                response = self._client().query(**request)
            found += [Endpoint.model_validate(from_item(i)) for i in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return found
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def delete(self, client_id: str, endpoint_id: str) -> bool:
        with aws_call("DynamoDB DeleteItem"):
            response = self._client().delete_item(
                TableName=self.table, Key={"client_id": {"S": client_id}, "id": {"S": endpoint_id}},
                ReturnValues="ALL_OLD",
            )  # fmt: skip
        return "Attributes" in response

    def record_attempt(self, client_id: str, endpoint_id: str, attempt: DeliveryAttempt) -> None:
        key = f"delivery#{endpoint_id}#{attempt.at.isoformat()}#{attempt.event_id}#{attempt.attempt}"
        item = {"client_id": client_id, "id": key, "entry": attempt.model_dump_json(),
                "ttl": int((attempt.at + ATTEMPTS_KEPT).timestamp())}  # fmt: skip
        with aws_call("DynamoDB PutItem"):
            self._client().put_item(TableName=self.table, Item=to_item(item))

    def attempts(self, client_id: str, endpoint_id: str, limit: int) -> builtins.list[DeliveryAttempt]:
        with aws_call("DynamoDB Query"):
            response = self._client().query(
                TableName=self.table, KeyConditionExpression="client_id = :c AND begins_with(id, :log)",
                ExpressionAttributeValues={":c": {"S": client_id}, ":log": {"S": f"delivery#{endpoint_id}#"}},
                ScanIndexForward=False, Limit=limit,
            )  # fmt: skip
        return [DeliveryAttempt.model_validate_json(i["entry"]["S"]) for i in response.get("Items", [])]
