"""`make run`: the whole system on one machine, with moto's server standing in for AWS.

Real API, delivery and events handlers, the real SMTP bridge and the real SMTP client; local pollers play
Lambda's SQS trigger and its DynamoDB Streams trigger, and a capture server plays the upstream unless one
is configured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import Any

from local_stack.template import load_template, project_root

logger = logging.getLogger("mailrelay.local")

DEFAULT_PORTS = {"api": 8787, "smtp": 2587, "smtps": 2465, "capture": 2525, "aws": 4577, "viewer": 8788}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="mailrelay run", description="Run mailrelay locally, no AWS account needed.")
    parser.add_argument("--host", default=env("MAILRELAY_LOCAL_HOST", "127.0.0.1"))
    for name, port in DEFAULT_PORTS.items():
        parser.add_argument(
            f"--{name}-port", type=int, default=int(env(f"MAILRELAY_LOCAL_{name.upper()}_PORT", port)),
            help=f"default {port} (env MAILRELAY_LOCAL_{name.upper()}_PORT)",
        )  # fmt: skip
    parser.add_argument(
        "--allow-from", action="append", default=None,
        help="domain or address the dev client may send as (repeatable; default example.com, "
        "env MAILRELAY_LOCAL_ALLOW_FROM comma-separated)",
    )  # fmt: skip
    parser.add_argument("--state-dir", default=env("MAILRELAY_LOCAL_STATE_DIR", str(project_root() / ".mailrelay")))
    args = parser.parse_args(argv)
    if args.allow_from is None:
        args.allow_from = [a.strip() for a in env("MAILRELAY_LOCAL_ALLOW_FROM", "example.com").split(",") if a.strip()]
    return args


def check_ports_free(host: str, ports: dict[str, int]) -> list[str]:
    taken = []
    for name, port in ports.items():
        if port == 0:
            continue
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError:
                taken.append(
                    f"{name} port {port} is already in use (set --{name}-port or MAILRELAY_LOCAL_{name.upper()}_PORT)"
                )
    return taken


class BridgeThread:
    """The SMTP bridge on its own event loop, in this process."""

    def __init__(self, bridge_settings: Any) -> None:
        from smtp_bridge.server import Bridge

        self.bridge = Bridge(bridge_settings, readiness=False)
        self.loop = asyncio.new_event_loop()
        self.ports: dict[str, int] = {}
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="smtp-bridge", daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.ports = self.loop.run_until_complete(self.bridge.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()

    def start(self) -> dict[str, int]:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        return self.ports

    def stop(self) -> None:
        if not self.loop.is_running():
            return
        future = asyncio.run_coroutine_threadsafe(self.bridge.drain(), self.loop)
        try:
            future.result(timeout=15)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("werkzeug", "mail.log", "botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    ports = {name: getattr(args, f"{name}_port") for name in DEFAULT_PORTS}
    taken = check_ports_free(args.host, ports)
    if taken:
        for line in taken:
            print(f"mailrelay run: {line}", file=sys.stderr)
        return 2
    stack = LocalStack(args)
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        info = stack.start()
    except Exception as exc:
        logger.exception("could not start the local stack")
        print(f"mailrelay run: could not start: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    print_banner(info, stack.state / "local.json")
    stop.wait()
    print("\nmailrelay: stopping...", flush=True)
    stack.stop()
    print("mailrelay: stopped", flush=True)
    return 0


class LocalStack:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.state = Path(args.state_dir)
        self.components: list[Any] = []

    def start(self) -> dict[str, Any]:
        from local_stack.aws_standin import REGION, start_aws
        from local_stack.tls import ensure_tls

        args, host = self.args, self.args.host
        self.state.mkdir(parents=True, exist_ok=True)
        previous = self._previous_info()
        template = load_template()

        aws = start_aws(host, args.aws_port)
        self.components.append(aws)
        for name, value in aws.resources.environment.items():
            if name not in aws.resources.tunable or name not in os.environ:  # e.g. MAILRELAY_MAX_MESSAGE_BYTES
                os.environ[name] = value
        os.environ["MAILRELAY_DEAD_LETTER_QUEUE_URL"] = aws.resources.names.get("DeliveryDeadLetterQueue", "")
        # One local writer: the feed need not wait long for concurrent writes to settle.
        os.environ.setdefault("MAILRELAY_EVENTS_FEED_SETTLE_SECONDS", "1")
        # Only here may webhooks go to http://127.0.0.1 (a receiver on this machine); never in AWS.
        os.environ["MAILRELAY_WEBHOOKS_ALLOW_LOOPBACK_HTTP"] = "true"
        tls = ensure_tls(self.state / "tls")
        capture_dir = self.state / "captured"

        upstream_note = "your configured upstreams (MAILRELAY_UPSTREAMS)"
        if not os.environ.get("MAILRELAY_UPSTREAMS") and not os.environ.get("MAILRELAY_UPSTREAMS_PARAMETER"):
            from local_stack.capture import CaptureServer

            capture = CaptureServer(capture_dir, host, args.capture_port, tls.server_context())
            capture.start()
            self.components.append(capture)
            os.environ["MAILRELAY_UPSTREAMS"] = json.dumps(
                [{"name": "local-capture", "host": "localhost", "port": capture.port, "tls": "starttls",
                  "ca_file": str(tls.ca_cert)}]
            )  # fmt: skip
            upstream_note = f"local capture server on {host}:{capture.port} (STARTTLS)"
        from local_stack.simulated import LOCAL_RETRY_SCHEDULE, with_simulator

        simulated_dir, simulator_domain = self.state / "simulated", None
        if os.environ.get("MAILRELAY_UPSTREAMS"):  # not with an SSM parameter, which the list would override
            upstreams, simulator_domain = with_simulator(os.environ["MAILRELAY_UPSTREAMS"], simulated_dir)
            os.environ["MAILRELAY_UPSTREAMS"] = upstreams
        for name, value in LOCAL_RETRY_SCHEDULE.items():
            os.environ.setdefault(name, value)

        # Handlers read their settings at import, as at a Lambda cold start: environment first.
        if str(project_root()) not in sys.path:
            sys.path.insert(0, str(project_root()))  # functions/ are not installed, as in Lambda
        from mailrelay.events.settings import get_event_settings
        from mailrelay.settings import get_settings
        from mailrelay.webhooks.settings import get_webhook_settings
        from mailrelay.wiring import Services

        get_settings.cache_clear()
        get_event_settings.cache_clear()
        get_webhook_settings.cache_clear()
        services = Services(get_settings())
        client, key = self._dev_client(services, previous)

        from functions.api import app as api_app
        from functions.deliver import app as deliver_app
        from functions.events import app as events_app
        from functions.webhooks import app as webhooks_app
        from local_stack.http_gateway import HttpGateway, routes_from_template
        from local_stack.sqs_poller import SqsPoller

        api_timeout = int(template["Resources"]["ApiFunction"]["Properties"].get("Timeout", 20)) * 1000
        gateway = HttpGateway(host, args.api_port, routes_from_template(template, "ApiFunction"),
                              api_app.lambda_handler, api_timeout)  # fmt: skip
        gateway.start()
        self.components.append(gateway)

        deliver = template["Resources"]["DeliverFunction"]["Properties"]
        sqs_event = next(e["Properties"] for e in deliver["Events"].values() if e["Type"] == "SQS")
        import boto3

        poller = SqsPoller(
            boto3.client("sqs", region_name=REGION), aws.resources.names["DeliveryQueue"],
            aws.resources.arns["DeliveryQueue"], deliver_app.lambda_handler,
            batch_size=int(sqs_event.get("BatchSize", 10)),
            window_seconds=batching_window(sqs_event, "MAILRELAY_LOCAL_DELIVERY_BATCHING_WINDOW_SECONDS"),
            timeout_ms=int(deliver.get("Timeout", 30)) * 1000, region=REGION,
        )  # fmt: skip
        poller.start()
        self.components.append(poller)

        from local_stack.stream_poller import StreamPoller, streams_client

        events_function = template["Resources"]["EventsFunction"]["Properties"]
        stream_event = next(e["Properties"] for e in events_function["Events"].values() if e["Type"] == "DynamoDB")
        stream_poller = StreamPoller(
            streams_client(REGION), aws.resources.arns["MessagesTable.StreamArn"], events_app.lambda_handler,
            batch_size=int(stream_event.get("BatchSize", 100)),
            window_seconds=float(stream_event.get("MaximumBatchingWindowInSeconds", 1)),
            timeout_ms=int(events_function.get("Timeout", 60)) * 1000, region=REGION,
            bisect=stream_event.get("BisectBatchOnFunctionError") is True,
        )  # fmt: skip
        stream_poller.start()
        self.components.append(stream_poller)

        hooks = template["Resources"]["WebhookFunction"]["Properties"]
        hooks_event = next(e["Properties"] for e in hooks["Events"].values() if e["Type"] == "SQS")
        webhook_poller = SqsPoller(
            boto3.client("sqs", region_name=REGION), aws.resources.names["WebhookQueue"],
            aws.resources.arns["WebhookQueue"], webhooks_app.lambda_handler,
            batch_size=int(hooks_event.get("BatchSize", 10)), window_seconds=batching_window(hooks_event),
            timeout_ms=int(hooks.get("Timeout", 60)) * 1000, region=REGION,
        )  # fmt: skip
        webhook_poller.start()
        self.components.append(webhook_poller)

        from smtp_bridge.settings import BridgeSettings

        bridge_settings = BridgeSettings.model_validate(
            {
                "MAILRELAY_BRIDGE_HOSTNAME": "localhost",
                "MAILRELAY_BRIDGE_BIND_ADDRESS": host,
                "MAILRELAY_BRIDGE_SUBMISSION_PORT": args.smtp_port,
                "MAILRELAY_BRIDGE_IMPLICIT_TLS_PORT": args.smtps_port,
                "MAILRELAY_BRIDGE_READINESS_PORT": None,
                "MAILRELAY_BRIDGE_TLS_CERT_FILE": str(tls.cert),
                "MAILRELAY_BRIDGE_TLS_KEY_FILE": str(tls.key),
                "MAILRELAY_BRIDGE_DRAIN_GRACE_SECONDS": 5,
            }
        )
        bridge = BridgeThread(bridge_settings)
        bridge_ports = bridge.start()
        self.components.append(bridge)

        from local_stack.viewer import ViewerServer

        messages_table = aws.resources.names["MessagesTable"]
        viewer = ViewerServer(host, args.viewer_port, [capture_dir, simulated_dir], messages_table,
                              boto3.client("dynamodb", region_name=REGION))  # fmt: skip
        viewer.start()
        self.components.append(viewer)

        info = {
            "api_url": f"http://{host}:{gateway.port}",
            "events_url": f"http://{host}:{gateway.port}/v1/events",
            "api_key": key,
            "smtp_host": host,
            "smtp_starttls_port": bridge_ports["starttls"],
            "smtp_tls_port": bridge_ports["implicit"],
            "smtp_username": client,
            "smtp_password": key,
            "allowed_senders": list(self.args.allow_from),
            "capture_dir": str(capture_dir),
            "ca_cert": str(tls.ca_cert),
            "viewer_url": viewer.url,
            "simulator_domain": simulator_domain,
            "upstream": upstream_note,
            "aws_endpoint_url": aws.endpoint_url,
            "aws_region": REGION,
            "clients_table": aws.resources.names["ClientsTable"],
            "suppressions_table": aws.resources.names["SuppressionsTable"],
            "event_bus": aws.resources.names["EventBus"],
            "pid": os.getpid(),
        }
        info_path = self.state / "local.json"
        tmp = info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(info, indent=2) + "\n")
        tmp.chmod(0o600)
        tmp.replace(info_path)
        return info

    def _previous_info(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads((self.state / "local.json").read_text())
            return data
        except (OSError, ValueError):
            return {}

    def _dev_client(self, services: Any, previous: dict[str, Any]) -> tuple[str, str]:
        """The dev client keeps its key across restarts, so apps configured with it keep working."""
        key = previous.get("api_key") if str(previous.get("api_key", "")).startswith("mr_") else None
        client, key = services.clients.create("dev", list(self.args.allow_from), key=key)
        return client.id, key

    def stop(self) -> None:
        for component in reversed(self.components):
            try:
                component.stop()
            except Exception:
                logger.exception("error while stopping %s", type(component).__name__)
        self.components.clear()
        info_path = self.state / "local.json"
        if info_path.exists():
            data = self._previous_info()
            data.pop("pid", None)
            info_path.write_text(json.dumps(data, indent=2) + "\n")


def batching_window(sqs_event: dict[str, Any], override: str | None = None) -> float:
    """The template's window (Lambda's default is 0), unless the variable ``override`` tries another."""
    value = os.environ.get(override) if override else None
    return float(value if value else sqs_event.get("MaximumBatchingWindowInSeconds", 0))


def print_banner(info: dict[str, Any], info_path: Path) -> None:
    lines = [
        "",
        "mailrelay is running locally. Ctrl-C stops it.",
        "",
        f"  HTTP API        {info['api_url']}   (POST /v1/messages, GET /v1/openapi.json)",
        f"  API key         {info['api_key']}",
        f"  SMTP            {info['smtp_host']}:{info['smtp_starttls_port']} (STARTTLS)   "
        f"{info['smtp_host']}:{info['smtp_tls_port']} (implicit TLS)",
        f"  SMTP username   {info['smtp_username']}",
        f"  SMTP password   {info['smtp_password']}",
        f"  allowed senders {', '.join(info['allowed_senders'])}",
        f"  CA certificate  {info['ca_cert']}",
        f"  delivering to   {info['upstream']}",
        f"  captured mail   {info['capture_dir']}",
        f"  mail viewer     {info['viewer_url']}   (JSON API: {info['viewer_url']}/api/v1/messages)",
        *(
            [
                f"  simulator       <behaviour>@{info['simulator_domain']}   (delivered, bounce, policy, defer, "
                "defer-always, timeout, complaint)"
            ]
            if info.get("simulator_domain")
            else []
        ),
        f"  events feed     {info['events_url']}   (each event is also logged here as it is recorded)",
        f"  AWS stand-in    {info['aws_endpoint_url']} (moto)",
        "",
        f"  The same, as JSON: {info_path}",
        "",
    ]
    print("\n".join(lines), flush=True)
