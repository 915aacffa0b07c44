"""`mailrelay keys create|list|revoke`: clients and their API keys."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from local_stack.cli.target import TargetError, dynamodb_client_and_table
from mailrelay.adapters.dynamo_clients import ClientExists, DynamoClientStore
from mailrelay.clients import ClientService
from mailrelay.errors import InvalidRequest
from mailrelay.models.client import RETENTION_DAYS


def register(commands: Any) -> None:
    keys = commands.add_parser("keys", help="create, list and revoke client API keys")
    keys.add_argument("--stack", help="deployed CloudFormation stack name (reads its ClientsTableName output)")
    keys.add_argument("--table", help="clients table name (overrides --stack)")
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a client and print its key (shown once)")
    create.add_argument("--name", required=True, help="client name; also its SMTP username")
    create.add_argument(
        "--allow-from", action="append", required=True, metavar="DOMAIN_OR_ADDRESS",
        help="a domain (example.com) or address (app@example.com) this client may send as; repeatable",
    )  # fmt: skip
    create.add_argument(
        "--retain-content-days", type=int, default=0, metavar="N", choices=(0, *RETENTION_DAYS),
        help="keep each accepted message's content N days for GET /v1/messages/{id}/content (default 0: not kept)",
    )  # fmt: skip
    create.add_argument("--json", action="store_true", help="print JSON")
    create.set_defaults(func=_create)
    update = actions.add_parser("update", help="change a client's settings (its key stays the same)")
    update.add_argument("name")
    update.add_argument(
        "--retain-content-days", type=int, required=True, metavar="N", choices=(0, *RETENTION_DAYS),
        help=f"days to keep content of messages accepted from now on: one of 0, {', '.join(map(str, RETENTION_DAYS))}",
    )  # fmt: skip
    update.set_defaults(func=_update)
    listing = actions.add_parser("list", help="list clients (never their keys)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=_list)
    revoke = actions.add_parser("revoke", help="revoke a client's key at once")
    revoke.add_argument("name")
    revoke.set_defaults(func=_revoke)


def _service(args: argparse.Namespace) -> ClientService:
    client, table = dynamodb_client_and_table(args.table, args.stack)
    return ClientService(DynamoClientStore(table, client))


def _fail(message: str) -> int:
    print(f"mailrelay: {message}", file=sys.stderr)
    return 2


def _create(args: argparse.Namespace) -> int:
    try:
        client, key = _service(args).create(args.name, args.allow_from, retain_content_days=args.retain_content_days)
    except (TargetError, InvalidRequest) as exc:
        return _fail(str(exc))
    except ClientExists:
        return _fail(f"client {args.name!r} already has an active key; revoke it first")
    if args.json:
        print(json.dumps({"name": client.id, "api_key": key, "allowed_from": list(client.allowed_from)}))
    else:
        print(f"client:        {client.id}")
        print(f"allowed from:  {', '.join(client.allowed_from)}")
        print(f"content kept:  {client.retain_content_days} days")
        print(f"API key:       {key}")
        print("SMTP username: " + client.id + "   SMTP password: the API key")
        print("The key is shown only now; store it in your secret manager.", file=sys.stderr)
    return 0


def _list(args: argparse.Namespace) -> int:
    try:
        clients = _service(args).store.list()
    except TargetError as exc:
        return _fail(str(exc))
    if args.json:
        print(json.dumps([c.model_dump(mode="json") for c in clients]))
        return 0
    print(f"{'NAME':24} {'STATE':8} {'KEY':8} {'CREATED':20} ALLOWED FROM")
    for c in clients:
        created = c.created_at.strftime("%Y-%m-%d %H:%M")
        print(f"{c.id:24} {c.state:8} {c.key_prefix + '…':8} {created:20} {', '.join(c.allowed_from)}")
    return 0


def _update(args: argparse.Namespace) -> int:
    try:
        updated = _service(args).store.update_retention(args.name, args.retain_content_days)
    except TargetError as exc:
        return _fail(str(exc))
    if not updated:
        return _fail(f"no active client named {args.name!r}")
    print(f"updated {args.name}: content of messages accepted from now on is kept {args.retain_content_days} days")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    try:
        revoked = _service(args).store.revoke(args.name)
    except TargetError as exc:
        return _fail(str(exc))
    if not revoked:
        return _fail(f"no active client named {args.name!r}")
    print(f"revoked {args.name}: its key no longer works for the API or SMTP")
    return 0
