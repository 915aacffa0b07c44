"""Large message payloads (claim check): one encrypted S3 object per message."""

from __future__ import annotations

from typing import Any

from mailrelay.adapters.aws import aws_call, lazy
from mailrelay.message_data import MessageData


class S3PayloadStore:
    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = lazy("s3", client)

    @staticmethod
    def key_for(message_id: str) -> str:
        return f"messages/{message_id}.eml"

    def put(self, key: str, data: MessageData, sha256_hex: str) -> None:
        # A file body is streamed by botocore (read in chunks, and rewound by seek() on a retry), so a
        # spooled message is never held whole in memory.
        with aws_call("S3 PutObject"), data.open() as body:
            self._client().put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentLength=data.size,
                ContentType="message/rfc822",
                ServerSideEncryption="aws:kms",
                Metadata={"sha256": sha256_hex},
            )

    def get(self, key: str) -> bytes:
        with aws_call("S3 GetObject"):
            body: bytes = self._client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body

    def delete(self, key: str) -> None:
        with aws_call("S3 DeleteObject"):
            self._client().delete_object(Bucket=self.bucket, Key=key)
