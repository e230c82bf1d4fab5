"""FileStorage on S3, scoped by tenant.

Keys: `tenants/<tenant>/…` for what tenants upload and `generated/<tenant>/…` for media the
gateway generates (the bucket's lifecycle rule expires `generated/`). A tenant can only read
keys under its own two prefixes — through `s3://` URLs or the gateway's own presigned URLs.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from llm_gateway.api.errors import GatewayError
from llm_gateway.config import settings
from llm_gateway.stores.aws import client


@dataclass(slots=True)
class StoredObject:
    bucket: str
    key: str
    url: str  # presigned GET
    expires_at: str


def tenant_prefixes(tenant_id: str) -> tuple[str, str]:
    return f"tenants/{tenant_id}/", f"generated/{tenant_id}/"


def parse_gateway_url(url: str) -> tuple[str, str] | None:
    """(bucket, key) for `s3://bucket/key` or a presigned URL of this gateway's bucket; else None."""
    parts = urlsplit(url)
    bucket = settings().files_bucket
    if parts.scheme == "s3":
        return parts.netloc, unquote(parts.path.lstrip("/"))
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return None
    host = parts.hostname
    path = unquote(parts.path.lstrip("/"))
    if host.startswith(f"{bucket}.s3") and host.endswith(".amazonaws.com"):
        return bucket, path
    endpoint = settings().aws_endpoint_url
    s3_hosts = {"s3.amazonaws.com"} | ({urlsplit(endpoint).hostname} if endpoint else set())
    if (host in s3_hosts or (host.startswith("s3.") and host.endswith(".amazonaws.com"))) and path.startswith(bucket + "/"):
        if endpoint and host == urlsplit(endpoint).hostname and parts.port != urlsplit(endpoint).port:
            return None
        return bucket, path[len(bucket) + 1 :]
    return None


class FileStorage:
    def __init__(self, bucket: str | None = None) -> None:
        self.bucket = bucket or settings().files_bucket

    def _check(self, tenant_id: str, bucket: str, key: str) -> None:
        if bucket != self.bucket or not key.startswith(tenant_prefixes(tenant_id)) or ".." in key.split("/"):
            raise GatewayError("validation_error", "The media URL is not a file this tenant can read.",
                               errors=[{"path": "url", "message": "not accessible to this tenant"}])

    def read(self, tenant_id: str, bucket: str, key: str, max_bytes: int) -> tuple[bytes, str | None]:
        self._check(tenant_id, bucket, key)
        s3 = client("s3")
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except s3.exceptions.ClientError:
            raise GatewayError("validation_error", "The media file does not exist (or is not accessible).",
                               errors=[{"path": "url", "message": "no such file"}]) from None
        if head["ContentLength"] > max_bytes:
            raise GatewayError("validation_error", f"Media is larger than the limit ({head['ContentLength']} > {max_bytes} bytes).",
                               errors=[{"path": "url", "message": f"larger than {max_bytes} bytes"}], limit_bytes=max_bytes)
        obj = s3.get_object(Bucket=bucket, Key=key)
        return obj["Body"].read(), head.get("ContentType")

    def put(self, tenant_id: str, data: bytes, content_type: str, *, kind: str = "generated", ext: str = "bin",
            expires_in_s: int = 3600) -> StoredObject:
        """Store bytes under the tenant's prefix and return a presigned GET URL with its expiry."""
        day = dt.datetime.now(dt.timezone.utc).strftime("%Y/%m/%d")
        prefix = tenant_prefixes(tenant_id)[1] if kind == "generated" else tenant_prefixes(tenant_id)[0]
        key = f"{prefix}{day}/{uuid.uuid4().hex}.{ext}"
        s3 = client("s3")
        s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        return self.presign(key, expires_in_s)

    def presign(self, key: str, expires_in_s: int = 3600) -> StoredObject:
        url = client("s3").generate_presigned_url("get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in_s)
        expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=expires_in_s)).isoformat(timespec="seconds")
        return StoredObject(self.bucket, key, url, expires)
