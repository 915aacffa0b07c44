"""Real peers from Debian's postfix package: a throwaway Postfix instance, smtp-sink and smtp-source.

Everything lives in a temporary directory and listens on loopback ports only; ``stop()`` / the context
managers take it all down again (no process is left behind).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SMTP_SOURCE = shutil.which("smtp-source") or "/usr/sbin/smtp-source"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {HOST}:{port}")


def missing_tools() -> list[str]:
    return [t for t in (POSTFIX, SMTP_SINK, SMTP_SOURCE) if not os.access(t, os.X_OK)]


class Sink:
    """smtp-sink on a loopback port, counting the messages it received (``-c`` counters on stdout)."""

    def __init__(self) -> None:
        self.port = free_port()
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [SMTP_SINK, "-c", "-u", "postfix", f"{HOST}:{self.port}", "1024"],
            stdout=self._out,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_port(self.port)
        # Our own connection above counts as one session; the message counter is what we read.

    def messages(self) -> int:
        """Messages received so far (the last ``mesg=N`` counter smtp-sink printed)."""
        self._out.seek(0)
        found = re.findall(rb"mesg=(\d+)", self._out.read())
        return int(found[-1]) if found else 0

    def wait_for(self, count: int, timeout: float) -> float:
        """Seconds until the sink has counted ``count`` messages (raises after ``timeout``)."""
        start = time.perf_counter()
        while self.messages() < count:
            if time.perf_counter() - start > timeout:
                raise TimeoutError(f"smtp-sink saw {self.messages()} of {count} messages")
            time.sleep(0.005)
        return time.perf_counter() - start

    def stop(self) -> None:
        _terminate(self.proc)
        self._out.close()


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


@dataclass
class SourceResult:
    messages: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


def smtp_source(
    port: int, *, sessions: int, messages: int, size: int, reuse: bool, timeout: float = 300
) -> SourceResult:
    """Postfix's load generator: ``messages`` of ``size`` bytes over ``sessions`` parallel sessions."""
    args = [SMTP_SOURCE, "-s", str(sessions), "-m", str(messages), "-l", str(size),
            "-f", "bench@example.com", "-t", "sink@example.net", "-M", "client.test"]  # fmt: skip
    if reuse:
        args.append("-d")
    args.append(f"{HOST}:{port}")
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, timeout=timeout, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source failed ({done.returncode}): {done.stderr.decode(errors='replace')[-500:]}")
    return SourceResult(messages, seconds)


_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.localhost
mydomain = localhost
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink_port}
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtp_dns_support_level = disabled
disable_dns_lookups = yes
smtpd_peername_lookup = no
maillog_file_prefixes = /var, /dev/stdout, /tmp
maillog_file = {dir}/maillog
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtp_destination_concurrency_limit = 20
default_destination_concurrency_limit = 20
default_destination_recipient_limit = 50
in_flow_delay = 0
{extra}
"""


class Postfix:
    """A Postfix instance configured in a temporary directory: smtpd on a loopback port, relaying to a sink."""

    def __init__(self, sink_port: int, *, hold: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mailrelay-bench-postfix-"))
        self.dir.chmod(0o755)  # Postfix's daemons run as the postfix user and must reach the queue
        (self.dir / "queue").mkdir(mode=0o755)
        (self.dir / "data").mkdir(mode=0o700)
        shutil.chown(self.dir / "data", "postfix", "postfix")
        self.port = free_port()
        self.config = self.dir / "etc"
        self.config.mkdir()
        extra = "defer_transports = relay smtp" if hold else ""
        (self.config / "main.cf").write_text(_MAIN_CF.format(dir=self.dir, sink_port=sink_port, extra=extra))
        (self.config / "master.cf").write_text(_master_cf(self.port))
        for name in ("dynamicmaps.cf", "postfix-files"):
            src = Path("/etc/postfix") / name
            if src.exists():
                shutil.copy(src, self.config / name)
        try:
            self._run("start")
            wait_port(self.port)
        except BaseException:
            self.stop()
            raise

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([POSTFIX, "-c", str(self.config), *args], capture_output=True, timeout=60, check=check)

    def command(self, tool: str, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([tool, "-c", str(self.config), *args], capture_output=True, timeout=120, check=True)

    def queued(self) -> int:
        out = subprocess.run(
            ["postqueue", "-c", str(self.config), "-j"], capture_output=True, timeout=60, check=True
        ).stdout
        return out.count(b"\n")

    def wait_queued(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.queued() < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"Postfix queued {self.queued()} of {count}")
            time.sleep(0.2)

    def flush(self) -> None:
        """Deliver what ``defer_transports`` held: lift the hold, reload, and flush the deferred queue."""
        subprocess.run(["postconf", "-c", str(self.config), "-e", "defer_transports="], check=True, timeout=30)
        self._run("reload")
        subprocess.run(["postqueue", "-c", str(self.config), "-f"], check=True, timeout=30)

    def stop(self) -> None:
        self._run("stop", check=False)
        pid_file = self.dir / "queue" / "pid" / "master.pid"
        deadline = time.monotonic() + 10
        while pid_file.exists() and time.monotonic() < deadline:
            try:
                pid = int(pid_file.read_text().strip())
                os.kill(pid, 0)
            except (ValueError, ProcessLookupError, OSError):
                break
            time.sleep(0.1)
        shutil.rmtree(self.dir, ignore_errors=True)


def _master_cf(port: int) -> str:
    """The system master.cf without chroot (the temporary queue has no chroot jail), smtpd on ``port``."""
    lines = []
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        fields = line.split()
        if line.startswith(("#", " ", "\t")) or len(fields) < 8:
            lines.append(line)
            continue
        if fields[0] in {"smtp", "submission", "smtps"} and fields[1] == "inet":
            if fields[0] != "smtp":
                continue
            fields[0] = f"{HOST}:{port}"
        fields[4] = "n"
        lines.append("  ".join(fields))
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def sink() -> Iterator[Sink]:
    s = Sink()
    try:
        yield s
    finally:
        s.stop()


@contextlib.contextmanager
def postfix(sink_port: int, *, hold: bool = False) -> Iterator[Postfix]:
    p = Postfix(sink_port, hold=hold)
    try:
        yield p
    finally:
        p.stop()
