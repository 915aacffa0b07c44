"""Retained message content: one S3 object per message under ``retained/<days>d/``.

Each prefix has a lifecycle rule expiring its objects after that many days (template.yaml,
PayloadBucket; S3 counts from the object's creation and rounds up to the next midnight UTC,
https://docs.aws.amazon.com/AmazonS3/latest/userguide/lifecycle-expire-general-considerations.html),
so content is deleted by S3 itself, never kept longer than the client chose.
"""

from __future__ import annotations

from typing import Any

from mailrelay.adapters.aws import aws_call, lazy
from mailrelay.message_data import MessageData
from mailrelay.ports import RetainedContent

LINK_SECONDS = 300


class S3ContentArchive:
    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        self._client = lazy("s3", client)

    @staticmethod
    def key_for(client_id: str, message_id: str, days: int) -> str:
        return f"retained/{days}d/{client_id}/{message_id}.eml"

    def keep(self, client_id: str, message_id: str, days: int, data: MessageData) -> None:
        with aws_call("S3 PutObject"), data.open() as body:
            self._client().put_object(
                Bucket=self.bucket, Key=self.key_for(client_id, message_id, days), Body=body,
                ContentLength=data.size, ContentType="message/rfc822", ServerSideEncryption="aws:kms",
            )  # fmt: skip

    def fetch(self, client_id: str, message_id: str, days: int, max_inline: int) -> RetainedContent | None:
        from botocore.exceptions import ClientError

        key = self.key_for(client_id, message_id, days)
        try:
            with aws_call("S3 HeadObject"):
                size = int(self._client().head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except Exception as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        if size > max_inline:
            with aws_call("S3 presign"):
                url = self._client().generate_presigned_url(
                    "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=LINK_SECONDS
                )
            return RetainedContent(size, None, url)
        with aws_call("S3 GetObject"):
            data: bytes = self._client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return RetainedContent(size, data, None)

    def discard(self, client_id: str, message_id: str, days: int) -> None:
        with aws_call("S3 DeleteObject"):
            self._client().delete_object(Bucket=self.bucket, Key=self.key_for(client_id, message_id, days))
