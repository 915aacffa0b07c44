"""`mailrelay suppressions list|add|remove|import FILE`: a client's suppression list, straight on its table
(the operator's tool, like `mailrelay keys`; clients use /v1/suppressions)."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from local_stack.cli.target import TargetError, dynamodb_table
from mailrelay.adapters.dynamo_suppressions import DynamoSuppressionStore
from mailrelay.errors import InvalidRequest, NotFound
from mailrelay.models.suppression import SUPPRESSION_REASONS
from mailrelay.ports import StorageError
from mailrelay.submission import utcnow
from mailrelay.suppression.service import SuppressionList, SuppressionRequest

_HEADERS = {"email", "address", "email_address"}


def register(commands: Any) -> None:
    sup = commands.add_parser("suppressions", help="list, add, remove and import a client's suppressed addresses")
    sup.add_argument("--stack", help="deployed CloudFormation stack name (reads its SuppressionsTableName output)")
    sup.add_argument("--table", help="suppressions table name (overrides --stack)")
    sup.add_argument("--client", required=True, help="the client's name (as in `mailrelay keys list`)")
    actions = sup.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="list the entries, in address order")
    listing.add_argument("--reason", choices=SUPPRESSION_REASONS)
    listing.add_argument("--json", action="store_true", help="print JSON, one entry a line")
    listing.set_defaults(func=_list)
    add = actions.add_parser("add", help="suppress an address")
    add.add_argument("email")
    add.add_argument("--reason", choices=SUPPRESSION_REASONS, default="manual")
    add.set_defaults(func=_add)
    remove = actions.add_parser("remove", help="stop suppressing an address")
    remove.add_argument("email")
    remove.set_defaults(func=_remove)
    bulk = actions.add_parser("import", help="suppress every address in FILE (CSV with email[,reason], or one a line)")
    bulk.add_argument("file", type=argparse.FileType("r", encoding="utf-8-sig"))
    bulk.add_argument("--reason", choices=SUPPRESSION_REASONS, default="manual", help="for rows that name none")
    bulk.set_defaults(func=_import)


def _service(args: argparse.Namespace) -> SuppressionList:
    client, table = dynamodb_table(args.table, args.stack, output="SuppressionsTableName",
                                   variable="MAILRELAY_SUPPRESSIONS_TABLE", local_key="suppressions_table")  # fmt: skip
    return SuppressionList(DynamoSuppressionStore(table, client), utcnow)


def _fail(message: str) -> int:
    print(f"mailrelay: {message}", file=sys.stderr)
    return 2


def _list(args: argparse.Namespace) -> int:
    params = {"reason": args.reason} if args.reason else {}
    try:
        service = _service(args)
        key = b"cli"  # cursors never leave this process
        while True:
            page = service.page(args.client, params, key)
            for entry in page["suppressions"]:
                if args.json:
                    print(json.dumps(entry))
                else:
                    print(f"{entry['address']:48} {entry['reason']:12} {entry['created_at']}")
            if not page["has_more"]:
                return 0
            params = {**params, "cursor": page["next_cursor"]}
    except (TargetError, StorageError) as exc:
        return _fail(str(exc))


def _add(args: argparse.Namespace) -> int:
    try:
        entry = _service(args).put(args.client, args.email, SuppressionRequest(reason=args.reason), "cli",
                                   reasons=SUPPRESSION_REASONS)  # fmt: skip
    except (TargetError, StorageError, InvalidRequest) as exc:
        return _fail(str(exc))
    print(f"suppressed {entry.address} for {args.client} ({entry.reason})")
    return 0


def _remove(args: argparse.Namespace) -> int:
    try:
        _service(args).remove(args.client, args.email)
    except (TargetError, StorageError, InvalidRequest, NotFound) as exc:
        return _fail(str(exc))
    print(f"removed {args.email} from {args.client}'s suppression list")
    return 0


def _rows(lines: list[str]) -> list[tuple[str, str]]:
    """CSV (email[,reason], an optional header row) or one address a line; blank lines are skipped."""
    rows = [r for r in csv.reader(lines) if r and any(cell.strip() for cell in r)]
    if rows and rows[0][0].strip().lower() in _HEADERS:
        rows = rows[1:]
    return [(r[0].strip(), r[1] if len(r) > 1 else "") for r in rows]


def _import(args: argparse.Namespace) -> int:
    with args.file:
        rows = _rows(args.file.read().splitlines())
    try:
        summary = _service(args).import_entries(args.client, rows, args.reason, "import")
    except (TargetError, StorageError) as exc:
        return _fail(str(exc))
    print(f"imported {summary.added} addresses for {args.client} ({len(rows)} rows, "
          f"{summary.repeated} repeated, {len(summary.problems)} not imported)")  # fmt: skip
    for problem in summary.problems:
        print(f"  {problem}", file=sys.stderr)
    return 1 if summary.problems else 0
