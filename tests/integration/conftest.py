from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest

from local_stack.provision import LocalResources
from mailrelay.clients import ClientService
from mailrelay.wiring import Services
from tests.conftest import load_event
from tests.support import LambdaContext


@dataclass
class ApiResponse:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


@pytest.fixture
def services(aws: LocalResources) -> Services:
    from mailrelay.settings import get_settings

    return Services(get_settings())


@pytest.fixture
def client_key(services: Services) -> str:
    """An API key for client 'shop', allowed to send as anyone at example.com."""
    _, key = services.clients.create("shop", ["example.com"])
    return key


class Api:
    """The real API handler, built for this test's moto account, called with HTTP API v2 events from events/."""

    def __init__(self, services: Services) -> None:
        from functions.api.app import build_operations, create_handler

        self.operations = build_operations(services.settings, services)
        self.handler = create_handler(lambda: self.operations)

    def __call__(
        self, method: str, path: str, body: Any = None, *, key: str | None = None,
        headers: dict[str, str] | None = None, raw_body: str | None = None, query: dict[str, str] | None = None,
    ) -> ApiResponse:  # fmt: skip
        template = {
            ("POST", "/v1/messages"): "api_send_message.json",
            ("POST", "/v1/messages/batch"): "api_send_batch.json",
            ("POST", "/v1/uploads"): "api_create_upload.json",
            ("GET", "/v1/openapi.json"): "api_openapi.json",
        }.get((method, path), "api_get_message.json")
        event = load_event(template)
        if query:
            path += "?" + urlencode(query)
        path, _, raw_query = path.partition("?")
        event["rawQueryString"] = raw_query
        if raw_query:
            from local_stack.http_gateway import query_parameters

            event["queryStringParameters"] = query_parameters(raw_query)
        else:
            event.pop("queryStringParameters", None)
        event["rawPath"] = path
        event["requestContext"]["http"]["method"] = method
        event["requestContext"]["http"]["path"] = path
        event["headers"] = {"host": "abc123.execute-api.eu-west-1.amazonaws.com"}
        if key is not None:
            event["headers"]["authorization"] = f"Bearer {key}"
        event["headers"].update({k.lower(): v for k, v in (headers or {}).items()})
        event.pop("body", None)
        if raw_body is not None:
            event["body"] = raw_body
        elif body is not None:
            event["body"] = json.dumps(body)
            event["headers"]["content-type"] = "application/json"
        if path.startswith("/v1/messages/") and path != "/v1/messages/batch":
            event["pathParameters"] = {"id": path.rsplit("/", 1)[1]}
        result = self.handler(event, LambdaContext())
        text = result.get("body", "")
        if result.get("isBase64Encoded"):  # a binary body (message/rfc822), as API Gateway would decode it
            text = base64.b64decode(text).decode("utf-8", "surrogateescape")
        return ApiResponse(result["statusCode"], result.get("headers", {}), text)


@pytest.fixture
def api(services: Services) -> Api:
    return Api(services)


@pytest.fixture
def queue_messages(aws: LocalResources) -> Callable[[], list[dict[str, Any]]]:
    """Everything currently on the delivery queue (received and left invisible)."""
    sqs = boto3.client("sqs")

    def read() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            got = sqs.receive_message(
                QueueUrl=aws.names["DeliveryQueue"], MaxNumberOfMessages=10, VisibilityTimeout=600
            ).get("Messages", [])
            if not got:
                return found
            found.extend(json.loads(m["Body"]) for m in got)

    return read


@pytest.fixture
def client_service(services: Services) -> ClientService:
    return services.clients
