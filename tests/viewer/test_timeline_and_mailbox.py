"""The viewer's pieces without a stack: timelines from successive status readings, and captured files."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from local_stack.viewer.history import StatusHistory
from local_stack.viewer.index import MailIndex
from local_stack.viewer.mailbox import Mailbox
from mailrelay.models.status import MessageStatus, RecipientStatus, SmtpReply

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def status(**changes) -> MessageStatus:
    base = MessageStatus(id="m1", client_id="dev", state="queued", mail_from="app@example.com",
                         recipients=[RecipientStatus(address="a@example.org")], size=10, sha256="0" * 64,
                         created_at=T0, updated_at=T0, expires_at=T0 + timedelta(days=3))  # fmt: skip
    return base.model_copy(update=changes)


def attempted(n: int, state: str, reply: SmtpReply | None, **changes) -> MessageStatus:
    at = T0 + timedelta(seconds=n)
    recipient = RecipientStatus(address="a@example.org", state=state, reply=reply, updated_at=at)
    return status(state=state, attempts=n, updated_at=at, recipients=[recipient], upstream="simulator", **changes)


def test_each_reading_that_changes_the_record_adds_what_happened():
    deferred = SmtpReply(code=451, enhanced="4.3.0", text="4.3.0 try later")
    readings = [
        status(),
        status(state="sending"),  # a lease: nothing to show
        attempted(1, "deferred", deferred, next_attempt_at=T0 + timedelta(seconds=3)),
        attempted(3, "delivered", SmtpReply(code=250, enhanced="2.0.0", text="2.0.0 ok"),
                  completed_at=T0 + timedelta(seconds=3)),  # attempt 2 happened between two readings
    ]  # fmt: skip
    history = StatusHistory(lambda: [readings.pop(0)])
    for _ in range(4):
        history.refresh()
    timeline = history.timeline("m1")
    assert [(t.kind, t.title) for t in timeline] == [
        ("accepted", "Accepted through the HTTP API"),
        ("attempt", "Attempt 1 via simulator"),
        ("attempt", "Attempt 3 via simulator"),
        ("delivered", "Delivered"),
    ]
    assert timeline[1].details[0] == "a@example.org: deferred, 451 4.3.0 try later"
    assert timeline[1].details[-1].startswith("next attempt at")
    assert "(1 earlier attempt not observed)" in timeline[2].details


def test_an_uncertain_attempt_says_why_it_has_no_reply():
    history = StatusHistory(lambda: [attempted(1, "uncertain", None, delivery="at_most_once",
                                               last_error="no reply to the end of data")])  # fmt: skip
    history.refresh()
    (_, attempt, final) = history.timeline("m1")
    assert attempt.details == ("a@example.org: uncertain, no reply", "no reply to the end of data")
    assert final.kind == "uncertain"


def test_captured_files_join_their_status_by_content_and_stray_files_stand_alone(tmp_path):
    raw = (b"From: App <app@example.com>\r\nTo: a@example.org\r\nSubject: Hi\r\n"
           b"Content-Type: text/plain; charset=unknown-8bit\r\n\r\nGr\xfc\xdfe\r\n")  # fmt: skip
    (tmp_path / "20261202T080000-aaaa.eml").write_bytes(raw)
    (tmp_path / "20261202T080001-bbbb.eml").write_bytes(b"Subject: stray\r\n\r\nold mail\r\n")
    (tmp_path / ".20261202T080002-cccc.eml.tmp").write_bytes(b"half a mess")
    known = status(sha256=hashlib.sha256(raw).hexdigest(), state="delivered")
    history = StatusHistory(lambda: [known])
    history.refresh()
    index = MailIndex(Mailbox([tmp_path, tmp_path / "missing"]), history)
    entries = {e.id: e for e in index.entries()}
    assert len(entries) == 2 and entries["m1"].subject == "Hi"
    (stray,) = [e for e in entries.values() if e.id != "m1"]
    assert stray.id.startswith("eml-") and stray.state == "captured" and stray.status is None
    assert entries["m1"].captured.text() == "Gr\ufffd\ufffde\r\n"  # an unknown charset is shown, not a crash
    assert [e.id for e in index.search("state:captured")] == [stray.id]
    assert index.clear(T0 + timedelta(days=1)) == 2
    assert index.entries() == [] and not list(tmp_path.glob("*.eml"))
