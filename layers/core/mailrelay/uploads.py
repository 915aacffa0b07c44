"""Attachments too large for a request body: a presigned S3 PUT first, the content at acceptance.

AWS Lambda's synchronous invocation carries at most 6 MB (6,291,456 bytes) of request
(https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html), so a message near the 10 MB limit
cannot travel inside the JSON body of POST /v1/messages. Its large parts go straight to S3 instead.
An upload is an object under the client's own prefix: another client's upload id names a key that
does not exist for the caller, so it can neither be read nor guessed into a message.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from mailrelay.errors import InvalidRequest, MessageTooLarge
from mailrelay.models.upload import UploadRequest
from mailrelay.ports import UploadStore

UPLOAD_URL_SECONDS = 3600
_UPLOAD_ID = re.compile(r"^upl_[0-9a-f]{32}$")


def upload_key(client_id: str, upload_id: str) -> str:
    return f"uploads/{client_id}/{upload_id}"


class UploadService:
    def __init__(self, store: UploadStore, max_bytes: int, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.clock = clock

    def create(self, client_id: str, request: UploadRequest) -> dict[str, Any]:
        if request.size > self.max_bytes:
            raise MessageTooLarge(request.size, self.max_bytes)
        upload_id = f"upl_{secrets.token_hex(16)}"
        put = self.store.presign_put(
            upload_key(client_id, upload_id), request.content_type, request.size, UPLOAD_URL_SECONDS,
            {"declared-size": str(request.size)},
        )  # fmt: skip
        expires = self.clock() + timedelta(seconds=UPLOAD_URL_SECONDS)
        return {
            "upload_id": upload_id, "url": put.url, "method": "PUT", "headers": put.headers,
            "expires_at": expires.isoformat().replace("+00:00", "Z"),
        }  # fmt: skip

    def fetch(self, client_id: str, upload_id: str, field: str) -> bytes:
        """The uploaded bytes, checked: this client's, present, and of the size that was declared."""
        if not _UPLOAD_ID.match(upload_id):
            raise InvalidRequest.at(field, "not an upload id (POST /v1/uploads returns one)")
        stored = self.store.read(upload_key(client_id, upload_id), self.max_bytes)
        if stored is None:
            raise InvalidRequest.at(field, "no such upload for this client: not uploaded yet, expired, or not yours")
        if stored.size > self.max_bytes:
            raise MessageTooLarge(stored.size, self.max_bytes)
        if stored.declared_size is not None and stored.size != stored.declared_size:
            raise InvalidRequest.at(
                field, f"the upload holds {stored.size} bytes, not the {stored.declared_size} declared"
            )
        return stored.data
