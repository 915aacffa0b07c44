"""`mailrelay webhooks add|list|remove|test|replay`: the webhook management API from the command line
(the local stack's API and dev key by default)."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from local_stack.cli.target import local_stack_info


def register(commands: Any) -> None:
    hooks = commands.add_parser("webhooks", help="add, list, remove, test and replay webhook endpoints")
    hooks.add_argument("--api-url", help="API base URL (default: the local stack's)")
    hooks.add_argument("--api-key", help="API key (default: the local stack's dev key)")
    actions = hooks.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="register an endpoint and print its secret (shown once)")
    add.add_argument("url")
    add.add_argument("--event", action="append", dest="events", metavar="TYPE", help="only this type; repeatable")
    add.add_argument("--description", default="")
    add.set_defaults(call=lambda a: ("POST", "/v1/webhooks", _created(a)))
    listing = actions.add_parser("list", help="list endpoints")
    listing.set_defaults(call=lambda a: ("GET", "/v1/webhooks", None))
    remove = actions.add_parser("remove", help="remove an endpoint")
    remove.add_argument("id")
    remove.set_defaults(call=lambda a: ("DELETE", f"/v1/webhooks/{a.id}", None))
    test = actions.add_parser("test", help="send a webhook.test event")
    test.add_argument("id")
    test.set_defaults(call=lambda a: ("POST", f"/v1/webhooks/{a.id}/test", None))
    replay = actions.add_parser("replay", help="send stored events again, with their original ids")
    replay.add_argument("id")
    replay.add_argument("--since", required=True, help="RFC 3339 date-time, e.g. 2026-12-02T09:00:00Z")
    replay.add_argument("--until", help="RFC 3339 date-time (default: now)")
    replay.set_defaults(call=lambda a: ("POST", f"/v1/webhooks/{a.id}/replay", _window(a)))
    hooks.set_defaults(func=_run)


def _created(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"url": args.url, "description": args.description}
    if args.events:
        body["events"] = args.events
    return body


def _window(args: argparse.Namespace) -> dict[str, Any]:
    return {"since": args.since, **({"until": args.until} if args.until else {})}


def _run(args: argparse.Namespace) -> int:
    local = local_stack_info() or {}
    api_url, api_key = args.api_url or local.get("api_url"), args.api_key or local.get("api_key")
    if not api_url or not api_key:
        print("mailrelay: give --api-url and --api-key, or start the local stack with `make run`", file=sys.stderr)
        return 2
    method, path, body = args.call(args)
    request = urllib.request.Request(  # noqa: S310 - the URL is the user's own API
        api_url.rstrip("/") + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        method=method,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            text = response.read().decode()
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(), file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"mailrelay: cannot reach {api_url}: {exc.reason}", file=sys.stderr)
        return 1
    print(json.dumps(json.loads(text), indent=2) if text else "done")
    return 0
