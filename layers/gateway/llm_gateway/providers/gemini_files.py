"""Gemini Files API: media too large to go inline is uploaded and referenced by `fileData`.

Gemini takes at most 20 MB per `generateContent` request, inline base64 included (base64 adds a
third). When the media bytes the gateway fetched for one call add up to more than the model's
inline budget, the largest parts are uploaded until the rest fits, and sent as
`fileData {mimeType, fileUri}`. Options (the catalog model's `options`, else the provider's):

- `files_api`: `"auto"` (default: upload only what does not fit inline), `"always"` (upload every
  fetched media part), `"never"` (always inline; Gemini refuses requests over its limit).
- `inline_media_max_bytes`: the inline budget in raw bytes per call (default 14,000,000, i.e.
  ~18.7 MB once base64 encoded, leaving room for the text of the request).
- `files_api_delete`: delete the uploaded files when the call ends (default true; Gemini would
  otherwise keep them 48 hours).

Wire format (the resumable upload protocol, API key in `x-goog-api-key` as for every call):
1. `POST {root}/upload/v1beta/files` with `X-Goog-Upload-Protocol: resumable`,
   `X-Goog-Upload-Command: start`, `X-Goog-Upload-Header-Content-Length: <n>`,
   `X-Goog-Upload-Header-Content-Type: <mime>` and `{"file": {"display_name": …}}` -> the upload
   URL in the `X-Goog-Upload-URL` response header;
2. `POST <upload URL>` with `X-Goog-Upload-Command: upload, finalize`, `X-Goog-Upload-Offset: 0`
   and the bytes -> `{"file": {name, uri, mimeType, state, …}}`;
3. while `state` is `PROCESSING` (videos): `GET {base}/{name}` with a growing pause (0.5 s, x1.5,
   at most 5 s), within the call's deadline (for a stream, its time to first token) -> `ACTIVE`,
   or `FAILED` -> `provider_error`;
4. after the call: `DELETE {base}/{name}` (best effort; a failure is logged, never raised).

Every call goes through the outbound client (circuit breaker, deadlines, cancellation). Display
names carry the request id only; nothing of the content is logged.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from llm_gateway.api.errors import GatewayError
from llm_gateway.outbound.control import bound, current_control

if TYPE_CHECKING:
    from llm_gateway.providers.base import ProviderCall
    from llm_gateway.providers.gemini import GeminiAdapter

DEFAULT_INLINE_MAX_BYTES = 14_000_000
MODES = ("auto", "always", "never")
POLL_FIRST_S = 0.5
POLL_FACTOR = 1.5
POLL_MAX_S = 5.0
DELETE_TIMEOUT_S = 5.0
_VERSION = re.compile(r"^v\d+[a-z0-9]*$")


@dataclass(slots=True)
class Media:
    """One media part's bytes, as the adapter would inline them."""

    key: str  # the part's URL (parts with the same URL share one upload)
    kind: str  # image, audio, video, document
    mime_type: str
    size: int
    data: Any  # bytes, or the base64 text the pipeline fetched (decoded only when uploaded)

    def raw(self) -> bytes:
        import base64

        return self.data if isinstance(self.data, bytes) else base64.b64decode(self.data)


@dataclass(slots=True)
class UploadedFile:
    name: str  # files/{id}
    uri: str
    mime_type: str
    state: str
    error: str = ""  # the provider's message when FAILED


def option(call: "ProviderCall", key: str, default: Any) -> Any:
    value = call.model.options.get(key)
    if value is None:
        value = (call.model.provider.options or {}).get(key)
    return default if value is None else value


def to_upload(call: "ProviderCall", items: list[Media]) -> list[Media]:
    """The media of this call that goes through the Files API (by the options above)."""
    mode = str(option(call, "files_api", "auto"))
    if mode not in MODES:
        raise GatewayError("provider_error", f"Model '{call.model.id}': option files_api must be one of {', '.join(MODES)}, not {mode!r}.",
                           provider=call.model.provider.id)
    unique = list({m.key: m for m in items}.values())
    if mode == "never" or not unique:
        return []
    if mode == "always":
        return unique
    budget = int(option(call, "inline_media_max_bytes", DEFAULT_INLINE_MAX_BYTES))
    total = sum(m.size for m in unique)
    chosen: list[Media] = []
    for m in sorted(unique, key=lambda m: m.size, reverse=True):
        if total <= budget:
            break
        chosen.append(m)
        total -= m.size
    return chosen


