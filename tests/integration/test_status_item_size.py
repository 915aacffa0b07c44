"""A message's status record is one DynamoDB item, and DynamoDB refuses items over 400 KB. The largest
message the configuration allows, every recipient failing with the longest reply, still records its outcome.

moto may not enforce the limit, so these tests do: every PutItem is measured the way DynamoDB documents
("DynamoDB item sizes and formats": attribute names plus values; a number takes about one byte per two
significant digits plus one; a list or map 3 bytes plus one per element) and refused above 400 KB.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError

from mailrelay.addresses import parse_address
from mailrelay.delivery.replies import reply_from
from mailrelay.models.status import MessageStatus, RecipientStatus
from mailrelay.settings import MAX_RECIPIENTS_CEILING, ConfigurationError, settings_from

MAX_ITEM_BYTES = 400 * 1024


def value_size(value: dict[str, Any]) -> int:
    ((kind, data),) = value.items()
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        digits = data.lstrip("-").replace(".", "").lstrip("0") or "0"
        return math.ceil(len(digits) / 2) + 1
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in data.items())
    if kind == "L":
        return 3 + sum(value_size(v) + 1 for v in data)
    if kind in ("SS", "NS", "BS"):
        return sum(value_size({kind[0]: v}) for v in data)
    raise AssertionError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


@pytest.fixture
def strict_dynamodb(services):
    """The status store's client, refusing items over 400 KB as DynamoDB does; yields the sizes written."""
    client = services.statuses._client()
    sizes: list[int] = []

    def refuse_large(params: dict[str, Any], **kwargs: Any) -> None:
        size = item_size(params["Item"])
        sizes.append(size)
        if size > MAX_ITEM_BYTES:
            error = {"Code": "ValidationException", "Message": "Item size has exceeded the maximum allowed size"}
            raise ClientError({"Error": error}, "PutItem")

    client.meta.events.register("provide-client-params.dynamodb.PutItem", refuse_large)
    yield sizes
    client.meta.events.unregister("provide-client-params.dynamodb.PutItem", refuse_large)


def longest_address(i: int) -> str:
    local = f"r{i:03d}" + "x" * 60  # 64 octets, the most RFC 5321 allows
    domain = ".".join(["d" * 63, "e" * 63, "f" * 57]) + ".org"  # 189 octets; the address is 254 in all
    return parse_address(f"{local}@{domain}", "to").smtp


def largest_status(now: datetime) -> MessageStatus:
    return MessageStatus(
        id="0" * 32, client_id="c" * 64, state="queued", mail_from=longest_address(999),
        recipients=[RecipientStatus(address=longest_address(i)) for i in range(MAX_RECIPIENTS_CEILING)],
        size=10_000_000, sha256="a" * 64, created_at=now, updated_at=now, expires_at=now + timedelta(days=5),
        tags={f"t{i:02d}" + "n" * 125: "v" * 256 for i in range(50)},
        metadata={f"m{i:02d}" + "k" * 61: "w" * 1024 for i in range(50)},
    )  # fmt: skip


def test_the_stand_in_now_refuses_an_item_over_400_kb(services, strict_dynamodb):
    now = datetime.now(UTC)
    status = largest_status(now).model_copy(update={"last_error": "x" * MAX_ITEM_BYTES})
    with pytest.raises(Exception, match="DynamoDB PutItem failed"):
        services.statuses.create(status)
    assert strict_dynamodb[-1] > MAX_ITEM_BYTES


def test_the_largest_message_records_every_recipients_longest_reply(services, strict_dynamodb):
    now = datetime.now(UTC)
    status = largest_status(now)
    services.statuses.create(status)
    lease = services.statuses.acquire_lease(status.id, "worker-1", now, now + timedelta(minutes=5))
    assert type(lease).__name__ == "Leased"
    # every recipient refused with an upstream's longest, most verbose reply (kept to its first 512 characters)
    reply = reply_from(550, "5.7.1 " + "policy rejection with a very long explanation " * 60)
    failed = [r.model_copy(update={"state": "failed", "reply": reply, "updated_at": now}) for r in status.recipients]
    final = status.model_copy(update={"state": "failed", "recipients": failed, "attempts": 1, "completed_at": now,
                                      "last_error": f"550 {reply.text}", "upstream": "u" * 253})  # fmt: skip
    services.statuses.release_lease(final, "worker-1")
    stored = services.statuses.get(status.id)
    assert stored is not None and stored.state == "failed"
    assert all(r.reply == reply for r in stored.recipients)
    assert len(reply.text) == 512
    assert max(strict_dynamodb) < MAX_ITEM_BYTES, f"{max(strict_dynamodb)} bytes"


def test_more_recipients_than_an_item_can_hold_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="MAILRELAY_MAX_RECIPIENTS"):
        settings_from({"MAILRELAY_MAX_RECIPIENTS": str(MAX_RECIPIENTS_CEILING + 1)})
