"""The webhook management API in terms of the core: register (target checked), list, show, remove, rotate
the secret, send a test event."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from mailrelay.errors import InvalidRequest, NotFound
from mailrelay.ports import AddressResolver, Queue, WebhookStore
from mailrelay.webhooks.jobs import WebhookJob
from mailrelay.webhooks.model import ROTATION_OVERLAP, TEST_EVENT, Endpoint, WebhookRequest, new_endpoint_id
from mailrelay.webhooks.settings import WebhookSettings
from mailrelay.webhooks.signing import new_secret
from mailrelay.webhooks.targets import UnsafeTarget, resolve_target


class WebhookManagement:
    def __init__(
        self, settings: WebhookSettings, store: WebhookStore, resolve: AddressResolver, jobs: Queue,
        clock: Callable[[], datetime], invalid: Callable[[ValidationError], InvalidRequest],
    ) -> None:  # fmt: skip
        self.settings = settings
        self.store = store
        self.resolve = resolve
        self.jobs = jobs
        self.clock = clock
        self.invalid = invalid  # the API's one formatter of validation errors

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
