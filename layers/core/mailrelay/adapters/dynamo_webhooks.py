"""Webhook endpoints in DynamoDB: one item per endpoint, keyed by client (partition) and endpoint id, so a
client's endpoints are one Query and no client can name another's."""

from __future__ import annotations

from typing import Any

from mailrelay.adapters.aws import aws_call, lazy
from mailrelay.adapters.dynamo import from_item, to_item
from mailrelay.webhooks.model import Endpoint


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
            "TableName": self.table, "KeyConditionExpression": "client_id = :c",
            "ExpressionAttributeValues": {":c": {"S": client_id}},
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
