"""HTTP API function (API Gateway HTTP API, payload v2): routes -> core operations -> responses."""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from mailrelay.api.idempotency import IdempotentRunner
from mailrelay.api.operations import ApiOperations, Reply
from mailrelay.api.problems import PROBLEM_JSON, Problem, problem_for
from mailrelay.errors import MailrelayError, NotFound
from mailrelay.settings import get_settings
from mailrelay.wiring import Services

logger = Logger(service="mailrelay-api")
settings = get_settings()  # cold start: a bad configuration fails here, loudly
app = APIGatewayHttpResolver()


@lru_cache(maxsize=1)
def operations() -> ApiOperations:
    services = Services(settings)
    return ApiOperations(
        settings,
        services.clients,
        services.submissions,
        services.statuses,
        IdempotentRunner(settings.idempotency_table, settings.idempotency_ttl_seconds),
        services.uploads,
    )


def _body() -> bytes | None:
    event = app.current_event
    if event.body is None:
        return None
    if event.is_base64_encoded:
        return base64.b64decode(event.body)
    return event.body.encode("utf-8", "surrogateescape")


def _header(name: str) -> str | None:
    value: str | None = app.current_event.headers.get(name)
    return value


def _json_response(reply: Reply) -> Response[str]:
    return Response(reply.status, "application/json", json.dumps(reply.body))


def _problem_response(problem: Problem) -> Response[str]:
    return Response(problem.status, PROBLEM_JSON, json.dumps(problem.body()), headers=problem.headers)


@app.get("/v1/openapi.json")
def get_openapi() -> Response[str]:
    from mailrelay.api.openapi import openapi_document  # only this route needs it: not at cold start

    return Response(200, "application/json", json.dumps(openapi_document()))


@app.post("/v1/messages")
def send_message() -> Response[str]:
    ops = operations()
    client = ops.authenticate(_header("authorization"))
    return _json_response(ops.send(client, _body(), _header("idempotency-key")))


@app.post("/v1/messages/batch")
def send_batch() -> Response[str]:
    ops = operations()
    client = ops.authenticate(_header("authorization"))
    return _json_response(ops.send_batch(client, _body(), _header("idempotency-key")))


@app.post("/v1/uploads")
def create_upload() -> Response[str]:
    ops = operations()
    client = ops.authenticate(_header("authorization"))
    return _json_response(ops.create_upload(client, _body()))


@app.get("/v1/messages/<message_id>")
def get_message(message_id: str) -> Response[str]:
    ops = operations()
    client = ops.authenticate(_header("authorization"))
    return _json_response(ops.get_message(client, message_id))


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


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    operations().idempotency.register_lambda_context(context)
    return app.resolve(event, context)
