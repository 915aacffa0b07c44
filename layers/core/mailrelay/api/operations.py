"""What each route does, in terms of the core: authenticate, validate, submit, report."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import unquote

from pydantic import ValidationError

from mailrelay.api.idempotency import IdempotentRunner, check_key
from mailrelay.api.problems import MalformedBody, from_validation_error, prefixed, problem_for
from mailrelay.clients import ClientService, bearer_token
from mailrelay.compose import from_request
from mailrelay.cursors import cursor_key
from mailrelay.errors import (
    Conflict,
    FieldProblem,
    InvalidRequest,
    MailrelayError,
    NotFound,
    RequestTooLarge,
    TemporarilyUnavailable,
)
from mailrelay.events.feed import EventFeed
from mailrelay.history import MessageHistory
from mailrelay.ids import is_message_id
from mailrelay.models.client import Client
from mailrelay.models.send_request import SendRequest
from mailrelay.models.status import MessageStatus
from mailrelay.models.upload import UploadRequest
from mailrelay.ports import (
    Cancellation,
    Cancelled,
    ContentArchive,
    NotCancellable,
    RetainedContent,
    StatusStore,
    StorageError,
)
from mailrelay.settings import Settings
from mailrelay.submission import Accepted, Submission, SubmissionService, utcnow
from mailrelay.suppression.service import SuppressionList, SuppressionRequest
from mailrelay.uploads import UploadService
from mailrelay.webhooks.management import WebhookManagement

MAX_BATCH = 100
# AWS Lambda takes at most 6,291,456 bytes in a synchronous invocation
# (https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html: "For synchronous invocations, the
# maximum payload size is 6 MB"), and API Gateway wraps the body in an event with the request's
# headers and context. Larger bodies never reach this code; those that do, but are over this, get our
# 413. Larger attachments go through POST /v1/uploads.
LAMBDA_INVOKE_LIMIT = 6 * 1024 * 1024
EVENT_ALLOWANCE = 64 * 1024
MAX_REQUEST_BODY = LAMBDA_INVOKE_LIMIT - EVENT_ALLOWANCE
# A response is limited the same way, and API Gateway carries a binary body base64-encoded (4/3 larger):
# content above this is answered with a short-lived link instead (303).
MAX_INLINE_CONTENT = 4 * 1024 * 1024


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


class ApiOperations:
    def __init__(
        self,
        settings: Settings,
        clients: ClientService,
        submissions: SubmissionService,
        statuses: StatusStore,
        idempotency: IdempotentRunner,
        uploads: UploadService,
        history: MessageHistory,
        cancellation: Cancellation,
        archive: ContentArchive,
        events: EventFeed | None = None,
        webhooks: WebhookManagement | None = None,
        suppressions: SuppressionList | None = None,
    ) -> None:
        self.settings = settings
        self.clients = clients
        self.submissions = submissions
        self.statuses = statuses
        self.idempotency = idempotency
        self.uploads = uploads
        self.history = history
        self.cancellation = cancellation
        self.archive = archive
        self.events = events
        self.webhooks = webhooks
        self.suppressions = suppressions

    def authenticate(self, authorization: str | None) -> Client:
        try:
            return self.clients.authenticate(bearer_token(authorization))
        except StorageError as exc:  # a read that failed is temporary: 503, never 500, so the client retries
            raise TemporarilyUnavailable("the client store is unavailable, please retry",
                                         retry_after=self.settings.retry_after_seconds) from exc  # fmt: skip

    def _json(self, body: bytes | None) -> Any:
        if body is not None and len(body) > MAX_REQUEST_BODY:
            raise RequestTooLarge(len(body), MAX_REQUEST_BODY)
        if not body:
            raise MalformedBody.at("body", "a JSON request body is required")
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise MalformedBody.at("body", "the body is not valid JSON") from None

    def _idempotent(self, client: Client, key: str | None, parsed: Any, operation: Any) -> dict[str, Any]:
        if key is None:
            result: dict[str, Any] = operation()
            return result
        fingerprint = hashlib.sha256(json.dumps(parsed, sort_keys=True).encode()).hexdigest()
        return self.idempotency.run(client.id, key, fingerprint, operation)

    def send(self, client: Client, body: bytes | None, idempotency_key: str | None) -> Reply:
        parsed = self._json(body)
        if idempotency_key is not None:
            check_key(idempotency_key)

        def operation() -> dict[str, Any]:
            submission = self._submission(client, parsed, prefix="")
            accepted = self.submissions.submit(client, submission)
            return {"id": accepted.id, "status": accepted.status, "suppressed": list(accepted.suppressed)}

        return Reply(202, self._idempotent(client, idempotency_key, parsed, operation))

    def send_batch(self, client: Client, body: bytes | None, idempotency_key: str | None) -> Reply:
        parsed = self._json(body)
        if idempotency_key is not None:
            check_key(idempotency_key)
        if not isinstance(parsed, dict) or set(parsed) != {"messages"} or not isinstance(parsed["messages"], list):
            raise InvalidRequest.at("messages", 'the body must be {"messages": [...]}')
        items = parsed["messages"]
        if not 1 <= len(items) <= MAX_BATCH:
            raise InvalidRequest.at("messages", f"send between 1 and {MAX_BATCH} messages")

        if idempotency_key is not None:
            return Reply(200, {"results": self._idempotent_items(client, idempotency_key, parsed, items)})
        subs: list[Submission | MailrelayError] = []
        for i, item in enumerate(items):
            try:
                subs.append(self._submission(client, item, prefix=f"messages[{i}]"))
            except MailrelayError as exc:
                subs.append(exc)
        return Reply(200, {"results": [self._item(r) for r in self.submissions.submit_batch(client, subs)]})

    def _idempotent_items(self, client: Client, key: str, parsed: Any, items: list[Any]) -> list[dict[str, Any]]:
        """Each item is idempotent on its own, so a retry with the same key after a partial outage
        queues exactly the items that were not accepted, and returns the first ids for the others.

        The key is first bound to this body (another body with the same key is a conflict); an item
        whose storage failed leaves no record, so only its error is not replayed.
        """
        self._idempotent(client, key, parsed, lambda: {"batch": len(items)})
        results = []
        for i, item in enumerate(items):

            def operation(item: Any = item, prefix: str = f"messages[{i}]") -> dict[str, Any]:
                try:
                    submission = self._submission(client, item, prefix=prefix)
                    return self._item(self.submissions.submit(client, submission))
                except (TemporarilyUnavailable, Conflict):
                    raise  # no record: a retry with this key runs the item again
                except MailrelayError as exc:
                    return self._item(exc)  # a refusal is final: replayed as it is

            try:
                results.append(self._idempotent(client, f"{key}\nmessages[{i}]", item, operation))
            except (TemporarilyUnavailable, Conflict) as exc:
                results.append(self._item(exc))
        return results

    @staticmethod
    def _item(result: Accepted | MailrelayError) -> dict[str, Any]:
        if isinstance(result, Accepted):
            return {"id": result.id, "status": result.status, "suppressed": list(result.suppressed)}
        problem = problem_for(result)
        return {"error": problem.body()}

    def _submission(self, client: Client, data: Any, prefix: str) -> Submission:
        try:
            request = SendRequest.model_validate(data)
        except ValidationError as exc:
            raise from_validation_error(exc, prefix) from None
        try:
            uploads = {
                a.upload_id: self.uploads.fetch(client.id, a.upload_id, f"attachments[{i}].upload_id")
                for i, a in enumerate(request.attachments)
                if a.upload_id is not None
            }
            return from_request(request, self.settings, utcnow(), uploads)
        except StorageError as exc:
            raise TemporarilyUnavailable("the upload store is unavailable, please retry",
                                         retry_after=self.settings.retry_after_seconds) from exc  # fmt: skip
        except InvalidRequest as exc:
            if not prefix:
                raise
            moved = [FieldProblem(prefixed(prefix, p.field), p.detail) for p in exc.problems]
            raise InvalidRequest(exc.detail, moved) from None

    def create_upload(self, client: Client, body: bytes | None) -> Reply:
        parsed = self._json(body)
        try:
            request = UploadRequest.model_validate(parsed)
        except ValidationError as exc:
            raise from_validation_error(exc, "") from None
        try:
            return Reply(201, self.uploads.create(client.id, request))
        except StorageError as exc:
            raise TemporarilyUnavailable("the upload store is unavailable, please retry",
                                         retry_after=self.settings.retry_after_seconds) from exc  # fmt: skip

    def list_messages(self, client: Client, authorization: str | None, params: Mapping[str, str] | None) -> Reply:
        # Cursors are signed with a key derived from the caller's API key (see mailrelay.history).
        token = bearer_token(authorization) or ""  # authenticated already: never empty here
        try:
            return Reply(200, self.history.page(client.id, params, cursor_key("history", token)))
        except StorageError as exc:
            raise TemporarilyUnavailable("the status store is unavailable, please retry",
                                         retry_after=self.settings.retry_after_seconds) from exc  # fmt: skip

    def cancel_message(self, client: Client, message_id: str) -> Reply:
        if not is_message_id(message_id):
            raise NotFound(f"no message {message_id!r} for this client")
        try:
            result = self.cancellation.cancel(message_id, client.id, utcnow())
        except StorageError as exc:
            raise TemporarilyUnavailable("the status store is unavailable, please retry",
                                         retry_after=self.settings.retry_after_seconds) from exc  # fmt: skip
        match result:
            case Cancelled(status):
                return Reply(200, status.public_view())
            case NotCancellable(state):
                raise Conflict(f"the message is {state}: only queued, scheduled or deferred messages can be cancelled")
            case _:
                raise NotFound(f"no message {message_id!r} for this client")

    def message_content(self, client: Client, message_id: str) -> RetainedContent:
        """The accepted message as it was queued, when the client keeps content and it is still kept."""
        status = self._own_status(client, message_id)
        days = status.retain_content_days
        if days <= 0 or utcnow() >= status.created_at + timedelta(days=days):
            raise NotFound(f"the content of message {message_id!r} was not retained"
                           + (f" (kept {days} days)" if days else " (this client keeps no content)"))  # fmt: skip
        try:
            found = self.archive.fetch(client.id, message_id, days, MAX_INLINE_CONTENT)
        except StorageError as exc:
            raise TemporarilyUnavailable("the content store is unavailable, please retry",
                                         retry_after=self.settings.retry_after_seconds) from exc  # fmt: skip
        if found is None:
            raise NotFound(f"the content of message {message_id!r} was not retained (kept {days} days)")
        return found

    def _own_status(self, client: Client, message_id: str) -> MessageStatus:
        try:
            status = self.statuses.get(message_id) if is_message_id(message_id) else None
        except StorageError as exc:
            raise TemporarilyUnavailable("the status store is unavailable, please retry",
                                         retry_after=self.settings.retry_after_seconds) from exc  # fmt: skip
        if status is None or status.client_id != client.id:
            raise NotFound(f"no message {message_id!r} for this client")
        return status

    def get_message(self, client: Client, message_id: str) -> Reply:
        return Reply(200, self._own_status(client, message_id).public_view())

    def list_events(self, client: Client, params: Mapping[str, str] | None) -> Reply:
        if self.events is None:
            raise NotFound("the events feed is not configured here")
        try:
            return Reply(200, self.events.page(client.id, params))
        except StorageError as exc:
            raise TemporarilyUnavailable("the event store is unavailable, please retry",
                                         retry_after=self.settings.retry_after_seconds) from exc  # fmt: skip

    def _webhooks(self, operation: Callable[[WebhookManagement], Any]) -> Any:
        if self.webhooks is None:
            raise NotFound("webhooks are not configured here")
        try:
            return operation(self.webhooks)
        except StorageError as exc:
            raise TemporarilyUnavailable("the webhook store is unavailable, please retry",
                                         retry_after=self.settings.retry_after_seconds) from exc  # fmt: skip

    def create_webhook(self, client: Client, body: bytes | None) -> Reply:
        parsed = self._json(body)
        return Reply(201, self._webhooks(lambda w: w.create(client.id, parsed)))

    def list_webhooks(self, client: Client) -> Reply:
        return Reply(200, {"webhooks": self._webhooks(lambda w: w.list(client.id))})

    def get_webhook(self, client: Client, endpoint_id: str) -> Reply:
        return Reply(200, self._webhooks(lambda w: w.get(client.id, endpoint_id)))

    def delete_webhook(self, client: Client, endpoint_id: str) -> None:
        self._webhooks(lambda w: w.delete(client.id, endpoint_id))

    def rotate_webhook_secret(self, client: Client, endpoint_id: str) -> Reply:
        return Reply(200, self._webhooks(lambda w: w.rotate_secret(client.id, endpoint_id)))

    def test_webhook(self, client: Client, endpoint_id: str) -> Reply:
        return Reply(202, self._webhooks(lambda w: w.send_test(client.id, endpoint_id)))

    def webhook_deliveries(self, client: Client, endpoint_id: str) -> Reply:
        return Reply(200, self._webhooks(lambda w: w.deliveries(client.id, endpoint_id)))

    def replay_webhook(self, client: Client, endpoint_id: str, body: bytes | None) -> Reply:
        parsed = self._json(body)
        return Reply(202, self._webhooks(lambda w: w.replay(client.id, endpoint_id, parsed)))

    def _suppression_list(self, operation: Callable[[SuppressionList], Any]) -> Any:
        if self.suppressions is None:
            raise NotFound("suppression lists are not configured here")
        try:
            return operation(self.suppressions)
        except StorageError as exc:
            raise TemporarilyUnavailable("the suppression list is unavailable, please retry",
                                         retry_after=self.settings.retry_after_seconds) from exc  # fmt: skip

    def list_suppressions(self, client: Client, authorization: str | None, params: Mapping[str, str] | None) -> Reply:
        key = cursor_key("suppressions", bearer_token(authorization) or "")  # signed for the caller's API key
        return Reply(200, self._suppression_list(lambda s: s.page(client.id, params, key)))

    def get_suppression(self, client: Client, email: str) -> Reply:
        return Reply(200, self._suppression_list(lambda s: s.get(client.id, unquote(email)).view()))

    def put_suppression(self, client: Client, email: str, body: bytes | None) -> Reply:
        parsed = self._json(body)
        try:
            request = SuppressionRequest.model_validate(parsed)
        except ValidationError as exc:
            raise from_validation_error(exc, "") from None
        return Reply(200, self._suppression_list(lambda s: s.put(client.id, unquote(email), request, "api").view()))

    def delete_suppression(self, client: Client, email: str) -> None:
        self._suppression_list(lambda s: s.remove(client.id, unquote(email)))
