"""Configuration of webhooks (management in the API, fan-out in the events function, sending)."""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from mailrelay.settings import model_from_env

# Seconds before each retry: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 27.6 hours in all).
DEFAULT_RETRY_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


def _seconds_list(value: object) -> object:
    if isinstance(value, str):
        return tuple(int(v) for v in value.split(",") if v.strip())
    return value


class WebhookSettings(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    webhooks_table: str = Field("", alias="MAILRELAY_WEBHOOKS_TABLE")
    webhook_queue_url: str = Field("", alias="MAILRELAY_WEBHOOK_QUEUE_URL")
    # The local stack alone sets this: http:// to 127.0.0.1 (never in AWS, where the template leaves it false).
    allow_loopback_http: bool = Field(False, alias="MAILRELAY_WEBHOOKS_ALLOW_LOOPBACK_HTTP")
    retry_schedule: Annotated[tuple[int, ...], BeforeValidator(_seconds_list)] = Field(
        DEFAULT_RETRY_SCHEDULE, alias="MAILRELAY_WEBHOOK_RETRY_SCHEDULE", min_length=1, max_length=20
    )
    timeout_seconds: float = Field(10.0, alias="MAILRELAY_WEBHOOK_TIMEOUT_SECONDS", gt=0, le=30)
    disable_after_days: float = Field(5.0, alias="MAILRELAY_WEBHOOK_DISABLE_AFTER_DAYS", gt=0)
    max_endpoints_per_client: int = Field(10, alias="MAILRELAY_WEBHOOKS_PER_CLIENT", ge=1, le=100)
    # Posts to one endpoint at a time, across every running webhook function (see EndpointSlots).
    max_in_flight_per_endpoint: int = Field(2, alias="MAILRELAY_WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT", ge=1, le=100)
    # The event source mapping's MaximumConcurrency, when known: one endpoint never gets all of it.
    max_concurrency: int | None = Field(None, alias="MAILRELAY_WEBHOOK_MAX_CONCURRENCY", ge=2, le=1000)
    # Wait before a job whose endpoint has no free slot is tried again (not counted as an attempt).
    busy_retry_seconds: int = Field(5, alias="MAILRELAY_WEBHOOK_BUSY_RETRY_SECONDS", ge=0, le=900)

    @property
    def endpoint_slots(self) -> int:
        """Posts one endpoint may have in flight: the configured bound, and always less than the function's
        whole concurrency, so that a slow endpoint leaves at least one function for the others."""
        if self.max_concurrency is None:
            return self.max_in_flight_per_endpoint
        return max(1, min(self.max_in_flight_per_endpoint, self.max_concurrency - 1))


def webhook_settings_from(env: dict[str, str]) -> WebhookSettings:
    return model_from_env(WebhookSettings, env, "webhook configuration")


@lru_cache(maxsize=1)
def get_webhook_settings() -> WebhookSettings:
    """Parsed once per process; tests call ``get_webhook_settings.cache_clear()``."""
    return webhook_settings_from(dict(os.environ))
