"""HTTP API function (API Gateway HTTP API, payload v2): routes -> core operations -> responses.

``create_handler(operations)`` builds the whole function around the operations it is given; the module's
``lambda_handler`` is that, with the operations the environment describes (built once, at the first
request). Tests build their own handler with their own settings instead of editing the environment.

Importing this module loads the router and the error mapping only. The configuration and the operations'
module graph (models, validation, MIME) are loaded with the operations, at the first request that needs
them (a bad configuration fails it, naming the variable), or before the snapshot when SnapStart is on
(mailrelay.snapstart), so that a bad configuration fails the version's publication instead.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from mailrelay import snapstart
from mailrelay.api.problems import PROBLEM_JSON, Problem, problem_for
from mailrelay.errors import MailrelayError, NotFound

if TYPE_CHECKING:
    from mailrelay.api.operations import ApiOperations, Reply
    from mailrelay.settings import Settings
    from mailrelay.wiring import Services

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
logger = Logger(service="mailrelay-api")


def build_operations(settings: Settings, services: Services | None = None) -> ApiOperations:
    """The API's composition root: the core's operations over the adapters ``settings`` names."""
    from mailrelay.api.idempotency import IdempotentRunner
    from mailrelay.api.operations import ApiOperations
    from mailrelay.clients import ClientService
    from mailrelay.history import MessageHistory
    from mailrelay.wiring import Services

    services = services or Services(settings)
    # Only the API remembers clients (for a bounded time); the bridge reads them at every MAIL and DATA end.
    clients = ClientService(services.clients.store, cache_seconds=settings.api_key_cache_seconds)
    return ApiOperations(
        settings,
        clients,
        services.submissions,
        services.statuses,
        IdempotentRunner(settings.idempotency_table, settings.idempotency_ttl_seconds),
        services.uploads,
        MessageHistory(services.statuses),
        services.statuses,
        services.content,
        services.event_feed,
        services.webhooks,
        services.suppressions,
    )


def _json_response(reply: Reply) -> Response[str]:
    return Response(reply.status, "application/json", json.dumps(reply.body))


def _problem_response(problem: Problem) -> Response[str]:
    return Response(problem.status, PROBLEM_JSON, json.dumps(problem.body()), headers=problem.headers)


def create_app(operations: Callable[[], ApiOperations]) -> APIGatewayHttpResolver:
    """The routes, each: authenticate, hand the request to the core, answer; errors mapped in one place."""
    app = APIGatewayHttpResolver()

    def body() -> bytes | None:
        event = app.current_event
        if event.body is None:
            return None
        if event.is_base64_encoded:
            return base64.b64decode(event.body)
        return event.body.encode("utf-8", "surrogateescape")

    def header(name: str) -> str | None:
        value: str | None = app.current_event.headers.get(name)
        return value

    @app.get("/v1/openapi.json")
    def get_openapi() -> Response[str]:
        from mailrelay.api.openapi import openapi_document  # only this route needs it: not at cold start

        return Response(200, "application/json", json.dumps(openapi_document()))

    @app.post("/v1/messages")
    def send_message() -> Response[str]:
        ops = operations()
        client = ops.authenticate(header("authorization"))
        return _json_response(ops.send(client, body(), header("idempotency-key")))

    @app.post("/v1/messages/batch")
    def send_batch() -> Response[str]:
        ops = operations()
        client = ops.authenticate(header("authorization"))
        return _json_response(ops.send_batch(client, body(), header("idempotency-key")))

    @app.post("/v1/uploads")
    def create_upload() -> Response[str]:
        ops = operations()
        client = ops.authenticate(header("authorization"))
        return _json_response(ops.create_upload(client, body()))

    @app.get("/v1/messages")
    def list_messages() -> Response[str]:
        ops = operations()
        authorization = header("authorization")
        client = ops.authenticate(authorization)
        return _json_response(ops.list_messages(client, authorization, app.current_event.query_string_parameters))

    @app.post("/v1/messages/<message_id>/cancel")
    def cancel_message(message_id: str) -> Response[str]:
        ops = operations()
        client = ops.authenticate(header("authorization"))
        return _json_response(ops.cancel_message(client, message_id))

    @app.get("/v1/messages/<message_id>/content")
    def get_content(message_id: str) -> Response[Any]:
        ops = operations()
        client = ops.authenticate(header("authorization"))
        found = ops.message_content(client, message_id)
        if found.data is None:  # too large for a Lambda response: a short-lived link to it
            return Response(303, "text/plain", "", headers={"Location": found.url or ""})
        return Response(200, "message/rfc822", found.data)

    @app.get("/v1/messages/<message_id>")
    def get_message(message_id: str) -> Response[str]:
        ops = operations()
        client = ops.authenticate(header("authorization"))
        return _json_response(ops.get_message(client, message_id))

    @app.get("/v1/events")
    def list_events() -> Response[str]:
        ops = operations()
        client = ops.authenticate(header("authorization"))
        return _json_response(ops.list_events(client, app.current_event.query_string_parameters))

    @app.post("/v1/webhooks")
    def create_webhook() -> Response[str]:
        ops = operations()
        return _json_response(ops.create_webhook(ops.authenticate(header("authorization")), body()))

    @app.get("/v1/webhooks")
    def list_webhooks() -> Response[str]:
        ops = operations()
        return _json_response(ops.list_webhooks(ops.authenticate(header("authorization"))))

    @app.get("/v1/webhooks/<webhook_id>")
    def get_webhook(webhook_id: str) -> Response[str]:
        ops = operations()
        return _json_response(ops.get_webhook(ops.authenticate(header("authorization")), webhook_id))

    @app.delete("/v1/webhooks/<webhook_id>")
    def delete_webhook(webhook_id: str) -> Response[str]:
        ops = operations()
        ops.delete_webhook(ops.authenticate(header("authorization")), webhook_id)
        return Response(204, None, "")

    @app.post("/v1/webhooks/<webhook_id>/rotate-secret")
    def rotate_webhook_secret(webhook_id: str) -> Response[str]:
        ops = operations()
        return _json_response(ops.rotate_webhook_secret(ops.authenticate(header("authorization")), webhook_id))

    @app.post("/v1/webhooks/<webhook_id>/test")
    def test_webhook(webhook_id: str) -> Response[str]:
        ops = operations()
        return _json_response(ops.test_webhook(ops.authenticate(header("authorization")), webhook_id))

    @app.get("/v1/webhooks/<webhook_id>/deliveries")
    def webhook_deliveries(webhook_id: str) -> Response[str]:
        ops = operations()
        return _json_response(ops.webhook_deliveries(ops.authenticate(header("authorization")), webhook_id))

    @app.post("/v1/webhooks/<webhook_id>/replay")
    def replay_webhook(webhook_id: str) -> Response[str]:
        ops = operations()
        return _json_response(ops.replay_webhook(ops.authenticate(header("authorization")), webhook_id, body()))

    @app.get("/v1/suppressions")
    def list_suppressions() -> Response[str]:
        ops = operations()
        authorization = header("authorization")
        client = ops.authenticate(authorization)
        return _json_response(ops.list_suppressions(client, authorization, app.current_event.query_string_parameters))

    @app.get("/v1/suppressions/<email>")
    def get_suppression(email: str) -> Response[str]:
        ops = operations()
        return _json_response(ops.get_suppression(ops.authenticate(header("authorization")), email))

    @app.put("/v1/suppressions/<email>")
    def put_suppression(email: str) -> Response[str]:
        ops = operations()
        return _json_response(ops.put_suppression(ops.authenticate(header("authorization")), email, body()))

    @app.delete("/v1/suppressions/<email>")
    def delete_suppression(email: str) -> Response[str]:
        ops = operations()
        ops.delete_suppression(ops.authenticate(header("authorization")), email)
        return Response(204, None, "")

    @app.exception_handler(MailrelayError)
    def on_mailrelay_error(exc: MailrelayError) -> Response[str]:
        problem = problem_for(exc)
        logger.info("request refused", extra={"status": problem.status, "problem": problem.slug})
        return _problem_response(problem)

    @app.not_found
    def on_not_found(exc: Exception) -> Response[str]:
        return _problem_response(problem_for(NotFound("no such route")))

    @app.exception_handler(Exception)
    def on_unexpected(exc: Exception) -> Response[str]:
        logger.exception("unexpected error")
        return _problem_response(problem_for(MailrelayError("unexpected")))

    return app


def create_handler(operations: Callable[[], ApiOperations]) -> Handler:
    app = create_app(operations)

    @logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
    def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        operations().idempotency.register_lambda_context(context)
        return app.resolve(event, context)

    return handler


@cache
def operations() -> ApiOperations:
    from mailrelay.settings import get_settings

    return build_operations(get_settings())


@snapstart.before_snapshot
def _warm() -> None:
    """Into the snapshot: the configuration, checked, and the modules the first request loads (its clients
    are made after the restore)."""
    import importlib

    from mailrelay.adapters.aws import preload
    from mailrelay.settings import get_settings

    get_settings()
    for module in ("mailrelay.api.operations", "mailrelay.wiring"):
        importlib.import_module(module)
    preload()


# The operations hold AWS clients (credentials, connections): each restored environment makes its own.
snapstart.after_restore(operations.cache_clear)

lambda_handler = create_handler(operations)
