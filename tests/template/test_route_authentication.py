"""Each HTTP API route of the translated template, called without a key, is refused by ApiFunction's code.

The template deliberately has no API Gateway authorizer (see ApiFunction's comment): the function checks the
key itself. This proves that check exists for every non-public route the template exposes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from local_stack.http_gateway import LambdaContext, Route, build_event
from local_stack.provision import LocalResources
from mailrelay.settings import get_settings
from tests.template import policy
from tests.template.test_policy import CFN

ROUTES = sorted((m, p) for m, p, function, _ in policy.http_routes(CFN) if function in policy.AUTHENTICATING_FUNCTIONS)
PRIVATE = [r for r in ROUTES if r not in policy.PUBLIC_ROUTES]


def call(method: str, path: str, headers: dict[str, str]) -> dict[str, Any]:
    from functions.api.app import build_operations, create_handler

    operations = build_operations(get_settings())
    handler = create_handler(lambda: operations)
    regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"
    target = path.replace("{id}", "0" * 32)
    body = b'{"from": "a@example.com", "to": "b@example.com", "text": "x"}' if method == "POST" else b""
    headers = {"host": "api.local", "content-type": "application/json", **headers}
    event = build_event(method, target, headers, body, Route(method, path, re.compile(regex)), "203.0.113.9")
    result: dict[str, Any] = handler(event, LambdaContext("ApiFunction", 20_000))
    return result


def test_every_route_is_known() -> None:
    assert PRIVATE and {("POST", "/v1/messages"), ("POST", "/v1/messages/batch"), ("GET", "/v1/messages/{id}")} <= set(
        PRIVATE
    )


@pytest.mark.parametrize("authorization", [None, "Bearer mr_not-a-key", "Basic YTpi", "Bearer "])
@pytest.mark.parametrize(("method", "path"), PRIVATE)
def test_private_route_refuses_a_missing_or_bad_key(
    aws: LocalResources, method: str, path: str, authorization: str | None
) -> None:
    result = call(method, path, {"authorization": authorization} if authorization is not None else {})
    assert result["statusCode"] == 401
    assert result["headers"]["Content-Type"] == "application/problem+json"
    assert json.loads(result["body"])["status"] == 401


@pytest.mark.parametrize(("method", "path"), sorted(policy.PUBLIC_ROUTES))
def test_public_route_needs_no_key(aws: LocalResources, method: str, path: str) -> None:
    assert call(method, path, {})["statusCode"] == 200
