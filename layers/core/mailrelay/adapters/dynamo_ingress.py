"""Ingress de-duplication records, kept in the idempotency table beside Powertools' records.

Items are ``ingress#<client>#<sha256 of the key>`` (Powertools' ids are ``<function>#<hash>``, so the two
never meet) and expire through the table's TTL attribute. DynamoDB deletes expired items only
eventually ("typically within a few days",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html), so a read
checks the expiry itself.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from mailrelay.adapters.aws import aws_call, lazy
from mailrelay.ports import IngressRecord

TTL_ATTRIBUTE = "expiration"  # the table's TimeToLiveSpecification (template.yaml, IdempotencyTable)


class DynamoIngressLog:
    def __init__(self, table: str, client: Any | None = None) -> None:
        self.table = table
        self._client = lazy("dynamodb", client)

    @staticmethod
    def _id(client_id: str, key: str) -> dict[str, Any]:
        return {"id": {"S": f"ingress#{client_id}#{hashlib.sha256(key.encode()).hexdigest()}"}}

    def get(self, client_id: str, key: str, now: datetime) -> IngressRecord | None:
        with aws_call("DynamoDB GetItem"):
            item = (
                self._client()
                .get_item(TableName=self.table, Key=self._id(client_id, key), ConsistentRead=True)
                .get("Item")
            )
        if not item or int(item[TTL_ATTRIBUTE]["N"]) <= now.timestamp():
            return None
        return IngressRecord(item["message_id"]["S"], item["sha256"]["S"], item["status"]["S"])

    def put(self, client_id: str, key: str, record: IngressRecord, expires_at: datetime) -> None:
        item = {
            **self._id(client_id, key),
            "message_id": {"S": record.message_id},
            "sha256": {"S": record.sha256},
            "status": {"S": record.status},
            TTL_ATTRIBUTE: {"N": str(int(expires_at.timestamp()))},
        }
        with aws_call("DynamoDB PutItem"):
            self._client().put_item(TableName=self.table, Item=item)
