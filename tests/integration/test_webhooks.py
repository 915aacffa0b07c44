"""Webhooks end to end over moto: registered through the API, fed by the events function's fan-out, sent by
the real webhook handler (through the local stack's SQS poller, as Lambda's trigger) to a receiver that
verifies every signature with the `standardwebhooks` library."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from standardwebhooks import Webhook

from local_stack.sqs_poller import SqsPoller
from mailrelay.events.settings import get_event_settings
from mailrelay.settings import get_settings
from mailrelay.webhooks.settings import get_webhook_settings
from mailrelay.wiring import Services, build_event_recorder
from tests.events_support import EventsPath
from tests.integration.conftest import Api
from tests.webhook_receiver import WebhookReceiver

MESSAGE = {"from": "app@example.com", "to": ["alice@example.org"], "subject": "Hi", "text": "Hello."}


@pytest.fixture
def services(aws, monkeypatch) -> Services:
    monkeypatch.setenv("MAILRELAY_WEBHOOKS_ALLOW_LOOPBACK_HTTP", "true")  # as the local stack does
    monkeypatch.setenv("MAILRELAY_WEBHOOK_RETRY_SCHEDULE", "0,0,0,0")  # four attempts, retried at once
    monkeypatch.setenv("MAILRELAY_WEBHOOK_TIMEOUT_SECONDS", "0.5")
    get_webhook_settings.cache_clear()
    return Services(get_settings())


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def events(aws, services) -> EventsPath:
    return EventsPath(aws, build_event_recorder(get_event_settings(), get_webhook_settings()))


@pytest.fixture
def webhooks(aws, services) -> SqsPoller:
    from functions.webhooks.app import create_handler
    from mailrelay.wiring import build_webhook_worker

    worker = build_webhook_worker(get_webhook_settings(), get_event_settings().event_bus_name)
    queue = aws.names["WebhookQueue"]
    sqs = boto3.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return SqsPoller(sqs, queue, arn, create_handler(lambda: worker), batch_size=5)


def register(api: Api, key: str, receiver: WebhookReceiver, **extra) -> dict:
    created = api("POST", "/v1/webhooks", {"url": receiver.url, **extra}, key=key)
    assert created.status == 201, created.text
    receiver.secrets.append(created.json()["secret"])
    return created.json()


def drain(webhooks: SqsPoller, rounds: int = 6) -> None:
    for _ in range(rounds):
        if webhooks.poll_once() == 0:
            return


def test_a_messages_events_arrive_signed(api: Api, client_key, receiver, events, webhooks):
    register(api, client_key, receiver)
    sent = api("POST", "/v1/messages", MESSAGE, key=client_key).json()["id"]
    events.drain()
    drain(webhooks)
    assert [(e["type"], e["data"]["message_id"]) for e in receiver.verified] == [("message.accepted", sent)]
    assert receiver.unverified == 0
    assert receiver.ids == [receiver.verified[0]["id"]]


def test_an_endpoint_gets_only_the_types_it_asked_for(api: Api, client_key, receiver, events, webhooks):
    register(api, client_key, receiver, events=["recipient.failed"])
    api("POST", "/v1/messages", MESSAGE, key=client_key)
    events.drain()
    drain(webhooks)
    assert receiver.ids == []


def test_a_503_a_timeout_and_a_dropped_connection_are_retried_with_the_same_id(
    api: Api, client_key, receiver, events, webhooks
):
    register(api, client_key, receiver)
    receiver.behaviour = ["503", "slow:1.5", "drop"]
    api("POST", "/v1/messages", MESSAGE, key=client_key)
    events.drain()
    drain(webhooks)
    # The slow answer came after the sender gave up on it: the receiver saw that delivery twice, same id.
    assert receiver.unverified == 0 and {e["id"] for e in receiver.verified} == {receiver.ids[0]}
    assert len(receiver.ids) == 4 and set(receiver.ids) == {receiver.ids[0]}


def test_signatures_verify_across_a_secret_rotation(api: Api, client_key, receiver, events, webhooks):
    created = register(api, client_key, receiver)
    rotated = api("POST", f"/v1/webhooks/{created['id']}/rotate-secret", key=client_key).json()
    assert rotated["secret"] != created["secret"] and rotated["previous_secret_expires_at"]
    api("POST", "/v1/messages", MESSAGE, key=client_key)
    events.drain()
    drain(webhooks)
    # One delivery carrying both signatures: a receiver that knows either secret accepts it.
    ((body, headers),) = receiver.raw
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (created["secret"], rotated["secret"]):
        assert Webhook(secret).verify(body, headers)["type"] == "message.accepted"


def test_management_and_its_refusals(api: Api, client_key, services, receiver):
    created = register(api, client_key, receiver, description="orders")
    listed = api("GET", "/v1/webhooks", key=client_key).json()["webhooks"]
    assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]
    _, other_key = services.clients.create("other", ["example.com"])
    assert api("GET", f"/v1/webhooks/{created['id']}", key=other_key).status == 404
    assert api("DELETE", f"/v1/webhooks/{created['id']}", key=other_key).status == 404
    refused = api("POST", "/v1/webhooks", {"url": "https://169.254.169.254/latest/meta-data/"}, key=client_key)
    assert refused.status == 422 and refused.json()["errors"][0]["field"] == "url"
    assert "metadata" in refused.json()["errors"][0]["detail"]
    assert api("DELETE", f"/v1/webhooks/{created['id']}", key=client_key).status == 204
    assert api("GET", "/v1/webhooks", key=client_key).json()["webhooks"] == []


def test_a_test_event_is_delivered(api: Api, client_key, receiver, webhooks):
    created = register(api, client_key, receiver)
    queued = api("POST", f"/v1/webhooks/{created['id']}/test", key=client_key)
    assert queued.status == 202
    drain(webhooks)
    assert [(e["type"], e["id"]) for e in receiver.verified] == [("webhook.test", queued.json()["id"])]


def test_replay_sends_stored_events_again_with_their_original_ids(api: Api, client_key, receiver, events, webhooks):
    from datetime import UTC, datetime, timedelta

    created = register(api, client_key, receiver)
    api("POST", "/v1/messages", MESSAGE, key=client_key)
    events.drain()
    drain(webhooks)
    (first,) = receiver.verified
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    replayed = api("POST", f"/v1/webhooks/{created['id']}/replay", {"since": since}, key=client_key)
    assert replayed.status == 202 and replayed.json() == {"queued": 1, "complete": True}
    drain(webhooks)
    assert [e["id"] for e in receiver.verified] == [first["id"], first["id"]]
    bad = api("POST", f"/v1/webhooks/{created['id']}/replay", {"since": "soon"}, key=client_key)
    assert bad.status == 422 and bad.json()["errors"][0]["field"] == "since"


def test_the_deliveries_log_shows_each_attempt(api: Api, client_key, receiver, events, webhooks):
    created = register(api, client_key, receiver)
    receiver.behaviour = ["503"]
    api("POST", "/v1/messages", MESSAGE, key=client_key)
    events.drain()
    drain(webhooks)
    log = api("GET", f"/v1/webhooks/{created['id']}/deliveries", key=client_key).json()["deliveries"]
    assert [(d["attempt"], d["status_code"], d["result"]) for d in log] == [(2, 204, "delivered"), (1, 503, "retry")]
    assert all(d["event_type"] == "message.accepted" and d["latency_ms"] >= 0 for d in log)


class HeldReceiver:
    """Holds every POST to /slow until released (a slow endpoint), answers /fast at once; counts both."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self.posts: Counter[str] = Counter()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    receiver.posts[self.path] += 1
                    receiver.in_flight += self.path == "/slow"
                    receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
                if self.path == "/slow":
                    receiver.release.wait(20)
                    with receiver.lock:
                        receiver.in_flight -= 1
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, in_flight: int) -> None:
        for _ in range(400):
            if self.in_flight == in_flight:
                return
            time.sleep(0.05)
        raise AssertionError(f"{self.in_flight} posts in flight, expected {in_flight}")


