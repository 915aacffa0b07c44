"""Recording events from committed changes, and reading them back through the feed: oldest first, only the
caller's, with a cursor that resumes exactly where the last page stopped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailrelay.delivery.policy import apply_outcomes
from mailrelay.delivery.replies import RecipientOutcome, reply_from
from mailrelay.errors import InvalidRequest
from mailrelay.events.feed import EventFeed
from mailrelay.events.recorder import EventRecorder
from mailrelay.models.status import MessageStatus, RecipientStatus
from mailrelay.ports import StorageError
from tests.unit.fakes import MemoryBus, MemoryEvents

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=10)
        return self.now


def status(n: int, client: str = "shop") -> MessageStatus:
    return MessageStatus(
        id=f"{n:032x}", client_id=client, state="queued", mail_from="app@example.com",
        recipients=[RecipientStatus(address="a@example.org")], size=1, sha256="0" * 64,
        created_at=T0, updated_at=T0, expires_at=T0 + timedelta(days=1),
    )  # fmt: skip


def delivered(s: MessageStatus) -> MessageStatus:
    leased = s.model_copy(update={"state": "sending"})
    return apply_outcomes(leased, {"a@example.org": RecipientOutcome("delivered", reply_from(250, "ok"))}, None,
                          "primary", T0 + timedelta(minutes=1))  # fmt: skip


@pytest.fixture
def world():
    clock, store, bus = Clock(), MemoryEvents(), MemoryBus()
    recorder = EventRecorder(store, bus, clock)
    feed = EventFeed(store, settle_seconds=0, clock=lambda: clock.now + timedelta(seconds=1))
    return recorder, feed, store, bus, clock


def test_a_change_is_stored_and_published_once_even_when_its_record_comes_twice(world) -> None:
    recorder, _, store, bus, _ = world
    recorder.record(None, status(1))
    recorder.record(None, status(1))  # the stream delivered the same change again
    assert len(store.by_id) == 1
    assert [e.id for e in bus.published] == [next(iter(store.by_id))] * 2  # the bus may repeat, same id


def test_a_failed_publish_fails_the_change_so_it_is_retried(world) -> None:
    recorder, _, store, bus, _ = world
    bus.down = True
    with pytest.raises(StorageError):
        recorder.record(None, status(1))
    bus.down = False
    recorder.record(None, status(1))
    assert len(store.by_id) == 1
    assert len(bus.published) == 1


def test_the_feed_pages_through_a_clients_events_oldest_first(world) -> None:
    recorder, feed, *_ = world
    for n in range(5):
        recorder.record(None, status(n))
    recorder.record(None, status(99, client="other"))
    first = feed.page("shop", {"limit": "3"})
    assert [e["data"]["message_id"] for e in first["events"]] == [f"{n:032x}" for n in range(3)]
    assert first["has_more"] is True
    second = feed.page("shop", {"limit": "3", "cursor": first["next_cursor"]})
    assert [e["data"]["message_id"] for e in second["events"]] == [f"{n:032x}" for n in (3, 4)]
    assert second["has_more"] is False
    assert feed.page("shop", {"limit": "3", "cursor": second["next_cursor"]})["events"] == []


def test_a_cursor_at_the_end_picks_up_events_recorded_later(world) -> None:
    recorder, feed, *_ = world
    recorder.record(None, status(1))
    tail = feed.page("shop", {})
    recorder.record(status(1), delivered(status(1)))
    later = feed.page("shop", {"cursor": tail["next_cursor"]})
    assert [e["type"] for e in later["events"]] == ["recipient.delivered"]


def test_filters_by_type_and_message(world) -> None:
    recorder, feed, *_ = world
    for n in (1, 2):
        recorder.record(None, status(n))
        recorder.record(status(n), delivered(status(n)))
    page = feed.page("shop", {"type": "recipient.delivered", "message_id": f"{2:032x}"})
    assert [(e["type"], e["data"]["message_id"]) for e in page["events"]] == [("recipient.delivered", f"{2:032x}")]


def test_since_skips_older_events(world) -> None:
    recorder, feed, _, _, clock = world
    recorder.record(None, status(1))
    cut = clock.now + timedelta(milliseconds=1)
    recorder.record(None, status(2))
    page = feed.page("shop", {"since": cut.isoformat()})
    assert [e["data"]["message_id"] for e in page["events"]] == [f"{2:032x}"]


def test_events_still_settling_are_not_shown_yet(world) -> None:
    recorder, _, store, _, clock = world
    feed = EventFeed(store, settle_seconds=5, clock=lambda: clock.now)
    recorder.record(None, status(1))
    assert feed.page("shop", {})["events"] == []
    clock.now += timedelta(seconds=6)
    assert len(feed.page("shop", {})["events"]) == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-12-02T09:00:00"}, "since"),  # no time zone
        ({"type": "message.sent"}, "type"),
        ({"message_id": "../other"}, "message_id"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"type": ""}, "type"),
        ({"since": "0.5"}, "since"),  # Unix seconds are not RFC 3339
    ],
)
def test_bad_parameters_are_refused_naming_the_field(world, params, field) -> None:
    _, feed, *_ = world
    with pytest.raises(InvalidRequest) as refused:
        feed.page("shop", params)
    assert [p.field for p in refused.value.problems] == [field]


def test_a_cursor_is_bound_to_the_filters_it_was_issued_for(world) -> None:
    recorder, feed, *_ = world
    recorder.record(None, status(1))
    cursor = feed.page("shop", {"type": "message.accepted"})["next_cursor"]
    with pytest.raises(InvalidRequest) as refused:
        feed.page("shop", {"cursor": cursor})
    assert refused.value.problems[0].field == "cursor"


def test_another_clients_cursor_reads_only_the_callers_events(world) -> None:
    recorder, feed, *_ = world
    recorder.record(None, status(1, client="other"))
    recorder.record(None, status(2))
    cursor = feed.page("other", {})["next_cursor"]
    page = feed.page("shop", {"cursor": cursor})
    assert [e["data"]["client_id"] for e in page["events"]] == ["shop"]
