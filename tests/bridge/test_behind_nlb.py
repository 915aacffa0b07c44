"""The bridge behind a front that forwards as the deployed Network Load Balancer does: real clients
complete STARTTLS+AUTH on 587 and implicit TLS on 465, and the bridge sees each client's own address."""

from __future__ import annotations

import smtplib
import socket
import subprocess
from pathlib import Path

import pytest

from tests.bridge.conftest import HOST, RawSession, message
from tests.bridge.nlb import NlbFront, connect_from
from tests.bridge.test_operations import http_get
from tests.bridge.test_real_clients import msmtp, needs_msmtp, needs_swaks, queued_id, run_swaks

CLIENT = "127.0.0.7"  # the address the client connects from; the bridge must see it, not the front's


def received_from(raw: bytes) -> bytes:
    return raw.split(b"\r\n\tby", 1)[0]


def test_starttls_on_587_greets_at_once_and_sees_the_client_address(start_bridge, shop_login, queued):
    bridge = start_bridge()
    with NlbFront(bridge.ports["starttls"], "preserve_client_ip") as nlb:
        smtp = smtplib.SMTP(HOST, nlb.port, timeout=10, source_address=(CLIENT, 0))
        smtp.starttls(context=bridge.certs.client_context())
        smtp.login(*shop_login)
        smtp.sendmail("app@example.com", ["someone@example.net"], message())
        smtp.quit()
    (item,) = queued()
    assert f"[{CLIENT}]".encode() in received_from(item["raw"])


def test_implicit_tls_on_465(start_bridge, shop_login, queued):
    bridge = start_bridge()
    with NlbFront(bridge.ports["implicit"], "preserve_client_ip", listener_port=465) as nlb:
        smtp = smtplib.SMTP_SSL(HOST, nlb.port, timeout=10, source_address=(CLIENT, 0),
                                context=bridge.certs.client_context())  # fmt: skip
        smtp.login(*shop_login)
        smtp.sendmail("app@example.com", ["someone@example.net"], message())
        smtp.quit()
    (item,) = queued()
    assert f"[{CLIENT}]".encode() in received_from(item["raw"])


@needs_swaks
@pytest.mark.parametrize(("mode", "tls"), [("starttls", "--tls"), ("implicit", "--tls-on-connect")])
def test_swaks_through_the_load_balancer(start_bridge, shop_login, queued, mode, tls):
    bridge = start_bridge()
    with NlbFront(bridge.ports[mode], "preserve_client_ip") as nlb:
        output = run_swaks(
            "--server", HOST, "--port", str(nlb.port), "--local-interface", CLIENT, tls, "--tls-verify",
            "--tls-ca-path", str(bridge.certs.ca_file), "--auth", "PLAIN", "--auth-user", shop_login[0],
            "--auth-password", shop_login[1], "--from", "app@example.com", "--to", "someone@example.net",
        )  # fmt: skip
    (item,) = queued()
    assert item["id"] == queued_id(output)
    assert f"[{CLIENT}]".encode() in received_from(item["raw"])


@needs_msmtp
@pytest.mark.parametrize("mode", ["starttls", "implicit"])
def test_msmtp_through_the_load_balancer(start_bridge, shop_login, queued, mode, tmp_path: Path):
    bridge = start_bridge()
    assert msmtp is not None
    config = tmp_path / "msmtprc"
    config.write_text("defaults\n")
    config.chmod(0o600)
    with NlbFront(bridge.ports[mode], "preserve_client_ip") as nlb:
        done = subprocess.run(
            [msmtp, f"--file={config}", f"--host={HOST}", f"--port={nlb.port}", f"--source-ip={CLIENT}",
             "--tls=on", f"--tls-starttls={'on' if mode == 'starttls' else 'off'}",
             f"--tls-trust-file={bridge.certs.ca_file}", "--auth=plain", f"--user={shop_login[0]}",
             f"--passwordeval=echo {shop_login[1]}", "--from=app@example.com", "someone@example.net"],
            input=message(), capture_output=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")
    (item,) = queued()
    assert f"[{CLIENT}]".encode() in received_from(item["raw"])


def test_allowlisted_networks_see_the_preserved_address_on_the_plain_listener(start_bridge, shop_key, queued):
    bridge = start_bridge(plain_port=0, allowed_networks=[{"cidr": "127.0.0.9/32", "client_id": "shop"}])
    with NlbFront(bridge.ports["plain"], "preserve_client_ip", listener_port=25) as nlb:
        allowed = RawSession.__new__(RawSession)
        allowed.sock, allowed.buffer = connect_from("127.0.0.9", nlb.port), b""
        assert allowed.reply().startswith("220")
        assert allowed.command(b"EHLO printer.local").startswith("250")
        assert allowed.command(b"MAIL FROM:<app@example.com>").startswith("250")
        allowed.close()
        other = RawSession.__new__(RawSession)
        other.sock, other.buffer = connect_from("127.0.0.10", nlb.port), b""
        assert other.reply().startswith("554 5.7.1")
        other.close()


def test_the_load_balancer_health_check_passes(start_bridge):
    bridge = start_bridge()
    assert http_get(bridge.ports["readiness"], "/ready") == (200, {"ready": True})


def test_why_not_proxy_v2_a_server_first_protocol_never_greets(start_bridge):
    """With PROXY v2 the NLB sends the header with the client's first bytes; an SMTP client waits for
    220 first, so a bridge that waits for the header never greets. The template therefore preserves
    the client address instead (and a policy test refuses PROXY v2 target groups)."""
    bridge = start_bridge(proxy_protocol=True, proxy_trusted_networks=["127.0.0.0/8"], proxy_protocol_timeout_seconds=2)
    with NlbFront(bridge.ports["starttls"], "proxy_v2") as nlb:
        sock = socket.create_connection((HOST, nlb.port), timeout=5)
        with pytest.raises(TimeoutError):
            sock.recv(100)
        sock.close()
