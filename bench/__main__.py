"""``python -m bench [--quick] [--case NAME ...]``: run the benchmark cases and print one table.

Starts what it needs (Postfix, smtp-sink, smtp-source from Debian's postfix package, in temporary
directories on loopback ports; the bridge and the handlers in their own processes) and stops it all.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from bench import peers
from bench.cases import CASES, Config
from bench.latency import DEFAULT_LATENCY_MS, LATENCY_ENV, aws_latency_ms
from bench.table import Row, render


def machine() -> str:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model or platform.processor()}), {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a small run (a smoke test): 1 run, fewer messages")
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="only these cases (repeatable)")
    parser.add_argument("--runs", type=int, help="runs per case (default 3, --quick 1)")
    parser.add_argument("--messages", type=int, help="messages per smtp-source run (default 10000, --quick 1000)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="bridge worker processes (default: CPUs, at most 4)")  # fmt: skip
    parser.add_argument(
        "--aws-latency-ms",
        type=float,
        help=f"round trip of each stubbed AWS call (default {DEFAULT_LATENCY_MS:g}; bench/latency.py)",
    )
    args = parser.parse_args(argv)
    if args.aws_latency_ms is not None:  # the cases' subprocesses inherit it
        os.environ[LATENCY_ENV] = str(args.aws_latency_ms)
    names = args.case or list(CASES)
    needs_postfix = {"accept", "delivery"} & set(names)
    if needs_postfix and (missing := peers.missing_tools()):
        print(f"bench: missing {', '.join(missing)} (Debian package postfix: make system-packages)", file=sys.stderr)
        return 2
    if needs_postfix and os.geteuid() != 0:
        print("bench: Postfix is started as root (it drops to the postfix user); run as root", file=sys.stderr)
        return 2

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    cfg = Config(quick=args.quick, runs=args.runs or (1 if args.quick else 3),
                 messages=args.messages or (1000 if args.quick else 10_000), workers=args.workers, log=log)  # fmt: skip
    rows: list[Row] = []
    started = time.monotonic()
    for name in names:
        log(f"case {name} ...")
        t = time.monotonic()
        try:
            rows.extend(CASES[name](cfg))
        except Exception as exc:  # one broken case must not hide the others' figures
            rows.append(Row(name, "FAILED", [], note=f"{type(exc).__name__}: {str(exc)[:300]}"))
        log(f"case {name}: {time.monotonic() - t:.0f} s")
    header = [
        f"mailrelay bench ({'quick' if args.quick else 'full'}): {cfg.runs} run(s) per case, medians; "
        "ratio = median of per-run ratios (ours / peer, both measured in the same run)",
        f"machine: {machine()}",
        f"load: {SESSIONS_NOTE}; bridge: {cfg.workers} worker process(es), group commit at most "
        f"{os.environ.get('MAILRELAY_BRIDGE_GROUP_COMMIT_MS') or _default_group_commit_ms()} ms",
        "storage behind the bridge and the handlers: an IN-PROCESS FAKE of SQS/S3/DynamoDB (no AWS, no moto): "
        "the figures are our own cost",
        f"AWS round trip stood in for: {aws_latency_ms():g} ms per call of the handlers' boto3 clients "
        "(not the bridge's fakes)",
        "",
    ]
    print(render(rows, header))
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    return 1 if any(r.measure == "FAILED" for r in rows) else 0


def _default_group_commit_ms() -> float:
    from smtp_bridge.settings import BridgeSettings

    default: float = BridgeSettings.model_fields["group_commit_ms"].default
    return default


SESSIONS_NOTE = "smtp-source -s 20 -l 5120 (5 KB), new connection per message and reused (-d)"

if __name__ == "__main__":
    sys.exit(main())