def test_a_slow_endpoint_holds_at_most_its_slots_and_the_other_functions_serve_others(aws, services, monkeypatch):
    from functions.webhooks.app import create_handler
    from mailrelay.webhooks.jobs import WebhookJob
    from mailrelay.wiring import WebhookWorker, build_webhook_worker

    monkeypatch.setenv("MAILRELAY_WEBHOOK_MAX_CONCURRENCY", "3")  # the template passes WebhookMaxConcurrency
    monkeypatch.setenv("MAILRELAY_WEBHOOK_BUSY_RETRY_SECONDS", "0")
    monkeypatch.setenv("MAILRELAY_WEBHOOK_TIMEOUT_SECONDS", "25")  # the slow endpoint answers when released
    get_webhook_settings.cache_clear()
    settings = get_webhook_settings()
    assert settings.endpoint_slots == 2
    receiver = HeldReceiver()
    client, _ = services.clients.create("shop", ["example.com"])
    slow = services.webhooks.create(client.id, {"url": f"{receiver.base}/slow"})["id"]
    fast = services.webhooks.create(client.id, {"url": f"{receiver.base}/fast"})["id"]

    def job(endpoint_id: str, n: int) -> WebhookJob:
        event = {"id": f"evt_{n:032d}", "type": "message.accepted", "created_at": "2026-12-02T09:00:00.000Z",
                 "data": {"message_id": "0" * 32, "client_id": client.id}}  # fmt: skip
        return WebhookJob(client_id=client.id, endpoint_id=endpoint_id, event=event)

    # Three webhook functions: two are posting to the slow endpoint and wait for its answer.
    functions = [build_webhook_worker(settings, get_event_settings().event_bus_name) for _ in range(3)]
    outcomes: list[str] = []

    def post(function: WebhookWorker, n: int) -> None:
        outcomes.append(function.sender.send(job(slow, n).message().body, 1).result)

    posting = [threading.Thread(target=post, args=(w, n)) for n, w in enumerate(functions[:2])]
    for thread in posting:
        thread.start()
    receiver.wait_for(in_flight=2)
    # The third function gets a job for the slow endpoint and one for another endpoint, through the queue.
    queue = aws.names["WebhookQueue"]
    sqs = boto3.client("sqs")
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    third = SqsPoller(sqs, queue, arn, create_handler(lambda: functions[2]), batch_size=5)
    for n, endpoint in ((2, slow), (3, fast)):
        sqs.send_message(QueueUrl=queue, MessageBody=job(endpoint, n).message().body)
    third.poll_once()
    assert receiver.posts == {"/slow": 2, "/fast": 1}  # the slow endpoint's third job was not posted
    receiver.release.set()
    for thread in posting:
        thread.join(20)
    assert outcomes == ["delivered", "delivered"]
    third.poll_once()  # the job put back, posted now that a slot is free
    assert receiver.posts == {"/slow": 3, "/fast": 1} and receiver.most_in_flight == 2
    receiver.server.shutdown()


