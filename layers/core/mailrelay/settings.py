"""All configuration, read once from the environment and validated loudly."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mailrelay.validation import describe

EnvModel = TypeVar("EnvModel", bound=BaseModel)


MAX_RECIPIENTS_CEILING = 250


class Settings(BaseModel):
    """Environment variables (upper-case aliases) shared by the API, the bridge and delivery."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    queue_url: str = Field("", alias="MAILRELAY_QUEUE_URL")
    payload_bucket: str = Field("", alias="MAILRELAY_PAYLOAD_BUCKET")
    messages_table: str = Field("", alias="MAILRELAY_MESSAGES_TABLE")
    clients_table: str = Field("", alias="MAILRELAY_CLIENTS_TABLE")
    idempotency_table: str = Field("", alias="MAILRELAY_IDEMPOTENCY_TABLE")
    # Each client's suppression list; empty: no list (nothing is suppressed, the routes answer 404).
    suppressions_table: str = Field("", alias="MAILRELAY_SUPPRESSIONS_TABLE")

    message_id_domain: str = Field("mailrelay.local", alias="MAILRELAY_MESSAGE_ID_DOMAIN", min_length=1)
    max_message_bytes: int = Field(10_000_000, alias="MAILRELAY_MAX_MESSAGE_BYTES", gt=0)
    # Raw bytes kept in the SQS body (base64 adds a third); above this the payload goes to S3.
    inline_payload_max_bytes: int = Field(180_000, alias="MAILRELAY_INLINE_PAYLOAD_MAX_BYTES", ge=0, le=700_000)
    # Each recipient's address and SMTP reply live in the message's status item, which DynamoDB caps at
    # 400 KB (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html): 250
    # recipients of the longest address and reply, with the most tags and metadata, fit with room to spare.
    max_recipients: int = Field(50, alias="MAILRELAY_MAX_RECIPIENTS", ge=1, le=MAX_RECIPIENTS_CEILING)
    default_expiry_seconds: int = Field(3 * 86400, alias="MAILRELAY_DEFAULT_EXPIRY_SECONDS", ge=60)
    max_expiry_seconds: int = Field(5 * 86400, alias="MAILRELAY_MAX_EXPIRY_SECONDS", ge=60)
    max_schedule_seconds: int = Field(72 * 3600, alias="MAILRELAY_MAX_SCHEDULE_SECONDS", ge=0)
    status_ttl_days: int = Field(30, alias="MAILRELAY_STATUS_TTL_DAYS", ge=1)
    idempotency_ttl_seconds: int = Field(86400, alias="MAILRELAY_IDEMPOTENCY_TTL_SECONDS", ge=60)
    retry_after_seconds: int = Field(5, alias="MAILRELAY_RETRY_AFTER_SECONDS", ge=1)
    # The SMTP bridge answers a re-sent message (same client, same Message-ID or X-Mailrelay-Idempotency-Key,
    # same content) within this window with the first message's id, and queues nothing. 0: off.
    dedup_window_seconds: int = Field(86400, alias="MAILRELAY_DEDUP_WINDOW_SECONDS", ge=0, le=7 * 86400)
    # The API function remembers the client an API key found for this long: a revoked key keeps working
    # in a warm function for at most this many seconds (README, Security). 0: every request reads the table.
    api_key_cache_seconds: float = Field(5, alias="MAILRELAY_API_KEY_CACHE_SECONDS", ge=0, le=60)


class ConfigurationError(RuntimeError):
    pass


def model_from_env(model: type[EnvModel], env: dict[str, str], what: str = "configuration") -> EnvModel:
    """Validate environment variables into ``model``; the error names every bad variable."""
    try:
        return model.model_validate(env)
    except ValidationError as exc:
        raise ConfigurationError(f"invalid {what}: {describe(exc)}") from exc


def settings_from(env: dict[str, str]) -> Settings:
    return model_from_env(Settings, env)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Parsed once per process (cold start); tests call ``get_settings.cache_clear()``."""
    return settings_from(dict(os.environ))
