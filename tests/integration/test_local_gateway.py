"""The local stand-in for API Gateway answers what it does not route the way API Gateway does."""

from __future__ import annotations

import http.client
import json

import pytest

from local_stack.http_gateway import HttpGateway, routes_from_template
from local_stack.template import load_template
from tests.support import HOST, free_port


@pytest.fixture
def gateway():
    invoked: list[dict] = []

    def handler(event, context):
        invoked.append(event)
        return {"statusCode": 200, "body": "{}"}

    gateway = HttpGateway(HOST, free_port(), routes_from_template(load_template(), "ApiFunction"), handler, 20_000)
    gateway.start()
    yield gateway, invoked
    gateway.stop()


@pytest.mark.parametrize(("method", "path"), [("PROPFIND", "/v1/messages"), ("BREW", "/"), ("DELETE", "/v1/messages")])
def test_an_unrouted_method_gets_api_gateways_json_404(gateway, method, path):
    server, invoked = gateway
    connection = http.client.HTTPConnection(HOST, server.port, timeout=10)
    connection.request(method, path)
    response = connection.getresponse()
    assert response.status == 404
    assert response.getheader("content-type") == "application/json"
    assert json.loads(response.read()) == {"message": "Not Found"}
    assert invoked == []
