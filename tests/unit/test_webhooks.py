"""Webhooks on in-memory ports: Standard Webhooks signatures (checked by the `standardwebhooks` library),
secret rotation, refused targets (at registration and again at each connection), and the retry schedule."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from mailrelay.api.problems import from_validation_error
from mailrelay.errors import InvalidRequest, NotFound
from mailrelay.ports import PostResult, StorageError
from mailrelay.webhooks.jobs import WebhookJob
from mailrelay.webhooks.management import WebhookManagement
from mailrelay.webhooks.model import Endpoint
from mailrelay.webhooks.sender import WebhookSender
from mailrelay.webhooks.settings import DEFAULT_RETRY_SCHEDULE, WebhookSettings
from mailrelay.webhooks.signing import new_secret, signed_headers
from mailrelay.webhooks.targets import UnsafeTarget, refusal_for, resolve_target
from tests.unit.fakes import MemoryQueue

PUBLIC = "93.184.216.34"
DNS = {"hooks.example.com": [PUBLIC], "rebind.example.com": [PUBLIC], "sneaky.example.com": ["127.0.0.1"],
       "metadata.example.com": ["169.254.169.254"], "inside.example.com": [PUBLIC, "10.0.0.7"]}  # fmt: skip


def resolve(host: str, port: int) -> list[str]:
    if host not in DNS:
        raise OSError("no such host")
    return DNS[host]


@dataclass
class MemoryWebhooks:
    endpoints: dict[tuple[str, str], Endpoint] = field(default_factory=dict)
    log: dict[tuple[str, str], list] = field(default_factory=dict)

    def create(self, endpoint: Endpoint) -> None:
        self.endpoints[(endpoint.client_id, endpoint.id)] = endpoint

    save = create

    def get(self, client_id: str, endpoint_id: str) -> Endpoint | None:
        return self.endpoints.get((client_id, endpoint_id))

    def list(self, client_id: str) -> list[Endpoint]:
        return [e for (c, _), e in self.endpoints.items() if c == client_id]

    def delete(self, client_id: str, endpoint_id: str) -> bool:
        return self.endpoints.pop((client_id, endpoint_id), None) is not None

    def record_attempt(self, client_id: str, endpoint_id: str, attempt) -> None:
        self.log.setdefault((client_id, endpoint_id), []).insert(0, attempt)

    def attempts(self, client_id: str, endpoint_id: str, limit: int):
        return self.log.get((client_id, endpoint_id), [])[:limit]


@dataclass
class Receiver:
    """What an endpoint answers, and what it was sent."""

    answers: list[PostResult] = field(default_factory=list)
    got: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)

    def post(self, target, headers, body, timeout) -> PostResult:
        self.got.append((target.address, headers, body))
        return self.answers.pop(0) if self.answers else PostResult(200, 0.01)


@dataclass
class MemorySlots:
    """Posting slots per endpoint: slot -> (holder, held until)."""

    held: dict[tuple[str, int], tuple[str, datetime]] = field(default_factory=dict)

    def acquire(self, client_id, endpoint_id, slots, holder, now, until) -> int | None:
        for slot in range(slots):
            current = self.held.get((endpoint_id, slot))
            if current is None or current[1] < now:
                self.held[(endpoint_id, slot)] = (holder, until)
                return slot
        return None

    def release(self, client_id, endpoint_id, slot, holder) -> None:
        if self.held.get((endpoint_id, slot), ("",))[0] == holder:
            del self.held[(endpoint_id, slot)]


@dataclass
class MemoryBus:
    put_envelopes: list[dict] = field(default_factory=list)
    down: bool = False

    def put(self, envelopes: list[dict]) -> None:
        if self.down:
            raise StorageError("PutEvents failed")
        self.put_envelopes += envelopes


class Clock:
    """Starts at the real time when the test starts: verifiers check timestamps against the real clock."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def world():
    store, jobs, clock, receiver = MemoryWebhooks(), MemoryQueue(), Clock(), Receiver()
    settings = WebhookSettings()
    manage = WebhookManagement(settings, store, resolve, jobs, clock, from_validation_error)
    sender = WebhookSender(settings, store, resolve, receiver, clock, slots=MemorySlots(), bus=MemoryBus(), holder="me")
    return manage, sender, store, jobs, clock, receiver


def job_for(endpoint_id: str, event_id: str = "evt_" + "1" * 32) -> str:
    event = {"id": event_id, "type": "recipient.delivered", "created_at": "2026-12-02T12:00:00.000Z",
             "data": {"message_id": "0" * 32, "client_id": "shop", "recipient": "a@example.org"}}  # fmt: skip
    return WebhookJob(client_id="shop", endpoint_id=endpoint_id, event=event).message().body


def test_a_registered_endpoint_gets_a_standard_webhooks_secret(world) -> None:
    manage, *_ = world
    created = manage.create("shop", {"url": "https://hooks.example.com/in", "events": ["recipient.failed"]})
    assert created["id"].startswith("wh_") and created["secret"].startswith("whsec_")
    assert created["events"] == ["recipient.failed"]
    assert "secret" not in manage.get("shop", created["id"])
    with pytest.raises(NotFound):
        manage.get("other", created["id"])


