"""Delivery-only configuration, read once from the environment (the shared part lives in mailrelay.settings)."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mailrelay.settings import model_from_env

SQS_MAX_VISIBILITY = 43_200  # seconds (12 h), counted from the receive; we stay a little under it


class DeliverySettings(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    upstreams_json: str = Field("", alias="MAILRELAY_UPSTREAMS")
    upstreams_parameter: str = Field("", alias="MAILRELAY_UPSTREAMS_PARAMETER")
    dead_letter_queue_url: str = Field("", alias="MAILRELAY_DEAD_LETTER_QUEUE_URL")
    ehlo_name: str = Field("", alias="MAILRELAY_EHLO_NAME")  # empty: the host's FQDN, as smtplib does

    connect_timeout: float = Field(5.0, alias="MAILRELAY_SMTP_CONNECT_TIMEOUT", gt=0, le=60)
    reply_timeout: float = Field(10.0, alias="MAILRELAY_SMTP_REPLY_TIMEOUT", gt=0, le=120)
    # The reply to the final "." gets longer: a timeout there makes the outcome unknown (uncertain).
    data_done_timeout: float = Field(15.0, alias="MAILRELAY_SMTP_DATA_DONE_TIMEOUT", gt=0, le=300)
    # No new send starts with less than this left; every timeout ends this much before the deadline.
    start_reserve: float = Field(12.0, alias="MAILRELAY_SEND_START_RESERVE_SECONDS", ge=0)
    deadline_margin: float = Field(1.5, alias="MAILRELAY_DEADLINE_MARGIN_SECONDS", ge=0.1)
    idle_close: float = Field(30.0, alias="MAILRELAY_SMTP_IDLE_CLOSE_SECONDS", ge=0)

    retry_base_seconds: int = Field(60, alias="MAILRELAY_RETRY_BASE_SECONDS", ge=1)
    retry_max_seconds: int = Field(SQS_MAX_VISIBILITY - 300, alias="MAILRELAY_RETRY_MAX_SECONDS", ge=1)
    lease_grace_seconds: int = Field(30, alias="MAILRELAY_LEASE_GRACE_SECONDS", ge=1)
    secret_max_age: int = Field(300, alias="MAILRELAY_SECRET_MAX_AGE_SECONDS", ge=0)

    @model_validator(mode="after")
    def _limits(self) -> DeliverySettings:
        if self.retry_max_seconds > SQS_MAX_VISIBILITY - 60:
            raise ValueError(f"MAILRELAY_RETRY_MAX_SECONDS may be at most {SQS_MAX_VISIBILITY - 60} (SQS 12 h cap)")
        return self


def delivery_settings_from(env: dict[str, str]) -> DeliverySettings:
    return model_from_env(DeliverySettings, env, "delivery configuration")


@lru_cache(maxsize=1)
def get_delivery_settings() -> DeliverySettings:
    return delivery_settings_from(dict(os.environ))
