"""Suppression lists in DynamoDB: one item per entry, keyed by client (partition) and normalised address
(sort key), so a client's list is one Query in address order and no client can name another's entries.

Entries with ``expires_at`` carry the table's TTL attribute; DynamoDB deletes expired items only
eventually ("typically within a few days",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html), so the core
checks ``expires_at`` itself.
"""

from __future__ import annotations

import time
from typing import Any

from mailrelay.adapters.aws import aws_call, lazy
from mailrelay.adapters.dynamo_messages import _conditional_failure
from mailrelay.models.suppression import Suppression
from mailrelay.ports import StorageError, SuppressionPage

TTL_ATTRIBUTE = "ttl"  # the table's TimeToLiveSpecification (template.yaml, SuppressionsTable)
# "A single operation can retrieve up to 16 MB of data, which can contain as many as 100 items", and a
# partial result returns the rest in UnprocessedKeys, to be asked for again
# (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchGetItem.html).
BATCH_GET_MAX = 100
# "a single call to BatchWriteItem can transmit up to 16MB of data ... comprised of as many as 25 put or
# delete requests"; unprocessed ones come back in UnprocessedItems
# (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html).
BATCH_WRITE_MAX = 25
_BATCH_ROUNDS = 4


def _key(client_id: str, address: str) -> dict[str, Any]:
    return {"client_id": {"S": client_id}, "address": {"S": address}}


def _item(client_id: str, entry: Suppression) -> dict[str, Any]:
    item = {**_key(client_id, entry.address), "entry": {"S": entry.model_dump_json(exclude_none=True)},
            "reason": {"S": entry.reason}}  # fmt: skip
    if entry.expires_at is not None:
        item[TTL_ATTRIBUTE] = {"N": str(int(entry.expires_at.timestamp()))}
    return item


def _entry(item: dict[str, Any]) -> Suppression:
    return Suppression.model_validate_json(item["entry"]["S"])


class DynamoSuppressionStore:
    def __init__(self, table: str, client: Any | None = None) -> None:
        self.table = table
        self._client = lazy("dynamodb", client)

    def get_many(self, client_id: str, addresses: list[str]) -> dict[str, Suppression]:
        found: dict[str, Suppression] = {}
        unique = list(dict.fromkeys(addresses))
        for start in range(0, len(unique), BATCH_GET_MAX):
            keys = [_key(client_id, a) for a in unique[start : start + BATCH_GET_MAX]]
            for item in self._batch_get(keys):
                entry = _entry(item)
                found[entry.address] = entry
        return found

    def _batch_get(self, keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        for round_ in range(_BATCH_ROUNDS):
            with aws_call("DynamoDB BatchGetItem"):
                response = self._client().batch_get_item(RequestItems=request)
            items += response.get("Responses", {}).get(self.table, [])
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return items
            time.sleep(0.05 * 2**round_)
        raise StorageError("DynamoDB BatchGetItem failed: keys left unprocessed")

    def put(self, client_id: str, entry: Suppression) -> None:
        with aws_call("DynamoDB PutItem"):
            self._client().put_item(TableName=self.table, Item=_item(client_id, entry))

    def put_many(self, client_id: str, entries: list[Suppression]) -> None:
        for start in range(0, len(entries), BATCH_WRITE_MAX):
            chunk = entries[start : start + BATCH_WRITE_MAX]
            request: dict[str, Any] = {self.table: [{"PutRequest": {"Item": _item(client_id, e)}} for e in chunk]}
            for round_ in range(_BATCH_ROUNDS):
                with aws_call("DynamoDB BatchWriteItem"):
                    response = self._client().batch_write_item(RequestItems=request)
                request = response.get("UnprocessedItems") or {}
                if not request:
                    break
                time.sleep(0.05 * 2**round_)
            else:
                raise StorageError("DynamoDB BatchWriteItem failed: items left unprocessed")

    def add_if_absent(self, client_id: str, entry: Suppression) -> bool:
        try:
            with aws_call("DynamoDB PutItem"):
                self._client().put_item(
                    TableName=self.table, Item=_item(client_id, entry),
                    ConditionExpression="attribute_not_exists(address)",
                )  # fmt: skip
        except StorageError as exc:
            if _conditional_failure(exc) is not None:
                return False
            raise
        return True

    def delete(self, client_id: str, address: str) -> bool:
        with aws_call("DynamoDB DeleteItem"):
            response = self._client().delete_item(
                TableName=self.table, Key=_key(client_id, address), ReturnValues="ALL_OLD"
            )
        return "Attributes" in response

    def page(self, client_id: str, *, after: str | None, reason: str | None, limit: int) -> SuppressionPage:
        request: dict[str, Any] = {
            "TableName": self.table, "KeyConditionExpression": "client_id = :c",
            "ExpressionAttributeValues": {":c": {"S": client_id}}, "Limit": limit, "ConsistentRead": True,
        }  # fmt: skip
        if reason is not None:
            request["FilterExpression"] = "reason = :r"
            request["ExpressionAttributeValues"][":r"] = {"S": reason}
        if after is not None:
            request["ExclusiveStartKey"] = _key(client_id, after)
        entries: list[Suppression] = []
        # A filter applies after Limit: keep reading until the page is full or the partition ends.
        while True:
            with aws_call("DynamoDB Query"):
                response = self._client().query(**request)
            entries += [_entry(i) for i in response.get("Items", [])]
            last = response.get("LastEvaluatedKey")
            if last is None:
                return SuppressionPage(entries[:limit], entries[limit - 1].address if len(entries) > limit else None)
            if len(entries) >= limit:
                return SuppressionPage(entries[:limit], entries[limit - 1].address)
            request["ExclusiveStartKey"] = last
            request["Limit"] = limit - len(entries)
