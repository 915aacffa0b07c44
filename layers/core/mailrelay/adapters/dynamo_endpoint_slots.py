"""Per-endpoint posting slots in the webhooks table: item ``slot#<endpoint>#<n>`` under the endpoint's
client, held by one webhook function until it releases it or its hold expires.

Taking a slot is one conditional PutItem (free, or its hold has expired), so two functions can never
hold the same slot: DynamoDB applies a conditional write only when its condition holds at the write
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html).
A function that dies while holding one frees it when the hold expires (the post's timeout, with room).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from mailrelay.adapters.aws import aws_call, lazy
from mailrelay.ports import StorageError

_KEPT = timedelta(days=1)  # an abandoned slot item leaves the table by TTL


class DynamoEndpointSlots:
    def __init__(self, table: str, client: Any | None = None) -> None:
        self.table = table
        self._client = lazy("dynamodb", client)

    @staticmethod
    def _key(client_id: str, endpoint_id: str, slot: int) -> dict[str, Any]:
        return {"client_id": {"S": client_id}, "id": {"S": f"slot#{endpoint_id}#{slot}"}}

    def acquire(
        self, client_id: str, endpoint_id: str, slots: int, holder: str, now: datetime, until: datetime
    ) -> int | None:
        start = random.randrange(slots)  # noqa: S311 - spreads functions over the slots, not a secret
        for n in range(slots):
            slot = (start + n) % slots
            item = self._key(client_id, endpoint_id, slot) | {
                "holder": {"S": holder}, "until": {"N": f"{until.timestamp():.3f}"},
                "ttl": {"N": str(int((now + _KEPT).timestamp()))},
            }  # fmt: skip
            if self._put_if_free(item, now):
                return slot
        return None

    def _put_if_free(self, item: dict[str, Any], now: datetime) -> bool:
        from botocore.exceptions import ClientError

        try:
            with aws_call("DynamoDB PutItem"):
                self._client().put_item(
                    TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(id) OR #until < :now",
                    ExpressionAttributeNames={"#until": "until"},
                    ExpressionAttributeValues={":now": {"N": f"{now.timestamp():.3f}"}},
                )  # fmt: skip
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def release(self, client_id: str, endpoint_id: str, slot: int, holder: str) -> None:
        from botocore.exceptions import ClientError

        try:
            with aws_call("DynamoDB DeleteItem"):
                self._client().delete_item(
                    TableName=self.table, Key=self._key(client_id, endpoint_id, slot),
                    ConditionExpression="holder = :holder", ExpressionAttributeValues={":holder": {"S": holder}},
                )  # fmt: skip
        except StorageError as exc:
            cause = exc.__cause__
            if not (
                isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "ConditionalCheckFailedException"
            ):
                raise
