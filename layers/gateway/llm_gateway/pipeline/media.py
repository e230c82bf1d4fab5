"""Step 6b — fetch media parts and hand them to the adapter as inline bytes.

Sources: `s3://` URLs and this gateway's presigned URLs are read from S3 directly, only under
the caller's tenant prefix; `https` URLs go through the SSRF-guarded fetch; `data:` URLs are
decoded. Every file's real type is detected from its bytes and must fit the part type
(`image`, `audio`, `video`, `document`); the model's registry limits (count and size per kind)
apply. Adapters find the result in `call.extra["media"][url] = {"data": base64, "media_type",
"size"}` and turn it into what their provider takes.
"""

from __future__ import annotations

import base64
import binascii
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.media.sniff import PART_MEDIA, sniff
from llm_gateway.registry.catalog import ModelSpec

MB = 1024 * 1024
DEFAULT_MAX_BYTES = {"image": 20 * MB, "audio": 25 * MB, "video": 100 * MB, "document": 32 * MB}
DEFAULT_MAX_COUNT = {"image": 20, "audio": 4, "video": 2, "document": 10}
FETCH_TIMEOUT_S = 20.0
# capabilities a request needs when it has media parts (registry/capabilities.py): the pipeline fetches only then
MEDIA_CAPABILITIES = frozenset({"vision", "audio_in", "video_in", "documents"})

_pool: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="media")
    return _pool


def _limit(model: ModelSpec, kind: str) -> tuple[int, int]:
    limits = model.limits
    return (int(limits.get(f"max_{kind}_bytes", DEFAULT_MAX_BYTES[kind])),
            int(limits.get(f"max_{kind}s", limits.get(f"max_{kind}_count", DEFAULT_MAX_COUNT[kind]))))


def _decode_data_url(url: str, max_bytes: int) -> bytes:
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header:
        raise GatewayError("validation_error", "data: URLs must be base64 encoded.", errors=[{"path": "url", "message": "not base64"}])
    if len(payload) * 3 // 4 > max_bytes:
        raise GatewayError("validation_error", f"Media is larger than the limit ({max_bytes} bytes).",
                           errors=[{"path": "url", "message": f"larger than {max_bytes} bytes"}])
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise GatewayError("validation_error", "data: URL payload is not valid base64.", errors=[{"path": "url", "message": "invalid base64"}]) from None


_FETCHED_SCHEMES = ("https:", "http:", "s3:", "data:")
# provider-native references the adapter passes on: Google Cloud Storage, provider file ids ("file-…", "files/…")
_PROVIDER_SCHEMES = ("gs:",)
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _provider_reads_itself(url: str, model: ModelSpec, path: str = "url") -> bool:
    """URLs the gateway leaves to the adapter: provider-native schemes (`gs://`, file ids) and
    hosts the catalog lists in the model option `media_url_passthrough` (e.g. YouTube for Gemini)."""
    if not url.startswith(_FETCHED_SCHEMES):
        if _SCHEME.match(url) and not url.startswith(_PROVIDER_SCHEMES):
            raise GatewayError("validation_error", f"{path}: media URLs must be https://, s3:// of this gateway, data: or a provider file reference; got '{url[:100]}'.",
                               errors=[{"path": path, "message": "unsupported URL scheme"}])
        return True
    hosts = model.options.get("media_url_passthrough") or ()
    if hosts:
        from urllib.parse import urlsplit

        host = (urlsplit(url).hostname or "").lower()
        return any(host == h or host.endswith("." + h) for h in hosts)
    return False


class MediaResolver:
    def __init__(self, files: Any = None, http: Any = None) -> None:
        self._files = files
        self._http = http

    @property
    def files(self) -> Any:
        if self._files is None:
            from llm_gateway.stores.files import FileStorage

            self._files = FileStorage()
        return self._files

    @property
    def http(self) -> Any:
        if self._http is None:
            from llm_gateway.outbound.client import get_outbound

            self._http = get_outbound().raw
        return self._http

    def _load(self, tenant_id: str, kind: str, url: str, max_bytes: int) -> tuple[bytes, str | None]:
        if url.startswith("data:"):
            return _decode_data_url(url, max_bytes), None
        from llm_gateway.stores.files import parse_gateway_url

        located = parse_gateway_url(url)
        if located is not None:
            return self.files.read(tenant_id, located[0], located[1], max_bytes)
        from llm_gateway.outbound.fetch import fetch_url

        fetched = fetch_url(self.http, url, max_bytes=max_bytes, timeout_s=FETCH_TIMEOUT_S)
        return fetched.data, fetched.content_type

    def resolve(self, request: ChatRequest, model: ModelSpec, tenant_id: str) -> dict[str, dict[str, Any]]:
        wanted: dict[str, tuple[str, str]] = {}  # url -> (kind, path)
        counts: dict[str, int] = {}
        for m, message in enumerate(request.messages):
            for p, part in enumerate(message.content):
                kind = part.type
                if kind not in PART_MEDIA:
                    continue
                counts[kind] = counts.get(kind, 0) + 1
                if not _provider_reads_itself(part.url, model, f"messages[{m}].content[{p}].url"):
                    wanted.setdefault(part.url, (kind, f"messages[{m}].content[{p}].url"))
        if not wanted:
            return {}
        for kind, n in counts.items():
            _, max_count = _limit(model, kind)
            if n > max_count:
                raise GatewayError("validation_error", f"The request has {n} {kind} parts; '{model.id}' takes at most {max_count}.",
                                   errors=[{"path": "messages", "message": f"too many {kind} parts"}])

        def load(item: tuple[str, tuple[str, str]]) -> tuple[str, dict[str, Any]]:
            url, (kind, path) = item
            max_bytes, _ = _limit(model, kind)
            try:
                data, _declared = self._load(tenant_id, kind, url, max_bytes)
                real = sniff(data)
                if real is None or real not in PART_MEDIA[kind]:
                    shown = real or "an unrecognised format"
                    accepted = ", ".join(sorted(PART_MEDIA[kind]))
                    raise GatewayError("validation_error",
                                       f"{path}: the file is {shown}, not a supported {kind} ({accepted}).",
                                       errors=[{"path": path, "message": f"file is {shown}"}])
            except GatewayError as exc:
                if exc.errors and exc.errors[0].get("path") == "url":
                    exc.errors = [{**e, "path": path} for e in exc.errors]
                    exc.detail = f"{path}: {exc.detail}"
                raise
            return url, {"data": base64.b64encode(data).decode("ascii"), "media_type": real, "size": len(data), "kind": kind}

        items = list(wanted.items())
        if len(items) == 1:
            return dict([load(items[0])])
        return dict(_executor().map(load, items))
