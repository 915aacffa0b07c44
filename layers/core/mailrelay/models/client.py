"""A sending client: who may submit, and as which senders."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Client(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    allowed_from: tuple[str, ...]
    state: Literal["active", "revoked"] = "active"
    created_at: AwareDatetime
    key_prefix: str = ""  # the first characters of the key, to tell keys apart in listings
