"""The `mailrelay` command: keys, send, webhooks, suppressions, run (local stack), bridge."""

from __future__ import annotations

import argparse
import sys

from local_stack.cli import keys, send, suppressions, webhooks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailrelay", description="Outbound mail for applications.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    keys.register(commands)
    send.register(commands)
    webhooks.register(commands)
    suppressions.register(commands)
    run = commands.add_parser("run", help="start the whole system locally (see README)")
    run.set_defaults(func=_run)
    bridge = commands.add_parser("bridge", help="start the SMTP bridge (configured by MAILRELAY_BRIDGE_* variables)")
    bridge.set_defaults(func=_bridge)
    return parser


def _run(args: argparse.Namespace) -> int:
    from local_stack.stack import main as run_stack

    return run_stack(args.rest)


def _bridge(args: argparse.Namespace) -> int:
    from smtp_bridge.server import main as run_bridge

    result: int = run_bridge(args.rest)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # `run` and `bridge` parse their own options; the rest are fully parsed here.
    args, rest = parser.parse_known_args(argv)
    if rest and args.command not in ("run", "bridge"):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.rest = rest
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
