"""Clients and their API keys in DynamoDB.

Two kinds of item in one table: ``client#<id>`` (the client) and ``key#<sha256>`` (its key's
hash, pointing at the client). Keys themselves are never stored.
"""

from __future__ import annotations

from typing import Any

from mailrelay.adapters.aws import aws_call, lazy
from mailrelay.adapters.dynamo import from_item, to_item
from mailrelay.models.client import Client

MAX_PARSED = 1024  # clients whose last item is kept parsed


class ClientExists(Exception):
    pass


class DynamoClientStore:
    def __init__(self, table: str, client: Any | None = None) -> None:
        self.table = table
        self._client = lazy("dynamodb", client)
        # The bridge reads a session's client at every MAIL and again after DATA: each read still goes to
        # the table (a revoked key stops at once), but an unchanged item is not deserialised again.
        self._parsed: dict[str, tuple[dict[str, Any], Client]] = {}

    def create(self, client: Client, key_hash: str) -> None:
        record = {"pk": f"client#{client.id}", "key_hash": key_hash, **client.model_dump(mode="json")}
        key_item = {"pk": f"key#{key_hash}", "client_id": client.id}
        try:
            with aws_call("DynamoDB TransactWriteItems"):
                self._client().transact_write_items(
                    TransactItems=[
                        {"Put": {"TableName": self.table, "Item": to_item(record),
                                 "ConditionExpression": "attribute_not_exists(pk) OR #s = :revoked",
                                 "ExpressionAttributeNames": {"#s": "state"},
                                 "ExpressionAttributeValues": {":revoked": {"S": "revoked"}}}},
                        {"Put": {"TableName": self.table, "Item": to_item(key_item),
                                 "ConditionExpression": "attribute_not_exists(pk)"}},
                    ]
                )  # fmt: skip
        except Exception as exc:
            from botocore.exceptions import ClientError

            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "TransactionCanceledException":
                raise ClientExists(client.id) from None
            raise

    def _item(self, pk: str) -> dict[str, Any] | None:
        with aws_call("DynamoDB GetItem"):
            item = self._client().get_item(TableName=self.table, Key={"pk": {"S": pk}}, ConsistentRead=True)
        found: dict[str, Any] | None = item.get("Item")
        return found

    def _get(self, pk: str) -> dict[str, Any] | None:
        found = self._item(pk)
        return from_item(found) if found else None

    def _client_of(self, pk: str, item: dict[str, Any]) -> Client:
        known = self._parsed.get(pk)
        if known is not None and known[0] == item:
            return known[1]
        client = Client.model_validate(from_item(item))
        if len(self._parsed) >= MAX_PARSED:
            self._parsed.clear()
        self._parsed[pk] = (item, client)
        return client

    def get(self, client_id: str) -> Client | None:
        pk = f"client#{client_id}"
        item = self._item(pk)
        return self._client_of(pk, item) if item else None

    def find_by_key_hash(self, key_hash: str) -> Client | None:
        pointer = self._get(f"key#{key_hash}")
        if pointer is None:
            return None
        pk = f"client#{pointer['client_id']}"
        item = self._item(pk)
        if item is None or item.get("key_hash") != {"S": key_hash}:
            return None
        return self._client_of(pk, item)

    def list(self) -> list[Client]:
        clients: list[Client] = []
        with aws_call("DynamoDB Scan"):
            pages = (
                self._client()
                .get_paginator("scan")
                .paginate(
                    TableName=self.table,
                    FilterExpression="begins_with(pk, :p)",
                    ExpressionAttributeValues={":p": {"S": "client#"}},
                )
            )
            for page in pages:
                clients.extend(Client.model_validate(from_item(i)) for i in page.get("Items", []))
        return sorted(clients, key=lambda c: c.id)

    def revoke(self, client_id: str) -> bool:
        data = self._get(f"client#{client_id}")
        if data is None or data.get("state") == "revoked":
            return False
        with aws_call("DynamoDB TransactWriteItems"):
            self._client().transact_write_items(
                TransactItems=[
                    {"Update": {"TableName": self.table, "Key": {"pk": {"S": f"client#{client_id}"}},
                                "UpdateExpression": "SET #s = :revoked",
                                "ExpressionAttributeNames": {"#s": "state"},
                                "ExpressionAttributeValues": {":revoked": {"S": "revoked"}}}},
                    {"Delete": {"TableName": self.table, "Key": {"pk": {"S": f"key#{data['key_hash']}"}}}},
                ]
            )  # fmt: skip
        return True

    def update_retention(self, client_id: str, days: int) -> bool:
        from botocore.exceptions import ClientError

        try:
            with aws_call("DynamoDB UpdateItem"):
                self._client().update_item(
                    TableName=self.table, Key={"pk": {"S": f"client#{client_id}"}},
                    UpdateExpression="SET retain_content_days = :days",
                    ConditionExpression="attribute_exists(pk) AND #s = :active",
                    ExpressionAttributeNames={"#s": "state"},
                    ExpressionAttributeValues={":days": {"N": str(days)}, ":active": {"S": "active"}},
                )  # fmt: skip
        except Exception as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
