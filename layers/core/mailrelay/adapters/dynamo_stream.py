"""A messages-table stream record (NEW_AND_OLD_IMAGES) as the status records before and after the write.

Lambda delivers DynamoDB Streams records with the item images in DynamoDB's typed JSON under
``dynamodb.OldImage`` / ``dynamodb.NewImage`` (absent for an INSERT / a REMOVE):
https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html. The images carry every attribute,
including the lease attributes the status model ignores.
"""

from __future__ import annotations

from typing import Any

from mailrelay.adapters.dynamo import from_item
from mailrelay.adapters.dynamo_messages import is_provider_link
from mailrelay.models.status import MessageStatus


def status_change(record: dict[str, Any]) -> tuple[MessageStatus | None, MessageStatus | None]:
    """(None, None) for the table's other items: the links from an upstream's message id to ours."""
    images = record.get("dynamodb") or {}
    if is_provider_link(images.get("Keys") or {}):
        return None, None
    old, new = images.get("OldImage"), images.get("NewImage")
    return (
        MessageStatus.model_validate(from_item(old)) if old else None,
        MessageStatus.model_validate(from_item(new)) if new else None,
    )