def test_an_endpoint_failing_for_five_days_is_disabled_with_webhook_disabled_on_the_bus(
    aws, services, receiver, events, webhooks
):
    from datetime import UTC, datetime, timedelta

    from mailrelay.adapters.dynamo_webhooks import DynamoWebhookStore

    client, _ = services.clients.create("shop", ["example.com"])
    created = services.webhooks.create(client.id, {"url": receiver.url})
    store = DynamoWebhookStore(get_webhook_settings().webhooks_table)
    endpoint = store.get(client.id, created["id"])
    since = datetime.now(UTC) - timedelta(days=5, minutes=1)
    store.save(endpoint.model_copy(update={"failing_since": since}))  # failing since then
    receiver.behaviour = ["503"]
    services.webhooks.send_test(client.id, created["id"])
    drain(webhooks)
    assert store.get(client.id, created["id"]).state == "disabled"
    (routed,) = events.on_bus()
    assert (routed["source"], routed["detail-type"]) == ("mailrelay", "webhook.disabled")
    assert routed["detail"]["data"]["endpoint_id"] == created["id"] and routed["detail"]["data"]["error"] == "HTTP 503"
    assert datetime.fromisoformat(routed["detail"]["data"]["failing_since"]) == since
    assert receiver.ids and not receiver.verified  # the one attempt failed, and nothing more was sent
