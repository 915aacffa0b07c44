"""Delivery events in DynamoDB: one item per event, written once (conditional on its id), expiring by TTL.

Two indexes serve the feed without a scan: ``by_client`` (client_id, position) and ``by_message``
(message_id, position). Index reads are eventually consistent (GSIs support no strongly consistent
reads: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html), which the feed's
settle window covers.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from mailrelay.adapters.aws import aws_call, lazy
from mailrelay.events.model import Event
from mailrelay.ports import EventSlice, StorageError, StoredEvent
from mailrelay.positions import position_of

CLIENT_INDEX = "by_client"
MESSAGE_INDEX = "by_message"
_PAGES_PER_READ = 5  # a sparse filter ends a page early (more=True) instead of reading on without end
# One write, quickly given up: the position is the time taken before the write, and the feed's settle
# window (seconds) must cover the time from then until the write is visible.
_WRITE_OPTIONS: dict[str, Any] = {"connect_timeout": 1, "read_timeout": 2, "retries": {"max_attempts": 1}}


class DynamoEventStore:
    def __init__(self, table: str, retention_days: int = 14, client: Any | None = None) -> None:
        self.table = table
        self.retention = timedelta(days=retention_days)
        self._writer = lazy("dynamodb", client, **_WRITE_OPTIONS)
        self._client = lazy("dynamodb", client)

    def add(self, event: Event, recorded_at: datetime) -> bool:
        from botocore.exceptions import ClientError

        item = {
            "id": {"S": event.id},
            "position": {"S": position_of(recorded_at, event.id)},
            "client_id": {"S": event.data.client_id},
            "message_id": {"S": event.data.message_id},
            "type": {"S": event.type},
            "body": {"S": json.dumps(event.envelope(), separators=(",", ":"))},
            "ttl": {"N": str(int((recorded_at + self.retention).timestamp()))},
        }
        try:
            with aws_call("DynamoDB PutItem"):
                self._writer().put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(id)")
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def read(
        self, client_id: str, *, after: str | None, lower: str, upper: str,
        types: frozenset[str] | None, message_id: str | None, limit: int,
    ) -> EventSlice:  # fmt: skip
        start = max(lower, after or "")
        if start >= upper:
            return EventSlice([], None, False)
        names = {"#p": "position"}
        values: dict[str, Any] = {":hi": {"S": upper}}
        span = "#p < :hi"
        if start:  # DynamoDB refuses an empty string as a key value, even in a condition
            values[":lo"] = {"S": start}
            span = "#p BETWEEN :lo AND :hi"
        filters = []
        if message_id is None:
            index, names["#k"], values[":k"] = CLIENT_INDEX, "client_id", {"S": client_id}
        else:
            index, names["#k"], values[":k"] = MESSAGE_INDEX, "message_id", {"S": message_id}
            names["#c"], values[":c"] = "client_id", {"S": client_id}
            filters.append("#c = :c")
        if types:
            names["#t"] = "type"
            keys = [f":t{i}" for i in range(len(types))]
            values.update({k: {"S": t} for k, t in zip(keys, sorted(types), strict=True)})
            filters.append(f"#t IN ({', '.join(keys)})")
        request: dict[str, Any] = {
            "TableName": self.table, "IndexName": index,
            "KeyConditionExpression": f"#k = :k AND {span}",
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
            "Limit": limit + 1,
        }  # fmt: skip
        if filters:
            request["FilterExpression"] = " AND ".join(filters)
        found: list[StoredEvent] = []
        for _ in range(_PAGES_PER_READ):
            with aws_call("DynamoDB Query"):
                response = self._client().query(**request)
            for item in response.get("Items", []):
                position = item["position"]["S"]
                if position == after or position >= upper:  # BETWEEN includes both ends
                    continue
                found.append(StoredEvent(position, Event.model_validate_json(item["body"]["S"])))
                if len(found) > limit:
                    return EventSlice(found[:limit], found[limit - 1].position, True)
            last = response.get("LastEvaluatedKey")
            if not last:
                return EventSlice(found, found[-1].position if found else None, False)
            request["ExclusiveStartKey"] = last
        return EventSlice(found, last["position"]["S"], True)