def test_the_signature_verifies_with_the_standardwebhooks_library() -> None:
    secret, body = new_secret(), json.dumps({"id": "evt_1", "type": "message.accepted"}).encode()
    headers = signed_headers([secret], "evt_1", int(datetime.now(UTC).timestamp()), body)
    assert Webhook(secret).verify(body, headers) == {"id": "evt_1", "type": "message.accepted"}
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)


def test_after_a_rotation_both_secrets_verify_for_24_hours_then_only_the_new_one(world) -> None:
    manage, sender, _, _, clock, receiver = world
    created = manage.create("shop", {"url": "https://hooks.example.com/in"})
    rotated = manage.rotate_secret("shop", created["id"])
    assert rotated["secret"] != created["secret"]
    sender.send(job_for(created["id"]), 1)
    _, headers, body = receiver.got[-1]
    for secret in (created["secret"], rotated["secret"]):
        assert Webhook(secret).verify(body, headers)["id"] == "evt_" + "1" * 32
    clock.now += timedelta(hours=24, seconds=1)
    sender.send(job_for(created["id"]), 1)
    _, headers, body = receiver.got[-1]
    headers = {**headers, "webhook-timestamp": str(int(datetime.now(UTC).timestamp()))}  # the library's 5 min window
    with pytest.raises(WebhookVerificationError):
        Webhook(created["secret"]).verify(body, headers)


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("169.254.169.254", "metadata"), ("fd00:ec2::254", "metadata"), ("10.1.2.3", "private"),
        ("172.16.5.4", "private"), ("192.168.0.1", "private"), ("127.0.0.1", "loopback"), ("::1", "loopback"),
        ("169.254.10.10", "link-local"), ("fe80::1", "link-local"), ("100.64.0.1", "carrier-grade"),
        ("::ffff:10.0.0.1", "private"), ("0.0.0.0", "private"),
    ],
)  # fmt: skip
def test_internal_addresses_are_refused(address: str, why: str) -> None:
    assert why in (refusal_for(address) or "")


def test_a_public_address_is_allowed() -> None:
    assert refusal_for(PUBLIC) is None


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://hooks.example.com/in", "https://"),
        ("https://sneaky.example.com/in", "loopback"),  # a name that resolves to loopback
        ("https://metadata.example.com/", "metadata"),
        ("https://inside.example.com/", "private"),  # one of its addresses is private
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://10.0.0.1/", "private"),
        ("https://nowhere.example.com/", "does not resolve"),
        ("https://user:pw@hooks.example.com/", "password"),
        ("ftp://hooks.example.com/", "https://"),
    ],
)
def test_unsafe_urls_are_refused_at_registration_naming_the_url(world, url: str, words: str) -> None:
    manage, *_ = world
    with pytest.raises(InvalidRequest) as refused:
        manage.create("shop", {"url": url})
    assert refused.value.problems[0].field == "url" and words in refused.value.problems[0].detail


def test_plain_http_to_loopback_only_where_the_local_stack_allows_it() -> None:
    with pytest.raises(UnsafeTarget):
        resolve_target("http://127.0.0.1:9000/hook", resolve)
    target = resolve_target("http://127.0.0.1:9000/hook", lambda h, p: ["127.0.0.1"], allow_loopback_http=True)
    assert (target.address, target.port) == ("127.0.0.1", 9000)
    with pytest.raises(UnsafeTarget):  # still not a private address over http
        resolve_target("http://10.0.0.1/hook", lambda h, p: ["10.0.0.1"], allow_loopback_http=True)


def test_the_address_is_checked_again_at_connect_time_against_rebinding(world) -> None:
    manage, sender, _, _, _, receiver = world
    created = manage.create("shop", {"url": "https://rebind.example.com/in"})
    DNS["rebind.example.com"] = ["169.254.169.254"]  # re-pointed after registration
    try:
        outcome = sender.send(job_for(created["id"]), 1)
    finally:
        DNS["rebind.example.com"] = [PUBLIC]
    assert receiver.got == [] and outcome.result == "retry" and "metadata" in (outcome.error or "")
    sender.send(job_for(created["id"]), 2)
    assert receiver.got[0][0] == PUBLIC  # the connection goes to the address that was checked


def test_a_503_and_a_timeout_are_retried_on_the_schedule_then_given_up(world) -> None:
    manage, sender, _, _, _, receiver = world
    created = manage.create("shop", {"url": "https://hooks.example.com/in"})
    receiver.answers = [PostResult(503, 0.1), PostResult(None, 10.0, "timed out")]
    first = sender.send(job_for(created["id"]), 1)
    second = sender.send(job_for(created["id"]), 2)
    assert (first.result, first.retry_in, first.status) == ("retry", DEFAULT_RETRY_SCHEDULE[1], 503)
    assert (second.result, second.retry_in, second.error) == ("retry", DEFAULT_RETRY_SCHEDULE[2], "timed out")
    assert sender.send(job_for(created["id"]), 3).result == "delivered"
    assert {h["webhook-id"] for _, h, _ in receiver.got} == {"evt_" + "1" * 32}  # the same id every time
    receiver.answers = [PostResult(500, 0.1)]
    assert sender.send(job_for(created["id"]), len(DEFAULT_RETRY_SCHEDULE)).result == "gave_up"


