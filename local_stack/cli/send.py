"""`mailrelay send`: one test message through the HTTP API (the local stack by default)."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from typing import Any

from local_stack.cli.target import local_stack_info


def register(commands: Any) -> None:
    send = commands.add_parser("send", help="send a test message through the HTTP API")
    send.add_argument("--to", action="append", required=True, help="recipient; repeatable")
    send.add_argument("--from", dest="sender", help="sender (default: the local dev client's first allowed domain)")
    send.add_argument("--subject", default="Hello from mailrelay")
    send.add_argument("--text", default="It works.")
    send.add_argument("--html")
    send.add_argument("--api-url", help="API base URL (default: the local stack's)")
    send.add_argument("--api-key", help="API key (default: the local stack's dev key)")
    send.set_defaults(func=_send)


def _send(args: argparse.Namespace) -> int:
    local = local_stack_info() or {}
    api_url = args.api_url or local.get("api_url")
    api_key = args.api_key or local.get("api_key")
    if not api_url or not api_key:
        print("mailrelay: give --api-url and --api-key, or start the local stack with `make run`", file=sys.stderr)
        return 2
    sender = args.sender or _default_sender(local)
    body: dict[str, Any] = {"from": sender, "to": args.to, "subject": args.subject, "text": args.text}
    if args.html:
        body["html"] = args.html
    request = urllib.request.Request(  # noqa: S310 - the URL is the user's own API
        api_url.rstrip("/") + "/v1/messages",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            print(response.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        print(exc.read().decode(), file=sys.stderr)
        return 1
    except urllib.error.URLError as exc:
        print(f"mailrelay: cannot reach {api_url}: {exc.reason}", file=sys.stderr)
        return 1


def _default_sender(local: dict[str, Any]) -> str:
    allowed = local.get("allowed_senders") or ["example.com"]
    first = str(allowed[0])
    return first if "@" in first else f"test@{first}"
