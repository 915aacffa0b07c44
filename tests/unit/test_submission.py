"""The submission path on in-memory ports: what is written when a message is accepted, and that nothing
is left behind when it is not."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from mailrelay.clients import ClientService, hash_key
from mailrelay.compose import from_smtp
from mailrelay.errors import InvalidRequest, SenderNotAllowed, TemporarilyUnavailable, Unauthenticated
from mailrelay.incoming import whole_message
from mailrelay.models.client import Client
from mailrelay.ports import StorageError
from mailrelay.settings import Settings
from mailrelay.submission import SubmissionService
from mailrelay.uploads import UploadService, upload_key
from tests.unit.fakes import MemoryClients, MemoryPayloads, MemoryQueue, MemoryStatuses, MemoryUploads

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
CLIENT = Client(id="shop", allowed_from=("example.com",), created_at=NOW)
MESSAGE = b"From: App <app@example.com>\r\nTo: a@example.net\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture
def ports() -> tuple[MemoryQueue, MemoryPayloads, MemoryStatuses]:
    return MemoryQueue(), MemoryPayloads(), MemoryStatuses()


def service(ports, **settings) -> SubmissionService:
    queue, payloads, statuses = ports
    return SubmissionService(Settings.model_validate(settings), queue, payloads, statuses, clock=lambda: NOW)


def submission(data: bytes = MESSAGE, mail_from: str = "app@example.com", rcpt: tuple[str, ...] = ("a@example.net",)):
    message = whole_message(data, bare_newlines="reject", max_bytes=Settings().max_message_bytes)
    return from_smtp(mail_from=mail_from, rcpt_to=list(rcpt), data=message, settings=Settings(), now=NOW,
                     smtputf8=False)  # fmt: skip


def test_an_accepted_message_is_recorded_and_queued_with_its_envelope_as_checked(ports) -> None:
    queue, payloads, statuses = ports
    accepted = service(ports).submit(CLIENT, submission(mail_from="app@EXAMPLE.com", rcpt=("a@example.net",) * 2))
    (sent,) = queue.sent
    body = json.loads(sent.body)
    assert body["id"] == accepted.id == sent.id
    assert body["mail_from"] == "app@example.com"
    assert body["rcpt_to"] == ["a@example.net"]  # the same recipient once
    assert base64.b64decode(body["payload"]["data"]).endswith(MESSAGE)
    assert statuses.records[accepted.id].state == "queued"
    assert payloads.objects == {}


def test_a_large_message_goes_to_the_payload_store(ports) -> None:
    queue, payloads, _ = ports
    big = MESSAGE + b"x" * 998 + b"\r\n"
    accepted = service(ports, MAILRELAY_INLINE_PAYLOAD_MAX_BYTES=100).submit(CLIENT, submission(big))
    assert list(payloads.objects) == [f"messages/{accepted.id}.eml"]
    assert json.loads(queue.sent[0].body)["payload"]["kind"] == "s3"


@pytest.mark.parametrize("failing", ["queue", "statuses", "payloads"])
def test_a_failed_write_leaves_nothing_and_asks_for_a_retry(ports, failing) -> None:
    queue, payloads, statuses = ports
    {"queue": queue, "statuses": statuses, "payloads": payloads}[failing].down = True
    big = MESSAGE + b"x" * 998 + b"\r\n"
    with pytest.raises(TemporarilyUnavailable):
        service(ports, MAILRELAY_INLINE_PAYLOAD_MAX_BYTES=100).submit(CLIENT, submission(big))
    assert (queue.sent, payloads.objects, statuses.records) == ([], {}, {})


@pytest.mark.parametrize(
    ("data", "mail_from", "error"),
    [
        (MESSAGE, "ceo@victim.example", SenderNotAllowed),
        (MESSAGE.replace(b"App <app@example.com>", b"CEO <ceo@victim.example>"), "app@example.com", SenderNotAllowed),
        (b"Resent-From: ceo@victim.example\r\n" + MESSAGE, "app@example.com", SenderNotAllowed),
    ],
)
def test_a_sender_the_client_may_not_use_changes_nothing(ports, data, mail_from, error) -> None:
    queue, _, statuses = ports
    with pytest.raises(error):
        service(ports).submit(CLIENT, submission(data, mail_from=mail_from))
    assert (queue.sent, statuses.records) == ([], {})


def test_a_batch_item_whose_queue_entry_fails_is_rolled_back_alone(ports) -> None:
    queue, _, statuses = ports
    subs = [submission() for _ in range(3)]
    queue.fail_ids = {subs[1].message_id}
    results = service(ports).submit_batch(CLIENT, list(subs))
    assert [type(r).__name__ for r in results] == ["Accepted", "TemporarilyUnavailable", "Accepted"]
    assert sorted(statuses.records) == sorted([subs[0].message_id, subs[2].message_id])


def test_a_batch_stores_items_concurrently_and_answers_each_in_order(ports) -> None:
    # Given a batch larger than the number of items stored at once, one of whose status writes fails
    from mailrelay.submission import BATCH_STORE_CONCURRENCY

    queue, _, statuses = ports
    subs = [submission() for _ in range(BATCH_STORE_CONCURRENCY * 2 + 3)]
    failing = subs[5].message_id
    real_create = statuses.create

    def create(status):
        if status.id == failing:
            raise StorageError("status write failed")
        real_create(status)

    statuses.create = create
    # When it is submitted
    results = service(ports).submit_batch(CLIENT, [InvalidRequest.at("x", "refused"), *subs])
    # Then every answer is in the caller's order, and the failed item has neither status nor queue message
    assert isinstance(results[0], InvalidRequest)
    assert [getattr(r, "id", None) for r in results[1:6]] == [s.message_id for s in subs[:5]]
    assert isinstance(results[6], TemporarilyUnavailable)
    assert [r.id for r in results[7:]] == [s.message_id for s in subs[6:]]
    queued = {m.id for m in queue.sent}
    assert failing not in queued and failing not in statuses.records
    assert queued == {s.message_id for s in subs} - {failing} == set(statuses.records)


def test_a_key_works_until_it_is_revoked() -> None:
    clients = ClientService(MemoryClients())
    client, key = clients.create("shop", ["example.com"])
    assert clients.authenticate(key) == client
    assert clients.reauthenticate("shop", hash_key(key)) == client
    clients.store.revoke("shop")
    with pytest.raises(Unauthenticated):
        clients.reauthenticate("shop", hash_key(key))
    with pytest.raises(Unauthenticated):
        clients.authenticate(key)


@pytest.mark.parametrize(
    ("stored", "error"),
    [(None, "no such upload"), ((b"x" * 5, 4), "holds 5 bytes, not the 4 declared")],
)
def test_an_upload_must_be_present_and_as_declared(stored, error) -> None:
    store = MemoryUploads()
    uploads = UploadService(store, max_bytes=100, clock=lambda: NOW)
    upload_id = "upl_" + "a" * 32
    if stored is not None:
        store.objects[upload_key("shop", upload_id)] = stored
    with pytest.raises(InvalidRequest, match=error):
        uploads.fetch("shop", upload_id, "attachments[0].upload_id")


def test_an_upload_is_found_only_under_its_own_client() -> None:
    store = MemoryUploads()
    uploads = UploadService(store, max_bytes=100, clock=lambda: NOW)
    upload_id = "upl_" + "b" * 32
    store.objects[upload_key("other", upload_id)] = (b"data", 4)
    assert uploads.fetch("other", upload_id, "f") == b"data"
    with pytest.raises(InvalidRequest, match="no such upload"):
        uploads.fetch("shop", upload_id, "f")
