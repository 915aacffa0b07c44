"""Debian's swaks and msmtp against the bridge: STARTTLS+AUTH, implicit TLS, PROXY v2."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.bridge.conftest import HOST, message

swaks = shutil.which("swaks")
msmtp = shutil.which("msmtp")


def _swaks_has_tls() -> bool:
    if swaks is None:
        return False
    support = subprocess.run([swaks, "--support"], capture_output=True, text=True, timeout=30)
    return "=== TLS supported" in support.stdout + support.stderr


needs_swaks = pytest.mark.skipif(
    not _swaks_has_tls(), reason="swaks with TLS is not installed (make system-packages: swaks libnet-ssleay-perl)"
)
needs_msmtp = pytest.mark.skipif(msmtp is None, reason="msmtp is not installed (make system-packages)")


def queued_id(output: str) -> str:
    match = re.search(r"250 2\.0\.0 OK queued as ([0-9a-f]{32})", output)
    assert match, output
    return match.group(1)


def after_added(raw: bytes, data: bytes) -> bytes:
    """What the client sent: ``raw`` from the first header the client wrote (ours come before it)."""
    return raw[raw.index(data.split(b"\r\n", 1)[0]) :]


def run_swaks(*args: str) -> str:
    assert swaks is not None
    done = subprocess.run([swaks, *args], capture_output=True, text=True, timeout=60)
    return done.stdout + done.stderr


@pytest.fixture
def data_file(tmp_path: Path) -> tuple[Path, bytes]:
    data = message(subject="From swaks", body="Hello from a legacy application.\r\n..dot\r\nEnd.")
    path = tmp_path / "message.eml"
    path.write_bytes(data)
    return path, data


@needs_swaks
@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_swaks_submission_lands_byte_identical(start_bridge, shop_login, queued, data_file, mode):
    bridge = start_bridge()
    path, data = data_file
    tls = ["--tls"] if mode == "starttls" else ["--tls-on-connect"]
    output = run_swaks(
        "--server", HOST, "--port", str(bridge.ports[mode]), *tls, "--tls-verify", "--tls-ca-path",
        str(bridge.certs.ca_file), "--auth", "PLAIN", "--auth-user", shop_login[0], "--auth-password", shop_login[1],
        "--from", "app@example.com", "--to", "someone@example.net", "--helo", "legacy.app", "--data", f"@{path}",
    )  # fmt: skip
    message_id = queued_id(output)
    [item] = queued()
    assert item["id"] == message_id
    # swaks ends DATA with one more CRLF of its own; everything else is exactly the file.
    assert after_added(item["raw"], data) == data + b"\r\n"


@needs_swaks
def test_swaks_without_auth_and_with_a_wrong_password(start_bridge, shop_login, queued, data_file):
    bridge = start_bridge()
    common = ["--server", HOST, "--port", str(bridge.ports["starttls"]), "--tls", "--from", "app@example.com",
              "--to", "someone@example.net", "--data", f"@{data_file[0]}"]  # fmt: skip
    assert "530 5.7.0 Authentication required" in run_swaks(*common)
    wrong = run_swaks(*common, "--auth", "LOGIN", "--auth-user", "shop", "--auth-password", "mr_nope")
    assert "535 5.7.8" in wrong and "queued as" not in wrong
    assert queued() == []


@needs_swaks
def test_swaks_through_proxy_protocol_v2(start_bridge, shop_key, queued, data_file):
    bridge = start_bridge(
        proxy_protocol=True,
        proxy_trusted_networks=["127.0.0.0/8"],
        plain_port=0,
        allowed_networks=[{"cidr": "192.0.2.0/24", "client_id": "shop"}],
    )
    output = run_swaks(
        "--server", HOST, "--port", str(bridge.ports["plain"]), "--proxy-version", "2", "--proxy-family", "AF_INET",
        "--proxy-source", "192.0.2.10", "--proxy-source-port", "40000", "--proxy-dest", "10.0.0.5",
        "--proxy-dest-port", "25", "--from", "app@example.com", "--to", "someone@example.net",
        "--data", f"@{data_file[0]}",
    )  # fmt: skip
    queued_id(output)
    [item] = queued()
    assert b"[192.0.2.10]" in item["raw"].split(b"\r\n")[0]
    plain = run_swaks("--server", HOST, "--port", str(bridge.ports["plain"]), "--from", "app@example.com",
                      "--to", "someone@example.net", "--data", f"@{data_file[0]}", "--timeout", "10")  # fmt: skip
    assert "250 2.0.0" not in plain  # no header: no greeting, no service


@needs_msmtp
@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_msmtp_submission(start_bridge, shop_login, queued, data_file, mode, tmp_path):
    bridge = start_bridge()
    data = data_file[1]
    assert msmtp is not None
    config = tmp_path / "msmtprc"
    config.write_text("defaults\n")
    config.chmod(0o600)
    done = subprocess.run(
        [msmtp, f"--file={config}", "--debug", f"--host={HOST}", f"--port={bridge.ports[mode]}", "--tls=on",
         f"--tls-starttls={'on' if mode == 'starttls' else 'off'}", f"--tls-trust-file={bridge.certs.ca_file}",
         "--auth=plain", f"--user={shop_login[0]}", f"--passwordeval=echo {shop_login[1]}",
         "--domain=legacy.app", "--from=app@example.com", "someone@example.net"],
        input=data, capture_output=True, timeout=60,
    )  # fmt: skip
    output = (done.stdout + done.stderr).decode(errors="replace")
    assert done.returncode == 0, output
    message_id = queued_id(output)
    [item] = queued()
    assert item["id"] == message_id
    assert after_added(item["raw"], data) == data
