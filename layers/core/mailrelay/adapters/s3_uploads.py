"""Uploads (large attachments) in the payload bucket: presigned PUTs and checked reads."""

from __future__ import annotations

from typing import Any

from mailrelay.adapters.aws import aws_call, lazy
from mailrelay.ports import PresignedPut, StoredUpload


class S3UploadStore:
    def __init__(self, bucket: str, client: Any | None = None) -> None:
        self.bucket = bucket
        # Signature Version 4: S3 no longer accepts version 2 signatures in new presigned URLs, and botocore
        # still makes version 2 ones for some endpoints unless told.
        self._client = lazy("s3", client, signature_version="s3v4")

    def presign_put(
        self, key: str, content_type: str, size: int, expires_in: int, metadata: dict[str, str]
    ) -> PresignedPut:
        # Content-Length, Content-Type and the metadata become signed headers: S3 refuses a PUT whose body
        # is not exactly ``size`` bytes or whose headers differ, and the object records the declared size.
        params = {
            "Bucket": self.bucket, "Key": key, "ContentType": content_type, "ContentLength": size,
            "Metadata": metadata,
        }  # fmt: skip
        with aws_call("S3 presign PutObject"):
            url: str = self._client().generate_presigned_url("put_object", Params=params, ExpiresIn=expires_in)
        headers = {"Content-Type": content_type} | {f"x-amz-meta-{k}": v for k, v in metadata.items()}
        return PresignedPut(url=url, headers=headers)

    def read(self, key: str, max_bytes: int) -> StoredUpload | None:
        from botocore.exceptions import ClientError

        try:
            with aws_call("S3 GetObject"):
                got = self._client().get_object(Bucket=self.bucket, Key=key)
        except Exception as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and cause.response["Error"]["Code"] in ("NoSuchKey", "404"):
                return None
            raise
        size: int = got["ContentLength"]
        declared = got.get("Metadata", {}).get("declared-size")
        if size > max_bytes:  # never read more than could be accepted
            got["Body"].close()
            data = b""
        else:
            data = got["Body"].read()
        return StoredUpload(data, size, int(declared) if declared and declared.isdigit() else None)
