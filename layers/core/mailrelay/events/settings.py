"""Configuration of the events function and the events feed, read once from the environment."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field

from mailrelay.settings import model_from_env


class EventSettings(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    events_table: str = Field("", alias="MAILRELAY_EVENTS_TABLE")
    # The event bus the events function puts every event on (the stack's own, or one the user names).
    event_bus_name: str = Field("", alias="MAILRELAY_EVENT_BUS_NAME")
    retention_days: int = Field(14, alias="MAILRELAY_EVENTS_RETENTION_DAYS", ge=1, le=365)
    # The feed shows an event only once it has been stored this long: events stored concurrently (other
    # shards, an index that lags) then cannot appear behind a cursor that has already moved past them.
    feed_settle_seconds: float = Field(5.0, alias="MAILRELAY_EVENTS_FEED_SETTLE_SECONDS", ge=0, le=60)


def event_settings_from(env: dict[str, str]) -> EventSettings:
    return model_from_env(EventSettings, env, "events configuration")


@lru_cache(maxsize=1)
def get_event_settings() -> EventSettings:
    """Parsed once per process (cold start); tests call ``get_event_settings.cache_clear()``."""
    return event_settings_from(dict(os.environ))
