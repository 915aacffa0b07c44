"""A sending client: who may submit, and as which senders."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

# The retention periods a client may choose: each is an S3 lifecycle rule on its own prefix
# (template.yaml, PayloadBucket), so retained content is deleted by S3 when its period ends.
RETENTION_DAYS = (1, 3, 7, 14, 30, 90)


class Client(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    allowed_from: tuple[str, ...]
    state: Literal["active", "revoked"] = "active"
    created_at: AwareDatetime
    key_prefix: str = ""  # the first characters of the key, to tell keys apart in listings
    # Days each accepted message's content is kept for GET /v1/messages/{id}/content (0: not kept).
    retain_content_days: int = 0

    @field_validator("retain_content_days")
    @classmethod
    def _retention(cls, days: int) -> int:
        if days not in (0, *RETENTION_DAYS):
            raise ValueError(f"retain_content_days is one of 0, {', '.join(map(str, RETENTION_DAYS))}")
        return days