def test_an_endpoint_failing_for_five_days_is_disabled(world) -> None:
    manage, sender, store, _, clock, receiver = world
    created = manage.create("shop", {"url": "https://hooks.example.com/in"})
    receiver.answers = [PostResult(500, 0.1), PostResult(500, 0.1)]
    sender.send(job_for(created["id"]), 1)
    clock.now += timedelta(days=5)
    assert sender.send(job_for(created["id"]), 2).result == "gave_up"
    assert store.get("shop", created["id"]).state == "disabled"
    assert sender.send(job_for(created["id"]), 1).result == "dropped"


def test_a_disabled_endpoint_puts_webhook_disabled_on_the_bus_once_by_id(world) -> None:
    manage, sender, store, _, clock, receiver = world
    created = manage.create("shop", {"url": "https://hooks.example.com/in"})
    receiver.answers = [PostResult(500, 0.1)] * 3
    sender.send(job_for(created["id"]), 1)
    assert sender.bus.put_envelopes == []  # failing, not yet for long
    clock.now += timedelta(days=5)
    sender.bus.down = True  # the bus refuses: the endpoint stays active and the job is tried again
    with pytest.raises(StorageError):
        sender.send(job_for(created["id"]), 2)
    assert store.get("shop", created["id"]).state == "active"
    sender.bus.down = False
    assert sender.send(job_for(created["id"]), 3).result == "gave_up"
    (event,) = sender.bus.put_envelopes
    assert event["type"] == "webhook.disabled" and event["id"].startswith("evt_")
    assert event["data"] | {"failing_since": None} == {
        "client_id": "shop", "endpoint_id": created["id"], "url": "https://hooks.example.com/in",
        "state": "disabled", "failing_since": None, "error": "HTTP 500",
    }  # fmt: skip
    assert datetime.fromisoformat(event["data"]["failing_since"]) == clock.now - timedelta(days=5)
    assert store.get("shop", created["id"]).state == "disabled"


def test_a_busy_endpoint_puts_the_job_back_without_posting_or_counting_an_attempt(world) -> None:
    manage, sender, _, _, clock, receiver = world
    created = manage.create("shop", {"url": "https://hooks.example.com/in"})
    other = manage.create("shop", {"url": "https://hooks.example.com/other"})
    slots = sender.settings.endpoint_slots
    for n in range(slots):  # other functions are posting to this endpoint right now
        sender.slots.acquire("shop", created["id"], slots, f"f{n}", clock.now, clock.now + timedelta(seconds=15))
    busy = sender.send(job_for(created["id"]), 3)
    assert busy.result == "busy" and receiver.got == []
    assert busy.requeue is not None and busy.requeue.delay_seconds == sender.settings.busy_retry_seconds
    assert WebhookJob.model_validate_json(busy.requeue.body).attempts_before == 2
    assert sender.send(job_for(other["id"]), 1).result == "delivered"  # other endpoints are not held up
    # The requeued job counts on from its third attempt: a 503 then waits the fourth step of the schedule.
    clock.now += timedelta(seconds=16)  # the holds ran out (those functions died, or finished)
    receiver.answers = [PostResult(503, 0.1)]
    retried = sender.send(busy.requeue.body, 1)
    assert (retried.result, retried.retry_in) == ("retry", DEFAULT_RETRY_SCHEDULE[3])
    assert "me" not in {holder for holder, _ in sender.slots.held.values()}  # every post frees its slot


def test_one_endpoint_never_gets_every_function() -> None:
    assert WebhookSettings().endpoint_slots == 2
    assert WebhookSettings(MAILRELAY_WEBHOOK_MAX_CONCURRENCY=2).endpoint_slots == 1
    assert WebhookSettings(MAILRELAY_WEBHOOK_MAX_CONCURRENCY=3).endpoint_slots == 2
    many = {"MAILRELAY_WEBHOOK_MAX_CONCURRENCY": 50, "MAILRELAY_WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT": 8}
    assert WebhookSettings.model_validate(many).endpoint_slots == 8


def test_a_test_event_is_queued_for_the_endpoint(world) -> None:
    manage, _, _, jobs, *_ = world
    created = manage.create("shop", {"url": "https://hooks.example.com/in"})
    queued = manage.send_test("shop", created["id"])
    (job,) = [WebhookJob.model_validate_json(m.body) for m in jobs.sent]
    assert job.event["type"] == "webhook.test" and job.event["id"] == queued["id"]


def test_bad_bodies_name_the_field(world) -> None:
    manage, *_ = world
    with pytest.raises(InvalidRequest) as refused:
        manage.create("shop", {"url": "https://hooks.example.com/in", "events": ["message.sent"]})
    assert refused.value.problems[0].field.startswith("events")
