"""What a client asks for to upload a large attachment: the JSON body of POST /v1/uploads."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from mailrelay.models.fields import ContentType, Filename


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: Filename
    content_type: ContentType = "application/octet-stream"
    size: Annotated[int, Field(ge=1, description="exact size in bytes of what will be PUT")]
