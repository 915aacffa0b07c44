"""Sends one webhook job: the endpoint's current target re-checked, the body signed, 2xx or a retry.

The retry schedule gives the wait before each next attempt; after the last one the job is dropped.
An endpoint that has kept failing for ``disable_after_days`` is disabled (its jobs are then dropped), and
a ``webhook.disabled`` event goes to the event bus.

Each post holds one of the endpoint's slots (``WebhookSettings.endpoint_slots``, shared by every running
webhook function): with all of them held, the job is put back on the queue for later, without posting
and without counting an attempt, so a slow endpoint occupies at most that many functions at a time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pydantic import ValidationError

from mailrelay.ports import (
    AddressResolver,
    EndpointSlots,
    EnvelopeBus,
    OutgoingMessage,
    PostResult,
    StorageError,
    WebhookPoster,
    WebhookStore,
)
from mailrelay.webhooks.jobs import WebhookJob
from mailrelay.webhooks.model import DeliveryAttempt, Endpoint, disabled_event
from mailrelay.webhooks.settings import WebhookSettings
from mailrelay.webhooks.signing import signed_headers
from mailrelay.webhooks.targets import UnsafeTarget, resolve_target

logger = logging.getLogger(__name__)
_HOLD_ROOM_SECONDS = 5


@dataclass(frozen=True)
class SendOutcome:
    """``retry_in``: seconds until the next attempt (None: the job is done, delivered or given up).
    ``requeue``: the job to queue again, with that delay, in place of this record (busy)."""

    result: str  # delivered | retry | gave_up | dropped | busy
    retry_in: int | None = None
    status: int | None = None
    error: str | None = None
    requeue: OutgoingMessage | None = None


class WebhookSender:
    def __init__(
        self, settings: WebhookSettings, store: WebhookStore, resolve: AddressResolver, poster: WebhookPoster,
        clock: Callable[[], datetime], *, slots: EndpointSlots, bus: EnvelopeBus, holder: str,
    ) -> None:  # fmt: skip
        self.settings = settings
        self.store = store
        self.resolve = resolve
        self.poster = poster
        self.clock = clock
        self.slots = slots
        self.bus = bus  # webhook.disabled
        self.holder = holder  # this function's name on the slots it holds

    def send(self, body: str, attempt: int) -> SendOutcome:
        """``attempt``: 1 for the first try of this record, 2 for its first retry, ... (a job put back
        when its endpoint was busy counts on from the attempts it carries)."""
        try:
            job = WebhookJob.model_validate_json(body)
        except ValidationError:
            logger.error("not a webhook job; dropped")
            return SendOutcome("dropped", error="not a webhook job")
        endpoint = self.store.get(job.client_id, job.endpoint_id)
        if endpoint is None or endpoint.state != "active":
            return SendOutcome("dropped", error="the endpoint is gone or disabled")
        attempt += job.attempts_before
        now = self.clock()
        # Held no longer than one post can last (its timeout) and some room: a function that dies frees it so.
        until = now + timedelta(seconds=self.settings.timeout_seconds + _HOLD_ROOM_SECONDS)
        slot = self.slots.acquire(
            endpoint.client_id, endpoint.id, self.settings.endpoint_slots, self.holder, now, until
        )
        if slot is None:
            later = job.model_copy(update={"attempts_before": attempt - 1})
            wait = self.settings.busy_retry_seconds
            return SendOutcome("busy", retry_in=wait, requeue=replace(later.message(), delay_seconds=wait))
        try:
            return self._send(endpoint, job, attempt, now)
        finally:
            try:
                self.slots.release(endpoint.client_id, endpoint.id, slot, self.holder)
            except StorageError as exc:  # the hold expires by itself
                logger.warning(
                    "could not free the endpoint's slot", extra={"endpoint_id": endpoint.id, "error": str(exc)}
                )

    def _send(self, endpoint: Endpoint, job: WebhookJob, attempt: int, now: datetime) -> SendOutcome:
        payload = json.dumps(job.event, separators=(",", ":")).encode()
        headers = {"content-type": "application/json", "user-agent": "mailrelay-webhooks/1"}
        headers |= signed_headers(endpoint.signing_secrets(now), str(job.event["id"]), int(now.timestamp()), payload)
        try:
            target = resolve_target(endpoint.url, self.resolve, allow_loopback_http=self.settings.allow_loopback_http)
        except UnsafeTarget as exc:
            result = PostResult(None, 0.0, f"refused: {exc}")
        else:
            result = self.poster.post(target, headers, payload, self.settings.timeout_seconds)
        logger.info(
            "webhook attempt",
            extra={"endpoint_id": endpoint.id, "event_id": job.event["id"], "attempt": attempt,
                   "status": result.status, "seconds": round(result.seconds, 3), "error": result.error},
        )  # fmt: skip
        outcome = self._decide(endpoint, result, attempt, now)
        self._log(endpoint, job, attempt, now, result, outcome)
        return outcome

    def _decide(self, endpoint: Endpoint, result: PostResult, attempt: int, now: datetime) -> SendOutcome:
        if result.status is not None and 200 <= result.status < 300:
            if endpoint.failing_since is not None:
                self.store.save(endpoint.model_copy(update={"failing_since": None}))
            return SendOutcome("delivered", status=result.status)
        error = result.error or f"HTTP {result.status}"
        failing_since = endpoint.failing_since or now
        if now - failing_since >= timedelta(days=self.settings.disable_after_days):
            # The event first: if the save then fails, the next failure disables it again and puts the same id.
            self.bus.put([disabled_event(endpoint, failing_since, now, error)])
            self.store.save(endpoint.model_copy(update={"state": "disabled", "failing_since": failing_since}))
            logger.warning("webhook endpoint disabled after failing too long", extra={"endpoint_id": endpoint.id})
            return SendOutcome("gave_up", status=result.status, error=error)
        if endpoint.failing_since is None:
            self.store.save(endpoint.model_copy(update={"failing_since": now}))
        schedule = self.settings.retry_schedule
        if attempt >= len(schedule):
            return SendOutcome("gave_up", status=result.status, error=error)
        return SendOutcome("retry", retry_in=schedule[attempt], status=result.status, error=error)

    def _log(
        self, endpoint: Endpoint, job: WebhookJob, attempt: int, now: datetime, result: PostResult, outcome: SendOutcome
    ) -> None:
        entry = DeliveryAttempt(
            event_id=str(job.event["id"]), event_type=str(job.event.get("type", "")), attempt=attempt, at=now,
            status_code=result.status, latency_ms=round(result.seconds * 1000), error=result.error,
            result=outcome.result,
        )  # fmt: skip
        try:
            self.store.record_attempt(endpoint.client_id, endpoint.id, entry)
        except StorageError as exc:  # the log is for people; the delivery itself is decided
            logger.warning("could not log the webhook attempt", extra={"endpoint_id": endpoint.id, "error": str(exc)})
