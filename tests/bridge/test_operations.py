"""What operators rely on: configuration errors caught at start, the readiness endpoint, metrics."""

from __future__ import annotations

import json
import socket

import pytest

from mailrelay.settings import ConfigurationError
from smtp_bridge.settings import bridge_settings_from
from tests.bridge.conftest import HOST, proxy_v2_local


def http_get(port: int, path: str, prefix: bytes = b"") -> tuple[int, dict]:
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(prefix + f"GET {path} HTTP/1.1\r\nHost: bridge\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_readiness_live_and_metrics(start_bridge, shop_login):
    bridge = start_bridge()
    port = bridge.ports["readiness"]
    assert http_get(port, "/ready") == (200, {"ready": True})
    with bridge.starttls(shop_login) as smtp:
        smtp.mail("ceo@bank.example")
    status, counters = http_get(port, "/metrics")
    assert status == 200 and counters["reply_550"] >= 1 and counters["auth_succeeded"] >= 1
    bridge.runtime.draining = True
    assert http_get(port, "/ready") == (503, {"ready": False})
    assert http_get(port, "/live") == (200, {"live": True})


@pytest.mark.parametrize(
    ("env", "complaint"),
    [
        ({"MAILRELAY_BRIDGE_SUBMISSION_PORT": "587"}, "certificate and key are required"),
        (
            {
                "MAILRELAY_BRIDGE_SUBMISSION_PORT": "",
                "MAILRELAY_BRIDGE_IMPLICIT_TLS_PORT": "",
                "MAILRELAY_BRIDGE_PLAIN_PORT": "25",
            },
            "allowlisted networks only",
        ),
        ({"MAILRELAY_BRIDGE_MAX_RECIPIENTS": "50"}, "MAILRELAY_BRIDGE_MAX_RECIPIENTS"),
        ({"MAILRELAY_BRIDGE_ALLOWED_NETWORKS": "[{"}, "ALLOWED_NETWORKS"),
        ({"MAILRELAY_BRIDGE_BARE_NEWLINES": "keep"}, "MAILRELAY_BRIDGE_BARE_NEWLINES"),
    ],
)
def test_bad_configuration_is_refused_at_start(env, complaint):
    with pytest.raises(ConfigurationError, match=complaint):
        bridge_settings_from(env)


def test_allowlist_and_pem_configuration(certs):
    settings = bridge_settings_from({
        "MAILRELAY_BRIDGE_TLS_CERT_PEM": certs.cert_file.read_text(),
        "MAILRELAY_BRIDGE_TLS_KEY_PEM": certs.key_file.read_text(),
        "MAILRELAY_BRIDGE_ALLOWED_NETWORKS": '[{"cidr": "10.1.0.0/16", "client_id": "erp"}]',
        "MAILRELAY_BRIDGE_PLAIN_PORT": "2525",
    })  # fmt: skip
    from smtp_bridge.tls import server_context

    assert server_context(settings) is not None
    assert str(settings.allowed_networks[0].cidr) == "10.1.0.0/16"
    assert "PRIVATE KEY" not in repr(settings)  # secrets stay out of logs and tracebacks


def test_health_checks_behind_a_proxy_protocol_load_balancer_carry_its_header(start_bridge):
    bridge = start_bridge(proxy_protocol=True, proxy_trusted_networks=["127.0.0.0/8"])
    assert http_get(bridge.ports["readiness"], "/ready", prefix=proxy_v2_local()) == (200, {"ready": True})
