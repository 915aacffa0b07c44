"""schemathesis against the served OpenAPI document, in-process against the real API handler (moto behind it).

A small WSGI adapter plays API Gateway (HTTP API, payload v2): it routes with the template's routes, builds
the event the way ``local_stack.http_gateway`` does, and calls ``functions.api.app.lambda_handler``.
Checks: no 5xx for any generated input, every 4xx is RFC 9457 problem+json, responses match the schema.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckContext, negative_data_rejection, positive_data_acceptance, unsupported_method

from local_stack.http_gateway import LambdaContext, Route, build_event, routes_from_template
from local_stack.provision import LocalResources
from local_stack.template import load_template
from mailrelay.api.openapi import openapi_document
from mailrelay.clients import new_api_key
from mailrelay.settings import get_settings
from mailrelay.wiring import Services

ROUTES = routes_from_template(load_template(), "ApiFunction")
GATEWAY_NOT_FOUND = b'{"message":"Not Found"}'
PUBLIC = {("GET", "/v1/openapi.json")}
BASE_URL = "http://api.local"
SOAK = os.environ.get("HYPOTHESIS_PROFILE") == "soak"
EXAMPLES = int(os.environ.get("MAILRELAY_FUZZ_EXAMPLES", "500" if SOAK else "50"))  # per operation
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
PROBLEM_FIELDS = {"type": str, "title": str, "status": int, "detail": str}


# The handler of the running test, built by the ``gateway`` fixture for that test's moto account.
_HANDLERS: list[Callable[[dict[str, Any], Any], dict[str, Any]]] = []


def _api_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return _HANDLERS[-1](event, context)


@dataclass
class ApiGatewayWsgi:
    """API Gateway HTTP API in front of a Lambda handler, as a WSGI application."""

    handler: Callable[[dict[str, Any], Any], dict[str, Any]]
    routes: list[Route]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        # The path as it travels on the wire (WSGI hands it over percent-decoded).
        path = quote(environ.get("PATH_INFO", ""), safe="/!$&'()*+,;=:@~")
        target = path + (f"?{environ['QUERY_STRING']}" if environ.get("QUERY_STRING") else "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        route = next((r for r in self.routes if r.method == method and r.pattern.match(path)), None)
        if route is None:  # API Gateway answers itself; the function never sees the request
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [GATEWAY_NOT_FOUND]
        event = build_event(method, target, headers, body, route, "203.0.113.7")
        result = self.handler(event, LambdaContext("ApiFunction", 20_000))
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        status = int(result.get("statusCode", 200))
        start_response(f"{status} X", [(k, str(v)) for k, v in (result.get("headers") or {}).items()])
        return [data]


GATEWAY = ApiGatewayWsgi(_api_handler, ROUTES)

# Two views of the served document: one called anonymously, one with a valid key for client "fuzz".
schema = schemathesis.openapi.from_dict(openapi_document())
schema.app = GATEWAY
authed_schema = schemathesis.openapi.from_dict(openapi_document())
authed_schema.app = GATEWAY
FUZZ_KEY = new_api_key()  # schemathesis may apply auth while building cases, before any fixture has run


@authed_schema.auth(refresh_interval=None)
class FuzzClientKey:
    """Every generated request carries the key of client "fuzz" (created in each test's moto account)."""

    def get(self, case: schemathesis.Case, ctx: schemathesis.AuthContext) -> str:
        return FUZZ_KEY

    def set(self, case: schemathesis.Case, data: str, ctx: schemathesis.AuthContext) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


@pytest.fixture
def gateway(aws: LocalResources) -> Iterator[ApiGatewayWsgi]:
    from functions.api.app import build_operations, create_handler

    operations = build_operations(get_settings())
    _HANDLERS.append(create_handler(lambda: operations))
    yield GATEWAY
    _HANDLERS.pop()


@pytest.fixture
def api_key(gateway: ApiGatewayWsgi) -> str:
    _, key = Services(get_settings()).clients.create("fuzz", ["example.com"], key=FUZZ_KEY)
    return key


def problem_json_for_4xx(ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case) -> bool:
    """Every client error is an RFC 9457 problem document that names its own status."""
    if not 400 <= response.status_code < 500 or response.content == GATEWAY_NOT_FOUND:
        return True  # no route matched: API Gateway answers itself (see EXCLUDED)
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.split(";")[0].strip() == "application/problem+json", content_type
    body = json.loads(response.content)
    for name, kind in PROBLEM_FIELDS.items():
        assert isinstance(body.get(name), kind), f"problem field {name!r}: {body!r}"
    assert body["status"] == response.status_code
    assert body["type"].startswith("urn:mailrelay:problem:")
    return True


def not_a_server_error(ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case) -> bool:
    assert response.status_code < 500, f"{response.status_code}: {response.content[:500]!r}"
    return True


# Left out, with reasons:
# - positive_data_acceptance: generated bodies are schema-valid but name random senders, and 403 (sender not
#   allowed for this client) is the right answer there; acceptance of valid input is tested in tests/integration.
# - unsupported_method: a method with no route (TRACE /v1/messages) never reaches the function; API Gateway's
#   HTTP API answers 404 {"message":"Not Found"} itself, and the adapter reproduces exactly that.
EXCLUDED = [positive_data_acceptance, unsupported_method]
# - negative_data_rejection, for the batch only: a schema-violating *item* is refused on its own inside a 200
#   (the documented contract: "each item is accepted or refused on its own"); batch_items_answered checks it.
BATCH = ("POST", "/v1/messages/batch")


def batch_items_answered(ctx: CheckContext, response: schemathesis.Response, case: schemathesis.Case) -> bool:
    """A 200 batch answer has one result per item: an id and status, or a 4xx problem for that item alone."""
    if (case.method.upper(), case.path) != BATCH or response.status_code != 200:
        return True
    results = json.loads(response.content)["results"]
    assert isinstance(case.body, dict) and len(results) == len(case.body["messages"])
    for result in results:
        if "error" in result:
            assert 400 <= result["error"]["status"] < 500 and result["error"]["type"].startswith("urn:mailrelay:")
        else:
            assert result["id"] and result["status"] in ("queued", "scheduled")
    return True


CHECKS = [problem_json_for_4xx, not_a_server_error, batch_items_answered]


def excluded_for(case: schemathesis.Case) -> list[Any]:
    batch = (case.method.upper(), case.path) == BATCH
    return [*EXCLUDED, negative_data_rejection] if batch else EXCLUDED


@schema.parametrize()
@FUZZ_SETTINGS
def test_api_without_credentials(case: schemathesis.Case, gateway: ApiGatewayWsgi) -> None:
    response = case.call_and_validate(base_url=BASE_URL, excluded_checks=excluded_for(case), additional_checks=CHECKS)
    reached_function = response.content != GATEWAY_NOT_FOUND
    anonymous = "authorization" not in {k.lower() for k in (case.headers or {})}
    if reached_function and anonymous and (case.method.upper(), case.path) not in PUBLIC:
        assert response.status_code == 401


@authed_schema.parametrize()
@FUZZ_SETTINGS
def test_api_with_a_valid_key(case: schemathesis.Case, api_key: str) -> None:
    case.call_and_validate(base_url=BASE_URL, excluded_checks=excluded_for(case), additional_checks=CHECKS)


def test_the_fuzzed_document_is_the_served_one(gateway: ApiGatewayWsgi) -> None:
    got: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        got.update(status=status, headers=dict(headers))

    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/v1/openapi.json", "wsgi.input": None}
    body = b"".join(gateway(environ, start_response))
    assert got["status"].startswith("200")
    assert json.loads(body) == json.loads(json.dumps(openapi_document()))
    assert {(r.method, r.path) for r in ROUTES} == {
        (method.upper(), path) for path, item in openapi_document()["paths"].items() for method in item
    }
