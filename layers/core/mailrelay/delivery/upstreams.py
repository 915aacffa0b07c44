"""The upstream SMTP servers delivery hands mail to: their configuration, validation and routing."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from mailrelay.delivery.settings import DeliverySettings
from mailrelay.settings import ConfigurationError
from mailrelay.validation import describe

TlsMode = Literal["starttls", "implicit"]
# SES's SMTP endpoints: email-smtp.<region>.amazonaws.com, email-smtp-fips.<region>... where FIPS endpoints exist
# (https://docs.aws.amazon.com/ses/latest/dg/smtp-connect.html; the list: https://docs.aws.amazon.com/general/latest/gr/ses.html).
_SES_SMTP_HOST = re.compile(r"^email-smtp(?:-fips)?\.[a-z0-9-]+\.amazonaws\.com$")


class Upstream(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["smtp"] = "smtp"
    name: str = ""  # defaults to host:port; names the upstream in status records, logs and metrics
    host: str = Field(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]_-]+$")
    port: int = Field(ge=1, le=65535)
    tls: TlsMode = "starttls"
    insecure_plaintext: bool = False  # local stand-ins only: no TLS at all, never with credentials
    secret_id: str | None = Field(None, min_length=1)
    priority: int = 100  # lower is tried first
    sender_domains: tuple[str, ...] = ()  # empty: any sender without a more specific route
    ca_file: str | None = None  # a private CA bundle (PEM) instead of the system's
    # Amazon SES only: the configuration set whose event destinations publish bounces and complaints (SES
    # feedback). Sent as "X-SES-CONFIGURATION-SET: <name>", how the SMTP interface takes it
    # (https://docs.aws.amazon.com/ses/latest/dg/using-configuration-sets-in-email.html); a name is up to
    # 64 letters, digits, "-" and "_" (SES CreateConfigurationSet).
    ses_configuration_set: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")

    @field_validator("port")
    @classmethod
    def _not_25(cls, port: int) -> int:
        # AWS blocks outbound TCP port 25 from Lambda functions (lifting it needs a VPC, a NAT gateway and a
        # request to AWS; "How do I remove the restriction on port 25", AWS Knowledge Center): a message
        # routed there would only retry until it expired.
        if port == 25:
            raise ValueError(
                "port 25 is blocked for outbound mail from AWS Lambda; use 587 (STARTTLS) or 465 (implicit TLS)"
            )
        return port

    @field_validator("sender_domains")
    @classmethod
    def _lower(cls, domains: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(d.strip().lower().rstrip(".") for d in domains)

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, path: str | None) -> str | None:
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"no such file: {path}")
        return path

    @model_validator(mode="before")
    @classmethod
    def _default_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("name") and "host" in data and "port" in data:
            return {**data, "name": f"{data['host']}:{data['port']}"}
        return data

    @model_validator(mode="after")
    def _coherent(self) -> Upstream:
        if self.insecure_plaintext and self.secret_id:
            raise ValueError("secret_id is not allowed with insecure_plaintext (credentials never travel unencrypted)")
        if self.insecure_plaintext and "tls" in self.model_fields_set:
            raise ValueError("tls and insecure_plaintext exclude each other")
        return self

    def serves(self, sender_domain: str) -> bool:
        return sender_domain in self.sender_domains

    @property
    def is_ses(self) -> bool:
        """Amazon SES's SMTP interface: its endpoint's name, or a configuration set (only SES takes one)."""
        return self.ses_configuration_set is not None or _SES_SMTP_HOST.match(self.host.lower()) is not None


# Recipients at this domain reach the simulator, wherever one is configured (see mailrelay.delivery.simulator).
# The .example top-level domain is reserved (RFC 2606): without a simulator, such mail goes nowhere real.
SIMULATOR_DOMAIN = "simulator.mailrelay.example"


class SimulatorUpstream(BaseModel):
    """Answers as an SMTP server would, by the recipient's local part, without a network."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["simulator"]
    name: str = Field("simulator", min_length=1)
    domain: str = Field(SIMULATOR_DOMAIN, min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.-]+$")
    # Local stacks: a copy of each message the simulator is given (whatever it answers), as a .eml file.
    copy_to: str | None = None

    @field_validator("domain")
    @classmethod
    def _lower_domain(cls, domain: str) -> str:
        return domain.lower().rstrip(".")

    def takes(self, recipient: str) -> bool:
        return recipient.rpartition("@")[2].lower().rstrip(".") == self.domain


AnyUpstream = Upstream | SimulatorUpstream
_ENTRIES = TypeAdapter(list[dict[str, Any]])


def parse_upstreams(text: str, source: str) -> tuple[AnyUpstream, ...]:
    """Validate the JSON list; any error names ``source`` and the field, e.g. ``upstreams[0].port``."""
    try:
        entries = _ENTRIES.validate_json(text)
    except ValidationError as exc:
        raise ConfigurationError(f"{source}: {describe(exc, 'upstreams')}") from None
    upstreams: list[AnyUpstream] = []
    for index, entry in enumerate(entries):
        model: type[AnyUpstream] = SimulatorUpstream if entry.get("type") == "simulator" else Upstream
        try:
            upstreams.append(model.model_validate(entry))
        except ValidationError as exc:
            raise ConfigurationError(f"{source}: {describe(exc, f'upstreams[{index}]')}") from None
    if not upstreams:
        raise ConfigurationError(f"{source}: upstreams: at least one upstream is required")
    names = [u.name for u in upstreams]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigurationError(f"{source}: upstreams: duplicate name(s) {', '.join(duplicates)}")
    domains = [u.domain for u in upstreams if isinstance(u, SimulatorUpstream)]
    if len(domains) != len(set(domains)):
        raise ConfigurationError(f"{source}: upstreams: two simulators for one domain")
    return tuple(upstreams)


def load_upstreams(settings: DeliverySettings, read_parameter: Callable[[str], str]) -> tuple[AnyUpstream, ...]:
    """From MAILRELAY_UPSTREAMS (JSON) or else the SSM parameter MAILRELAY_UPSTREAMS_PARAMETER names."""
    if settings.upstreams_json:
        return parse_upstreams(settings.upstreams_json, "MAILRELAY_UPSTREAMS")
    if settings.upstreams_parameter:
        source = f"MAILRELAY_UPSTREAMS_PARAMETER ({settings.upstreams_parameter})"
        return parse_upstreams(read_parameter(settings.upstreams_parameter), source)
    raise ConfigurationError("MAILRELAY_UPSTREAMS or MAILRELAY_UPSTREAMS_PARAMETER must be set")


def candidates_for(upstreams: tuple[AnyUpstream, ...], mail_from: str) -> list[Upstream]:
    """SMTP upstreams routed to the sender's domain, else the unrouted ones; by priority, for failover."""
    domain = mail_from.rpartition("@")[2].lower().rstrip(".")
    smtp = [u for u in upstreams if isinstance(u, Upstream)]
    routed = [u for u in smtp if u.serves(domain)]
    pool = routed or [u for u in smtp if not u.sender_domains]
    return sorted(pool, key=lambda u: u.priority)


def simulator_for(upstreams: tuple[AnyUpstream, ...], recipient: str) -> SimulatorUpstream | None:
    return next((u for u in upstreams if isinstance(u, SimulatorUpstream) and u.takes(recipient)), None)
