"""A small local stand-in for API Gateway (HTTP API, payload v2): HTTP request -> event -> handler."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

MAX_BODY = 10 * 1024 * 1024  # API Gateway's payload limit (HTTP API quotas: "Payload size 10 MB")
# Lambda refuses a synchronous invocation whose event is over 6,291,456 bytes (API_Invoke: "For synchronous
# invocations, the maximum payload size is 6 MB"), so the function never runs. AWS does not document what
# the HTTP API then answers; users report a 413 with a JSON message from the gateway, which is what this sends.
LAMBDA_INVOKE_LIMIT = 6 * 1024 * 1024
TOO_LARGE = b'{"message":"Request Entity Too Large"}'
_TEXTUAL = re.compile(r"^(text/|application/(json|problem\+json|xml|x-www-form-urlencoded))", re.I)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # as in the template, e.g. /v1/messages/{id}
    pattern: re.Pattern[str]


def routes_from_template(template: dict[str, Any], function: str) -> list[Route]:
    events = template["Resources"][function]["Properties"].get("Events", {})
    routes = []
    for event in events.values():
        if event.get("Type") != "HttpApi":
            continue
        path = event["Properties"]["Path"]
        regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"
        routes.append(Route(event["Properties"]["Method"].upper(), path, re.compile(regex)))
    return routes


@dataclass
class LambdaContext:
    function_name: str
    timeout_ms: int
    aws_request_id: str = ""
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:local"

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_ms / 1000
        self.aws_request_id = self.aws_request_id or str(uuid.uuid4())

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def query_parameters(query: str) -> dict[str, str]:
    """As payload format 2.0 carries them: "Duplicate query strings are combined with commas and included in
    the queryStringParameters field" (https://docs.aws.amazon.com/apigateway/latest/developerguide/
    http-api-develop-integrations-lambda.html); a parameter without a value is kept, empty."""
    found: dict[str, list[str]] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        found.setdefault(key, []).append(value)
    return {key: ",".join(values) for key, values in found.items()}


def build_event(
    method: str, target: str, headers: dict[str, str], body: bytes, route: Route, source_ip: str
) -> dict[str, Any]:
    parts = urlsplit(target)
    match = route.pattern.match(parts.path)
    assert match is not None
    now = time.time()
    content_type = headers.get("content-type", "")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{route.method} {route.path}",
        "rawPath": parts.path,
        "rawQueryString": parts.query,
        "headers": headers,
        "requestContext": {
            "accountId": "000000000000", "apiId": "local", "domainName": headers.get("host", "localhost"),
            "domainPrefix": "local", "requestId": str(uuid.uuid4()), "routeKey": f"{route.method} {route.path}",
            "stage": "$default", "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
            "http": {"method": method, "path": parts.path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": headers.get("user-agent", "")},
        },
        "isBase64Encoded": False,
    }  # fmt: skip
    if parts.query:
        event["queryStringParameters"] = query_parameters(parts.query)
    if match.groupdict():
        event["pathParameters"] = match.groupdict()
    if body:
        text = None
        if _TEXTUAL.match(content_type):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        if text is None:
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        else:
            event["body"] = text
    return event


class HttpGateway:
    def __init__(self, host: str, port: int, routes: list[Route], handler: Handler, timeout_ms: int) -> None:
        self.routes = routes
        self.handler = handler
        self.timeout_ms = timeout_ms
        # One event at a time, as in one Lambda execution environment: Powertools' resolver keeps the
        # current event in a class attribute, so concurrent calls would answer with each other's requests.
        self._invoke = threading.Lock()
        self.server = ThreadingHTTPServer((host, port), self._request_class())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="http-gateway", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _request_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Request(BaseHTTPRequestHandler):
            server_version = "mailrelay-local"
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return  # the handler logs; access lines would only add noise

            def _handle(self) -> None:
                gateway.dispatch(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle

            def __getattr__(self, name: str) -> Any:
                # Any other method too: API Gateway answers an unmatched one with its JSON 404, not an
                # HTML 501 as the standard library's server would.
                if name.startswith("do_"):
                    return self._handle
                raise AttributeError(name)

        return Request

    def dispatch(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_BODY:
            self._reply(request, 413, {"content-type": "application/json"}, TOO_LARGE)
            request.close_connection = True
            return
        body = request.rfile.read(length) if length else b""
        path = urlsplit(request.path).path
        route = next((r for r in self.routes if r.method == request.command and r.pattern.match(path)), None)
        if route is None:
            self._reply(request, 404, {"content-type": "application/json"}, b'{"message":"Not Found"}')
            return
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        event = build_event(request.command, request.path, headers, body, route, request.client_address[0])
        if len(json.dumps(event).encode()) > LAMBDA_INVOKE_LIMIT:
            self._reply(request, 413, {"content-type": "application/json"}, TOO_LARGE)
            return
        context = LambdaContext("ApiFunction", self.timeout_ms)
        try:
            with self._invoke:
                result = self.handler(event, context)
        except Exception:  # as API Gateway does when the integration fails
            self._reply(request, 500, {"content-type": "application/json"}, b'{"message":"Internal Server Error"}')
            raise
        payload = result.get("body") or ""
        data = base64.b64decode(payload) if result.get("isBase64Encoded") else payload.encode()
        self._reply(request, int(result.get("statusCode", 200)), result.get("headers") or {}, data)

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes) -> None:
        request.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection"):
                request.send_header(name, str(value))
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(data)