def fetched_media(call: "ProviderCall") -> list[Media]:
    """The media parts of the request whose bytes the pipeline fetched (`call.extra["media"]`)."""
    fetched = call.extra.get("media") or {}
    out: list[Media] = []
    for message in call.request.messages:
        for part in message.content:
            if part.type not in ("image", "audio", "video", "document"):
                continue
            item = fetched.get(part.url)
            if isinstance(item, dict) and item.get("data") and item.get("media_type"):
                size = int(item.get("size") or len(item["data"]) * 3 // 4)
                out.append(Media(part.url, part.type, item["media_type"], size, item["data"]))
    return out


class GeminiFiles:
    """Uploads for one call; `delete()` removes them when the call is over."""

    def __init__(self, adapter: "GeminiAdapter", call: "ProviderCall") -> None:
        self.adapter = adapter
        self.call = call
        self.provider_id = adapter.provider.id
        self.base = adapter.provider.base_url or _default_base()
        self.uploaded: list[UploadedFile] = []

    # ------------------------------------------------------------ upload

    def upload(self, items: list[Media]) -> dict[str, UploadedFile]:
        """Upload these parts (all first, then wait for the ones still processing): key -> file."""
        by_key: dict[str, UploadedFile] = {}
        for i, item in enumerate(items):
            f = self._upload_one(item, i)
            self.uploaded.append(f)
            self._check_state(f)
            by_key[item.key] = f
        for key, f in list(by_key.items()):
            if f.state == "PROCESSING":
                by_key[key] = self._wait_active(f)
        return by_key

    def _upload_one(self, item: Media, index: int) -> UploadedFile:
        http = self.adapter.http
        data = item.raw()
        headers = self.adapter.headers()
        headers.update({
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(len(data)),
            "X-Goog-Upload-Header-Content-Type": item.mime_type,
        })
        display = f"llmgw-{self.call.request_id or 'call'}-{index}"[:128]
        start = http.request(self.provider_id, "POST", http.url(_upload_root(self.base), "/files"),
                             json={"file": {"display_name": display}}, headers=headers, timeout=self._timeout())
        if start.status_code >= 400:
            raise self.adapter.error_from(start.status_code, start.text, start.headers)
        upload_url = start.headers.get("x-goog-upload-url")
        if not upload_url:
            raise GatewayError("provider_error", f"Provider '{self.provider_id}' started a file upload without an upload URL.",
                               provider=self.provider_id)
        send_headers = {"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0",
                        "Content-Type": item.mime_type}
        if urlsplit(upload_url).netloc == urlsplit(self.base).netloc:  # the API key only to the API's own host
            key = self.adapter.headers().get("x-goog-api-key")
            if key:
                send_headers["x-goog-api-key"] = key
        resp = http.request(self.provider_id, "POST", http.url("", upload_url), content=data, headers=send_headers,
                            timeout=self._timeout())
        body = self.adapter._json_of(resp)
        return self._file_of(body.get("file") if isinstance(body.get("file"), dict) else body, item.mime_type)

    def _file_of(self, raw: Any, mime: str) -> UploadedFile:
        if not isinstance(raw, dict) or not raw.get("name") or not raw.get("uri"):
            raise GatewayError("provider_error", f"Provider '{self.provider_id}' answered a file upload without a file name and uri.",
                               provider=self.provider_id)
        state = str(raw.get("state") or "ACTIVE")
        if state == "STATE_UNSPECIFIED":
            state = "ACTIVE"
        err = raw.get("error") if isinstance(raw.get("error"), dict) else {}
        return UploadedFile(name=str(raw["name"]), uri=str(raw["uri"]), mime_type=str(raw.get("mimeType") or mime), state=state,
                            error=str(err.get("message") or "")[:300])

    def _check_state(self, f: UploadedFile) -> None:
        if f.state in ("ACTIVE", "PROCESSING"):
            return
        if f.state == "FAILED":
            why = f": {f.error}" if f.error else ""
            raise GatewayError("provider_error", f"Provider '{self.provider_id}' could not process the uploaded {f.mime_type} file "
                               f"({f.name}, state FAILED){why}.", provider=self.provider_id)
        raise GatewayError("provider_error", f"Provider '{self.provider_id}' reports the uploaded file {f.name} in state {f.state[:40]}.",
                           provider=self.provider_id)

    def _wait_active(self, f: UploadedFile) -> UploadedFile:
        """Poll `files.get` until ACTIVE, with a bounded backoff inside the call's deadline."""
        control = current_control()
        woken = threading.Event()
        remove = control.on_abort(woken.set) if control is not None else (lambda: None)
        delay = POLL_FIRST_S
        try:
            while f.state == "PROCESSING":
                left = self._budget(control)
                if left <= 0:
                    raise self._timed_out(control, f)
                woken.wait(min(delay, left))
                if control is not None:
                    control.check()  # cancelled, or the deadline passed while we waited
                elif self._budget(None) <= 0:
                    raise self._timed_out(None, f)
                delay = min(delay * POLL_FACTOR, POLL_MAX_S)
                http = self.adapter.http
                resp = http.request(self.provider_id, "GET", http.url(self.base, "/" + f.name), headers=self.adapter.headers(),
                                    timeout=self._timeout())
                f = self._file_of(self.adapter._json_of(resp), f.mime_type)
                self._check_state(f)
            return f
        finally:
            remove()

    def _budget(self, control: Any) -> float:
        if control is not None:
            return control.next_deadline() - time.monotonic()
        d = self.call.deadline
        return d.first_token_remaining() if self.call.request.stream else d.remaining()

    def _timed_out(self, control: Any, f: UploadedFile) -> GatewayError:
        if control is not None:
            try:
                control.check()
            except GatewayError as exc:
                return exc
        return GatewayError("provider_timeout", f"Provider '{self.provider_id}' was still processing the uploaded {f.mime_type} file "
                            "when the call's time ran out.", provider=self.provider_id, timeout="total")

    def _timeout(self) -> httpx.Timeout:
        remaining = max(0.001, self.call.deadline.remaining())
        return httpx.Timeout(remaining, connect=min(10.0, remaining))

    # ------------------------------------------------------------ cleanup

    def delete(self) -> None:
        """Delete what was uploaded (best effort, also after a timeout or a cancelled call)."""
        if not self.uploaded or not option(self.call, "files_api_delete", True):
            self.uploaded = []
            return
        files, self.uploaded = self.uploaded, []
        http = self.adapter.http
        with bound(None):  # the attempt may be over (timed out, cancelled): the delete has its own short timeout
            for f in files:
                try:
                    resp = http.request(self.provider_id, "DELETE", http.url(self.base, "/" + f.name), headers=self.adapter.headers(),
                                        timeout=DELETE_TIMEOUT_S)
                    status = resp.status_code
                except GatewayError as exc:
                    status = exc.extra.get("provider_status") or exc.code
                except Exception as exc:  # noqa: BLE001 - cleanup never fails the call
                    status = type(exc).__name__
                if status not in (200, 204, 404):
                    from llm_gateway.observability import logger

                    logger.warning("gemini file delete failed", extra={"provider": self.provider_id, "status": str(status)})


def _default_base() -> str:
    from llm_gateway.providers.gemini import DEFAULT_BASE_URL

    return DEFAULT_BASE_URL


def _upload_root(base: str) -> str:
    """`https://host/v1beta` -> `https://host/upload/v1beta` (the media upload endpoint's prefix)."""
    root, _, last = base.rstrip("/").rpartition("/")
    if _VERSION.match(last) and root:
        return f"{root}/upload/{last}"
    return base.rstrip("/") + "/upload/v1beta"
