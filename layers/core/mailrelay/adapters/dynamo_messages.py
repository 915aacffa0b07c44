"""Message status records in DynamoDB (one item per message, expiring by TTL).

Delivery takes a lease (owner + expiry) on a record before it sends, with a conditional write, so
that of two receivers of the same queue record only one sends; the lease attributes live only in
DynamoDB (MessageStatus ignores them) and a final record can never be leased again.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mailrelay.adapters.aws import aws_call, lazy
from mailrelay.adapters.dynamo import from_item, to_item
from mailrelay.models.status import CANCELLABLE_STATES, FINAL_MESSAGE_STATES, MessageStatus
from mailrelay.ports import (
    AlreadyFinal,
    Cancelled,
    CancelResult,
    HistoryFilter,
    HistoryPage,
    Leased,
    LeaseHeld,
    LeaseLost,
    LeaseResult,
    NoStatus,
    NotCancellable,
    StorageError,
)
from mailrelay.positions import position_of

HISTORY_INDEX = "ByClient"  # template.yaml, MessagesTable
# An upstream's message id -> ours: one small item per id in the same table, keyed by this prefix and the id
# (a message sent over several attempts has several ids, which one indexed attribute could not hold).
PROVIDER_ID_PREFIX = "provider-message#"


def is_provider_link(item: dict[str, Any]) -> bool:
    """An item (DynamoDB's typed JSON) that links an upstream's message id to ours, not a status record."""
    return str(item.get("id", {}).get("S", "")).startswith(PROVIDER_ID_PREFIX)


# Items one history request may read before answering with fewer (and a cursor to go on).
HISTORY_READ_BUDGET = 1000

if TYPE_CHECKING:
    from botocore.exceptions import ClientError


# MessageStatus.is_final, as a condition: a final state, or an at-most-once send whose outcome is unknown.
_FINAL_VALUES = {f":final_{state}": {"S": state} for state in sorted(FINAL_MESSAGE_STATES)}
_NOT_FINAL = (
    f"attribute_exists(id) AND NOT (#s IN ({', '.join(_FINAL_VALUES)}))"
    " AND NOT (#s = :uncertain AND #mode = :at_most_once)"
)
_NOT_LEASED = "(attribute_not_exists(lease_until) OR lease_until < :now_ts)"


def _conditional_failure(exc: StorageError) -> ClientError | None:
    from botocore.exceptions import ClientError  # loaded by then: the error came from a client call

    cause = exc.__cause__
    if isinstance(cause, ClientError) and cause.response["Error"]["Code"] == "ConditionalCheckFailedException":
        return cause
    return None


class DynamoStatusStore:
    def __init__(self, table: str, ttl_days: int = 30, client: Any | None = None) -> None:
        self.table = table
        self.ttl = timedelta(days=ttl_days)
        self._client = lazy("dynamodb", client)

    def _item(self, status: MessageStatus) -> dict[str, Any]:
        data = status.model_dump(mode="json")
        data["ttl"] = int((status.expires_at + self.ttl).timestamp())
        # The history index (ByClient: client_id, listed_at) and its recipient filter.
        data["listed_at"] = position_of(status.created_at, status.id)
        data["rcpt"] = [r.address.lower() for r in status.recipients]  # searched without regard to case
        return to_item(data)

    def create(self, status: MessageStatus) -> None:
        with aws_call("DynamoDB PutItem"):
            self._client().put_item(
                TableName=self.table, Item=self._item(status), ConditionExpression="attribute_not_exists(id)"
            )

    def put(self, status: MessageStatus) -> None:
        with aws_call("DynamoDB PutItem"):
            self._client().put_item(TableName=self.table, Item=self._item(status))

    def replace(self, status: MessageStatus, expected_updated_at: datetime) -> bool:
        try:
            with aws_call("DynamoDB PutItem"):
                self._client().put_item(
                    TableName=self.table, Item=self._item(status), ConditionExpression="updated_at IN (:z, :offset)",
                    # written as pydantic writes it ("Z") or as the conditional updates do ("+00:00")
                    ExpressionAttributeValues={":z": {"S": expected_updated_at.isoformat().replace("+00:00", "Z")},
                                               ":offset": {"S": expected_updated_at.isoformat()}},
                )  # fmt: skip
        except StorageError as exc:
            if _conditional_failure(exc) is not None:
                return False
            raise
        return True

    def _get_item(self, message_id: str) -> dict[str, Any] | None:
        with aws_call("DynamoDB GetItem"):
            item = (
                self._client()
                .get_item(TableName=self.table, Key={"id": {"S": message_id}}, ConsistentRead=True)
                .get("Item")
            )
        return from_item(item) if item else None

    def get(self, message_id: str) -> MessageStatus | None:
        data = self._get_item(message_id)
        return MessageStatus.model_validate(data) if data else None

    def delete(self, message_id: str) -> None:
        with aws_call("DynamoDB DeleteItem"):
            self._client().delete_item(TableName=self.table, Key={"id": {"S": message_id}})

    # -- history and cancel ---------------------------------------------------------------------

    def history(self, client_id: str, *, lower: str, upper: str, matching: HistoryFilter, limit: int) -> HistoryPage:
        """Query the client's partition of the history index, newest first; a filter is applied after
        DynamoDB reads a page, so the read may stop (after HISTORY_READ_BUDGET items) with fewer."""
        names = {"#c": "client_id", "#p": "listed_at"}
        values: dict[str, Any] = {":c": {"S": client_id}, ":lo": {"S": lower}, ":hi": {"S": upper}}
        filters = []
        if matching.states:
            keys = [f":s{i}" for i in range(len(matching.states))]
            values.update({k: {"S": s} for k, s in zip(keys, sorted(matching.states), strict=True)})
            names["#s"] = "state"
            filters.append(f"#s IN ({', '.join(keys)})")
        if matching.recipient:
            values[":r"] = {"S": matching.recipient}
            filters.append("contains(rcpt, :r)")
        if matching.tag:
            names.update({"#t": "tags", "#tn": matching.tag[0]})
            values[":tv"] = {"S": matching.tag[1]}
            filters.append("#t.#tn = :tv")
        request: dict[str, Any] = {
            "TableName": self.table, "IndexName": HISTORY_INDEX, "ScanIndexForward": False,
            "KeyConditionExpression": "#c = :c AND #p BETWEEN :lo AND :hi",
            "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
        }  # fmt: skip
        if filters:
            request["FilterExpression"] = " AND ".join(filters)
        found: list[MessageStatus] = []
        read = 0
        while True:
            request["Limit"] = min(max(limit - len(found), 10), HISTORY_READ_BUDGET - read)
            with aws_call("DynamoDB Query"):
                response = self._client().query(**request)
            read += response.get("ScannedCount", 0)
            for item in response.get("Items", []):
                data = from_item(item)
                if data["listed_at"] != upper:  # the upper bound is exclusive
                    found.append(MessageStatus.model_validate(data))
            last = response.get("LastEvaluatedKey")
            if len(found) >= limit or last is None:
                return HistoryPage(found[:limit], None)
            if read >= HISTORY_READ_BUDGET:
                return HistoryPage(found, last["listed_at"]["S"])
            request["ExclusiveStartKey"] = last

    def cancel(self, message_id: str, client_id: str, now: datetime) -> CancelResult:
        """One conditional write: the delivery lease is taken the same way, so of a cancel and a send
        that start together exactly one wins, and a cancelled record is never leased."""
        allowed = {f":may_{state}": {"S": state} for state in sorted(CANCELLABLE_STATES)}
        written, data = self._update_if(
            message_id,
            UpdateExpression="SET #s = :cancelled, updated_at = :now, completed_at = :now",
            ConditionExpression=f"client_id = :client AND #s IN ({', '.join(allowed)})",
            ExpressionAttributeNames={"#s": "state"},
            ExpressionAttributeValues={
                ":cancelled": {"S": "cancelled"}, ":now": {"S": now.isoformat()}, ":client": {"S": client_id},
                **allowed,
            },
            ReturnValues="ALL_NEW",
        )  # fmt: skip
        if written and data is not None:
            return Cancelled(MessageStatus.model_validate(data))
        if data is None or data.get("client_id") != client_id:
            return NoStatus()
        return NotCancellable(str(data["state"]))

    def _update_if(self, message_id: str, **request: Any) -> tuple[bool, dict[str, Any] | None]:
        """A conditional UpdateItem: (True, the attributes it returned), or (False, the item as it was,
        None when there is none) when the condition failed."""
        try:
            with aws_call("DynamoDB UpdateItem"):
                response = self._client().update_item(
                    TableName=self.table, Key={"id": {"S": message_id}},
                    ReturnValuesOnConditionCheckFailure="ALL_OLD", **request,
                )  # fmt: skip
        except StorageError as exc:
            refused = _conditional_failure(exc)
            if refused is None:
                raise
            item: Any = refused.response.get("Item")  # sent with ReturnValuesOnConditionCheckFailure
            return False, (from_item(item) if item else None)
        return True, from_item(response["Attributes"])

    # -- delivery lease -------------------------------------------------------------------------

    def acquire_lease(self, message_id: str, owner: str, now: datetime, until: datetime) -> LeaseResult:
        """Mark the message ``sending`` for ``owner`` until ``until``, unless it is final or leased."""
        written, data = self._update_if(
            message_id,
            UpdateExpression="SET lease_owner = :owner, lease_until = :until, #s = :sending, updated_at = :now",
            ConditionExpression=f"{_NOT_FINAL} AND {_NOT_LEASED}",
            ExpressionAttributeNames={"#s": "state", "#mode": "delivery"},
            ExpressionAttributeValues={
                ":owner": {"S": owner}, ":until": {"N": f"{until.timestamp():.3f}"},
                ":now_ts": {"N": f"{now.timestamp():.3f}"}, ":now": {"S": now.isoformat()},
                ":sending": {"S": "sending"}, ":uncertain": {"S": "uncertain"},
                ":at_most_once": {"S": "at_most_once"}, **_FINAL_VALUES,
            },
            ReturnValues="ALL_OLD",
        )  # fmt: skip
        if written and data is not None:
            return Leased(MessageStatus.model_validate(data))
        return self._why_not(data if data is not None else self._get_item(message_id))

    @staticmethod
    def _why_not(data: dict[str, Any] | None) -> LeaseResult:
        if data is None:
            return NoStatus()
        status = MessageStatus.model_validate(data)
        if status.is_final:
            return AlreadyFinal(status)
        return LeaseHeld(datetime.fromtimestamp(float(data.get("lease_until", 0)), UTC))

    def release_lease(self, status: MessageStatus, owner: str) -> None:
        """Write the attempt's result and drop the lease, only while ``owner`` still holds it.

        The upstream's ids for the message are linked first: the message was handed over either way, and
        feedback that names it by such an id must find it once the outcome is visible."""
        self._link_provider_ids(status)
        try:
            with aws_call("DynamoDB PutItem"):
                self._client().put_item(
                    TableName=self.table,
                    Item=self._item(status),
                    ConditionExpression="lease_owner = :owner",
                    ExpressionAttributeValues={":owner": {"S": owner}},
                )
        except StorageError as exc:
            if _conditional_failure(exc) is None:
                raise
            raise LeaseLost(status.id) from None

    # -- the upstream's message ids (feedback names the message by them) -----------------------

    def _link_provider_ids(self, status: MessageStatus) -> None:
        ttl = {"N": str(int((status.expires_at + self.ttl).timestamp()))}
        for provider_id in sorted({r.provider_message_id for r in status.recipients if r.provider_message_id}):
            link = {"id": {"S": PROVIDER_ID_PREFIX + provider_id}, "message_id": {"S": status.id}, "ttl": ttl}
            with aws_call("DynamoDB PutItem"):
                self._client().put_item(TableName=self.table, Item=link)

    def get_by_provider_id(self, provider_message_id: str) -> MessageStatus | None:
        with aws_call("DynamoDB GetItem"):
            link = (
                self._client()
                .get_item(
                    TableName=self.table,
                    Key={"id": {"S": PROVIDER_ID_PREFIX + provider_message_id}},
                    ConsistentRead=True,
                )
                .get("Item")
            )
        return self.get(link["message_id"]["S"]) if link else None
