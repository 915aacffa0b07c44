"""The mail viewer: pages for people and a JSON API for test suites, over the same MailIndex.

Captured HTML is hostile input. It is only ever served from its own URL with a Content-Security-Policy
that sandboxes it (no scripts, no same-origin access, no form posts) and loads nothing remote unless the
reader asks; the page embeds it in an ``<iframe sandbox>`` as a second fence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from local_stack.viewer.index import Entry, MailIndex

HERE = Path(__file__).parent
DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
MAX_QUERY = 500
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_CID = re.compile(r"""cid:([^"'\s)>]+)""", re.IGNORECASE)
_MIME_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")


class Problem(Exception):
    """An RFC 9457 problem: what was wrong, and where."""

    def __init__(self, status: int, title: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.field = status, title, detail, field

    def response(self) -> JSONResponse:
        slug = self.title.lower().replace(" ", "-")
        body: dict[str, Any] = {"type": f"urn:mailrelay:viewer:problem:{slug}", "title": self.title,
                                "status": self.status, "detail": self.detail}  # fmt: skip
        if self.field:
            body["errors"] = [{"field": self.field, "detail": self.detail}]
        return JSONResponse(body, self.status, media_type="application/problem+json")


def create_app(index: MailIndex, clock: Callable[[], datetime], allowed_hosts: list[str]) -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["when"] = lambda value: value.strftime("%Y-%m-%d %H:%M:%S UTC")

    def entry_or_404(request: Request) -> Entry:
        entry = index.find(request.path_params["id"])
        if entry is None:
            raise Problem(404, "Not found", f"no message {request.path_params['id']!r} in the viewer")
        return entry

    def captured_or_404(entry: Entry) -> Any:
        if entry.captured is None:
            raise Problem(404, "Not captured", "no copy of this message was captured (the upstream refused it, or "
                          "it went to a real upstream); its status and timeline are still shown")  # fmt: skip
        return entry.captured

    def page(request: Request, name: str, context: dict[str, Any]) -> Response:
        response = templates.TemplateResponse(request, name, context)
        response.headers["Content-Security-Policy"] = PAGE_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    # -- JSON API ------------------------------------------------------------------------------

    async def list_messages(request: Request) -> Response:
        query, limit = _list_params(request)
        version = index.version()
        if request.headers.get("if-none-match") == version:
            return Response(status_code=304, headers={"ETag": version})
        found = index.search(query)
        body = {"total": len(found), "count": min(limit, len(found)),
                "messages": [e.summary() for e in found[:limit]]}  # fmt: skip
        return JSONResponse(body, headers={"ETag": version, "Cache-Control": "no-cache"})

    async def delete_messages(request: Request) -> Response:
        return JSONResponse({"deleted": index.clear(clock())})

    async def get_message(request: Request) -> Response:
        entry = entry_or_404(request)
        return JSONResponse(detail(entry, index), headers={"Cache-Control": "no-cache"})

    async def get_raw(request: Request) -> Response:
        captured = captured_or_404(entry_or_404(request))
        return Response(captured.raw, media_type="text/plain; charset=utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})  # fmt: skip

    # -- pages ---------------------------------------------------------------------------------

    async def list_page(request: Request) -> Response:
        query, limit = _list_params(request)
        found = index.search(query)
        return page(request, "list.html", {"entries": found[:limit], "total": len(found), "query": query})

    async def message_page(request: Request) -> Response:
        try:
            entry = entry_or_404(request)
        except Problem as exc:
            raise HTTPException(404, exc.detail) from None
        remote = request.query_params.get("remote") == "1"
        context = {"entry": entry, "message": entry.captured, "remote": remote,
                   "timeline": index.timelines.timeline(entry.id) if entry.status else []}  # fmt: skip
        return page(request, "message.html", context)

    async def html_part(request: Request) -> Response:
        entry = entry_or_404(request)
        html = captured_or_404(entry).html() or ""
        parts = {p.content_id: p.index for p in entry.captured.parts() if p.content_id} if entry.captured else {}

        def to_part(match: re.Match[str]) -> str:
            number = parts.get(match.group(1))
            return f"/messages/{quote(entry.id)}/parts/{number}" if number else "about:blank"

        origin = f"{request.url.scheme}://{request.url.netloc}"
        remote = request.query_params.get("remote") == "1"
        source = "* data:" if remote else f"{origin} data:"
        policy = (f"sandbox; default-src 'none'; img-src {source}; style-src 'unsafe-inline'"
                  f"{' *' if remote else ''}; font-src {source}; frame-ancestors {origin}")  # fmt: skip
        headers = {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
                   "Referrer-Policy": "no-referrer"}  # fmt: skip
        return Response(_CID.sub(to_part, html), media_type="text/html; charset=utf-8", headers=headers)

    async def part(request: Request) -> Response:
        entry = entry_or_404(request)
        try:
            number = int(request.path_params["part"])
        except ValueError:
            raise Problem(404, "Not found", "parts are numbered from 1") from None
        found = captured_or_404(entry).part_bytes(number)
        if found is None:
            raise Problem(404, "Not found", f"message {entry.id} has no part {number}")
        info, data = found
        kind = info.content_type if _MIME_TYPE.match(info.content_type) else "application/octet-stream"
        headers = {"Content-Disposition": f"attachment; filename*=UTF-8''{quote(info.filename)}",
                   "X-Content-Type-Options": "nosniff",
                   "Content-Security-Policy": "sandbox; default-src 'none'"}  # fmt: skip
        return Response(data, media_type=kind, headers=headers)

    async def problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if request.url.path.startswith("/api/"):
            title = "Not found" if exc.status_code == 404 else "Method not allowed"
            return Problem(exc.status_code, title, f"{request.method} {request.url.path}: {exc.detail}").response()
        return Response(str(exc.detail), exc.status_code, media_type="text/plain; charset=utf-8")

    routes = [
        Route("/", list_page),
        Route("/messages/{id}", message_page),
        Route("/messages/{id}/html", html_part),
        Route("/messages/{id}/parts/{part}", part),
        Route("/api/v1/messages", list_messages, methods=["GET"]),
        Route("/api/v1/messages", delete_messages, methods=["DELETE"]),
        Route("/api/v1/messages/{id}", get_message),
        Route("/api/v1/messages/{id}/raw", get_raw),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    # A page on another site could otherwise reach this loopback server through DNS rebinding.
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)]
    handlers = {Problem: problem, HTTPException: http_error}
    return Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)


def _list_params(request: Request) -> tuple[str, int]:
    query = request.query_params.get("query", "")
    if len(query) > MAX_QUERY:
        raise Problem(422, "Invalid request", f"at most {MAX_QUERY} characters", "query")
    raw = request.query_params.get("limit", "")
    if not raw:
        return query, DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise Problem(422, "Invalid request", f"a whole number from 1 to {MAX_LIMIT}, not {raw[:20]!r}", "limit")
    return query, int(raw)


def detail(entry: Entry, index: MailIndex) -> dict[str, Any]:
    """The JSON of one message: parsed headers and bodies (when captured), its status and timeline."""
    captured = entry.captured
    timeline = index.timelines.timeline(entry.id) if entry.status is not None else []
    body: dict[str, Any] = {
        **entry.summary(),
        "status": entry.status.public_view() if entry.status is not None else None,
        "timeline": [t.public_view() for t in timeline],
        "headers": {}, "text": None, "html": None, "attachments": [], "message_id": None, "date": None,
        "addresses": {},
    }  # fmt: skip
    if captured is not None:
        body.update(
            headers=captured.headers(), text=captured.text(), html=captured.html(),
            attachments=[{**p.public_view(), "url": f"/messages/{quote(entry.id)}/parts/{p.index}"}
                         for p in captured.parts()],
            message_id=captured.header("Message-ID") or None, date=captured.header("Date") or None,
            addresses={name.lower(): captured.addresses(name) for name in ("From", "To", "Cc", "Reply-To")},
        )  # fmt: skip
    return body
