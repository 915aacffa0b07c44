"""The bridge's configuration: one model of MAILRELAY_BRIDGE_* environment variables, validated at start.

Storage (queue, tables, bucket) and message policy come from the core's MAILRELAY_* settings; this
model holds only what is specific to speaking SMTP.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from mailrelay.message_headers import MAX_HEADER_SECTION_OCTETS
from mailrelay.settings import MAX_RECIPIENTS_CEILING, ConfigurationError, model_from_env

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AllowedNetwork(BaseModel):
    """A network whose hosts may send without AUTH, as the given client (and so only as its senders)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cidr: Network
    client_id: str = Field(min_length=1)

    @field_validator("cidr", mode="before")
    @classmethod
    def _network(cls, value: Any) -> Network:
        return ipaddress.ip_network(str(value), strict=False)


def _json_list(value: Any) -> Any:
    if isinstance(value, str):
        return json.loads(value) if value.strip() else []
    return value


class BridgeSettings(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    hostname: str = Field(default_factory=socket.getfqdn, alias="MAILRELAY_BRIDGE_HOSTNAME", min_length=1)
    bind_address: str = Field("0.0.0.0", alias="MAILRELAY_BRIDGE_BIND_ADDRESS")  # noqa: S104 - a server
    # Ports: 0 picks a free port (tests, local stack); None (empty variable) turns the listener off. The
    # defaults are unprivileged; a load balancer maps the standard 587 and 465 to them.
    submission_port: int | None = Field(2587, alias="MAILRELAY_BRIDGE_SUBMISSION_PORT", ge=0, le=65535)
    implicit_tls_port: int | None = Field(2465, alias="MAILRELAY_BRIDGE_IMPLICIT_TLS_PORT", ge=0, le=65535)
    # Cleartext listener: only hosts of the allowlisted networks get past its greeting.
    plain_port: int | None = Field(None, alias="MAILRELAY_BRIDGE_PLAIN_PORT", ge=0, le=65535)
    readiness_port: int | None = Field(8080, alias="MAILRELAY_BRIDGE_READINESS_PORT", ge=0, le=65535)

    tls_cert_file: str | None = Field(None, alias="MAILRELAY_BRIDGE_TLS_CERT_FILE")
    tls_key_file: str | None = Field(None, alias="MAILRELAY_BRIDGE_TLS_KEY_FILE")
    # PEM text, as ECS injects Secrets Manager values into the environment.
    tls_cert_pem: SecretStr | None = Field(None, alias="MAILRELAY_BRIDGE_TLS_CERT_PEM")
    tls_key_pem: SecretStr | None = Field(None, alias="MAILRELAY_BRIDGE_TLS_KEY_PEM")

    allowed_networks: tuple[AllowedNetwork, ...] = Field((), alias="MAILRELAY_BRIDGE_ALLOWED_NETWORKS")

    # RFC 5321 §4.5.3.1.8: at least 100; at most what a status item in DynamoDB can hold.
    max_recipients: int = Field(100, alias="MAILRELAY_BRIDGE_MAX_RECIPIENTS", ge=100, le=MAX_RECIPIENTS_CEILING)
    command_timeout_seconds: float = Field(300, alias="MAILRELAY_BRIDGE_COMMAND_TIMEOUT_SECONDS", gt=0, le=340)
    data_timeout_seconds: float = Field(300, alias="MAILRELAY_BRIDGE_DATA_TIMEOUT_SECONDS", gt=0, le=600)
    # A session is closed (421, between transactions) after this long, however busy: re-checks of the
    # key at each MAIL stop a revoked key; this bounds what a stolen connection can do besides.
    session_max_seconds: float = Field(1800, alias="MAILRELAY_BRIDGE_SESSION_MAX_SECONDS", gt=0, le=86400)
    tls_handshake_timeout_seconds: float = Field(10, alias="MAILRELAY_BRIDGE_TLS_HANDSHAKE_TIMEOUT_SECONDS", gt=0)
    max_connections: int = Field(1000, alias="MAILRELAY_BRIDGE_MAX_CONNECTIONS", ge=1)
    max_connections_per_client: int = Field(50, alias="MAILRELAY_BRIDGE_MAX_CONNECTIONS_PER_CLIENT", ge=1)

    auth_failure_delay_seconds: float = Field(1.0, alias="MAILRELAY_BRIDGE_AUTH_FAILURE_DELAY_SECONDS", ge=0)
    auth_failure_limit: int = Field(5, alias="MAILRELAY_BRIDGE_AUTH_FAILURE_LIMIT", ge=1)
    auth_failure_window_seconds: float = Field(300, alias="MAILRELAY_BRIDGE_AUTH_FAILURE_WINDOW_SECONDS", gt=0)

    proxy_protocol: bool = Field(False, alias="MAILRELAY_BRIDGE_PROXY_PROTOCOL")
    proxy_protocol_timeout_seconds: float = Field(5, alias="MAILRELAY_BRIDGE_PROXY_PROTOCOL_TIMEOUT_SECONDS", gt=0)
    # Peers allowed to send a PROXY header (the load balancer's subnets): required when PROXY is on,
    # since a peer that may send one chooses the client address that allow-lists and limits see.
    proxy_trusted_networks: tuple[Network, ...] = Field((), alias="MAILRELAY_BRIDGE_PROXY_TRUSTED_NETWORKS")

    bare_newlines: Literal["reject", "normalize"] = Field("reject", alias="MAILRELAY_BRIDGE_BARE_NEWLINES")
    drain_grace_seconds: float = Field(100, alias="MAILRELAY_BRIDGE_DRAIN_GRACE_SECONDS", ge=0, le=115)
    workers: int = Field(1, alias="MAILRELAY_BRIDGE_WORKERS", ge=1, le=64)
    storage_threads: int = Field(16, alias="MAILRELAY_BRIDGE_STORAGE_THREADS", ge=1, le=256)
    # Group commit: concurrent sessions' queue writes share SendMessageBatch calls; a write waits at
    # most this long for others to join (0 = one SendMessage per message). It waits only while other
    # sessions are inside a transaction, so the typical wait stays a few ms; with clients connecting
    # per message, 10 ms closed too many groups of one to three before the others' DATA was in.
    group_commit_ms: float = Field(20, alias="MAILRELAY_BRIDGE_GROUP_COMMIT_MS", ge=0, le=50)
    metrics_interval_seconds: float = Field(60, alias="MAILRELAY_BRIDGE_METRICS_INTERVAL_SECONDS", gt=0)

    # DATA is spooled as it arrives: up to spool_memory_bytes of each message in memory, the rest in a
    # temporary file in spool_dir (the task's ephemeral storage on Fargate; empty: the system default).
    spool_dir: str | None = Field(None, alias="MAILRELAY_BRIDGE_SPOOL_DIR")
    spool_memory_bytes: int = Field(128 * 1024, alias="MAILRELAY_BRIDGE_SPOOL_MEMORY_BYTES", ge=0, le=16 * 1024 * 1024)
    # Octets of DATA one process holds at once; past it a transaction gets 452 4.3.1. 0: derived at start
    # from the spool's free disk space (smtp_bridge.budget.derived_limit).
    inflight_bytes: int = Field(0, alias="MAILRELAY_BRIDGE_INFLIGHT_BYTES", ge=0)
    # The task's memory (the template passes it): the in-memory part of every session must fit in half.
    task_memory_bytes: int = Field(1024**3, alias="MAILRELAY_BRIDGE_TASK_MEMORY_BYTES", gt=0)

    @field_validator("submission_port", "implicit_tls_port", "plain_port", "readiness_port", mode="before")
    @classmethod
    def _empty_is_off(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip().lower() in {"", "off", "none"} else value

    @field_validator("allowed_networks", mode="before")
    @classmethod
    def _allowlist(cls, value: Any) -> Any:
        return _json_list(value)

    @field_validator("proxy_trusted_networks", mode="before")
    @classmethod
    def _trusted(cls, value: Any) -> Any:
        items = _json_list(value)
        return tuple(ipaddress.ip_network(str(i), strict=False) for i in items)

    @model_validator(mode="after")
    def _coherent(self) -> BridgeSettings:
        tls_listeners = self.submission_port is not None or self.implicit_tls_port is not None
        has_files = bool(self.tls_cert_file and self.tls_key_file)
        has_pem = bool(self.tls_cert_pem and self.tls_key_pem)
        if tls_listeners and not (has_files or has_pem):
            raise ValueError("a certificate and key are required (TLS_CERT_FILE/TLS_KEY_FILE or TLS_CERT_PEM/KEY_PEM)")
        if self.plain_port is not None and not self.allowed_networks:
            raise ValueError("the plain listener serves allowlisted networks only; set ALLOWED_NETWORKS")
        if self.proxy_protocol and not self.proxy_trusted_networks:
            raise ValueError("PROXY protocol is on: set PROXY_TRUSTED_NETWORKS to the load balancer's networks")
        if self.submission_port is None and self.implicit_tls_port is None and self.plain_port is None:
            raise ValueError("no listener is configured")
        if self.workers * self.max_connections * self.session_memory_bound > self.task_memory_bytes // 2:
            raise ValueError(
                f"WORKERS x MAX_CONNECTIONS sessions of up to {self.session_memory_bound} octets in memory each"
                " do not fit in half of TASK_MEMORY_BYTES: lower SPOOL_MEMORY_BYTES or MAX_CONNECTIONS"
            )
        return self

    @property
    def session_memory_bound(self) -> int:
        """What one session in DATA holds in memory at most: its spool buffer, header section and line."""
        return self.spool_memory_bytes + MAX_HEADER_SECTION_OCTETS + 2 * 1024

    @property
    def has_tls(self) -> bool:
        return bool((self.tls_cert_file and self.tls_key_file) or (self.tls_cert_pem and self.tls_key_pem))


def bridge_settings_from(env: dict[str, str] | None = None) -> BridgeSettings:
    try:
        return model_from_env(BridgeSettings, dict(os.environ) if env is None else env, "bridge configuration")
    except json.JSONDecodeError as exc:
        raise ConfigurationError(f"invalid bridge configuration: a JSON list is not valid JSON: {exc}") from exc
