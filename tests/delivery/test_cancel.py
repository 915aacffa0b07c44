"""POST /v1/messages/{id}/cancel against real delivery: a cancelled message never reaches the upstream,
and a message already delivered (or being sent) cannot be cancelled."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import mailrelay.submission
from mailrelay.ports import Cancelled, NoStatus, NotCancellable


def test_a_cancelled_scheduled_message_never_reaches_the_upstream(delivery, upstream, monkeypatch):
    monkeypatch.setattr(mailrelay.submission, "SQS_MAX_DELAY", 0)  # its queue record is visible at once
    send_at = datetime.now(UTC) + timedelta(hours=1)
    message_id = delivery.submit(send_at=send_at)
    result = delivery.services.statuses.cancel(message_id, "shop", datetime.now(UTC))
    assert isinstance(result, Cancelled) and result.status.state == "cancelled"
    event = delivery.receive()
    delivery.clock.advance(hours=2)  # long past its time
    assert delivery.invoke(event) == []  # the record is consumed, not retried
    assert upstream.recorder.transactions == []
    assert delivery.status(message_id).state == "cancelled"
    assert delivery.visible() == 0 and delivery.in_flight() == 0


def test_a_delivered_message_cannot_be_cancelled(delivery, upstream):
    message_id = delivery.submit()
    assert delivery.invoke(delivery.receive()) == []
    result = delivery.services.statuses.cancel(message_id, "shop", datetime.now(UTC))
    assert result == NotCancellable("delivered")
    assert delivery.status(message_id).state == "delivered"


def test_another_clients_message_is_not_found(delivery, upstream):
    message_id = delivery.submit()
    assert delivery.services.statuses.cancel(message_id, "someone-else", datetime.now(UTC)) == NoStatus()
    assert delivery.status(message_id).state == "queued"
