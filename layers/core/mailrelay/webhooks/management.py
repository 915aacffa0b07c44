"""The webhook management API in terms of the core: register (target checked), list, show, remove, rotate
the secret, send a test event."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from mailrelay.errors import InvalidRequest, NotFound
from mailrelay.ports import AddressResolver, EventStore, OutgoingMessage, Queue, StorageError, WebhookStore
from mailrelay.positions import position_bound
from mailrelay.webhooks.jobs import WebhookJob
from mailrelay.webhooks.model import (
    ROTATION_OVERLAP,
    TEST_EVENT,
    Endpoint,
    ReplayRequest,
    WebhookRequest,
    new_endpoint_id,
)
from mailrelay.webhooks.settings import WebhookSettings
from mailrelay.webhooks.signing import new_secret
from mailrelay.webhooks.targets import UnsafeTarget, resolve_target

DELIVERIES_SHOWN = 50
REPLAY_MAX = 1000  # events queued by one replay call


class WebhookManagement:
    def __init__(
        self, settings: WebhookSettings, store: WebhookStore, resolve: AddressResolver, jobs: Queue,
        clock: Callable[[], datetime], invalid: Callable[[ValidationError], InvalidRequest],
        events: EventStore | None = None,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.store = store
        self.resolve = resolve
        self.jobs = jobs
        self.clock = clock
        self.invalid = invalid  # the API's one formatter of validation errors
        self.events = events  # the stored events a replay re-sends

    def create(self, client_id: str, body: Any) -> dict[str, Any]:
        try:
            request = WebhookRequest.model_validate(body)
        except ValidationError as exc:
            raise self.invalid(exc) from None
        try:
            resolve_target(request.url, self.resolve, allow_loopback_http=self.settings.allow_loopback_http)
        except UnsafeTarget as exc:
            raise InvalidRequest.at("url", str(exc)) from None
        if len(self.store.list(client_id)) >= self.settings.max_endpoints_per_client:
            limit = self.settings.max_endpoints_per_client
            raise InvalidRequest.at("url", f"at most {limit} webhook endpoints per client; remove one first")
        endpoint = Endpoint(
            id=new_endpoint_id(), client_id=client_id, url=request.url,
            events=list(dict.fromkeys(request.events)) if request.events else None,
            description=request.description, secret=new_secret(), created_at=self.clock(),
        )  # fmt: skip
        self.store.create(endpoint)
        return endpoint.public_view(with_secret=True)

    def list(self, client_id: str) -> list[dict[str, Any]]:
        return [e.public_view() for e in sorted(self.store.list(client_id), key=lambda e: e.created_at)]

    def get(self, client_id: str, endpoint_id: str) -> dict[str, Any]:
        return self._endpoint(client_id, endpoint_id).public_view()

    def delete(self, client_id: str, endpoint_id: str) -> None:
        if not self.store.delete(client_id, endpoint_id):
            raise NotFound(f"no webhook {endpoint_id!r} for this client")

    def rotate_secret(self, client_id: str, endpoint_id: str) -> dict[str, Any]:
        endpoint = self._endpoint(client_id, endpoint_id)
        now = self.clock()
        overlap_until = now + ROTATION_OVERLAP
        rotated = endpoint.model_copy(
            update={"secret": new_secret(), "previous_secret": endpoint.secret, "previous_secret_until": overlap_until}
        )
        self.store.save(rotated)
        return rotated.public_view(with_secret=True) | {"previous_secret_expires_at": overlap_until.isoformat()}

    def send_test(self, client_id: str, endpoint_id: str) -> dict[str, Any]:
        endpoint = self._endpoint(client_id, endpoint_id)
        now = self.clock()
        event = {
            "id": "evt_" + secrets.token_hex(16), "type": TEST_EVENT,
            "created_at": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "data": {"client_id": client_id, "endpoint_id": endpoint.id},
        }  # fmt: skip
        self.jobs.send(WebhookJob(client_id=client_id, endpoint_id=endpoint.id, event=event).message())
        return {"id": event["id"], "type": TEST_EVENT, "status": "queued"}

    def _endpoint(self, client_id: str, endpoint_id: str) -> Endpoint:
        endpoint = self.store.get(client_id, endpoint_id) if endpoint_id.startswith("wh_") else None
        if endpoint is None:
            raise NotFound(f"no webhook {endpoint_id!r} for this client")
        return endpoint

    def deliveries(self, client_id: str, endpoint_id: str) -> dict[str, Any]:
        endpoint = self._endpoint(client_id, endpoint_id)
        attempts = self.store.attempts(client_id, endpoint.id, DELIVERIES_SHOWN)
        return {"deliveries": [a.model_dump(mode="json") for a in attempts]}

    def replay(self, client_id: str, endpoint_id: str, body: Any) -> dict[str, Any]:
        """Queue the endpoint's stored events recorded in [since, until) again, with their original ids.
        At most REPLAY_MAX per call: ``resume_since`` says where to continue."""
        endpoint = self._endpoint(client_id, endpoint_id)
        try:
            request = ReplayRequest.model_validate(body)
        except ValidationError as exc:
            raise self.invalid(exc) from None
        now = self.clock()
        until = min(request.until or now, now)
        if until <= request.since:
            raise InvalidRequest.at("until", "must be later than since (and since must be in the past)")
        if self.events is None:
            raise NotFound("replay is not configured here")
        after, queued, upper = None, 0, position_bound(until)
        while queued < REPLAY_MAX:
            found = self.events.read(
                client_id, after=after, lower=position_bound(request.since), upper=upper, types=None,
                message_id=None, limit=100,
            )  # fmt: skip
            messages: list[OutgoingMessage] = [
                WebhookJob(client_id=client_id, endpoint_id=endpoint.id, event=s.event.envelope()).message()
                for s in found.events
                if endpoint.events is None or s.event.type in endpoint.events
            ]
            for start in range(0, len(messages), 10):
                outcome = self.jobs.send_batch(messages[start : start + 10])
                if any(error is not None for error in outcome.values()):
                    raise StorageError("the webhook queue refused part of the replay; nothing is lost, retry it")
            queued += len(messages)
            after = found.resume_after or after
            if not found.more:
                return {"queued": queued, "complete": True}
        # Positions start with the time they were recorded: replaying from there again repeats at most a few.
        return {"queued": queued, "complete": False, "resume_since": (after or "").split("#")[0]}
