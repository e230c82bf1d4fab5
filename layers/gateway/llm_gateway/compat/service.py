"""`CompatService`: the front doors' routes, each HttpRequest → HttpResponse.

Every generation route translates the door body into a native request and calls the native
service (`ChatService.chat_completions`, `EmbeddingsService.embeddings`, `ChatService.list_models`)
with the caller's own headers, so authentication, scopes, governance (approval, rate limits,
budgets, hooks), fallback, usage records and audit events are exactly the native path's. The
native answer — JSON, an SSE frame iterator, or a problem — is translated back.

A request the door itself refuses (malformed JSON, `n` > 1, an unknown field…) is checked for
credentials first, so a caller without a valid key still gets the 401, and — as the native
chat path does for early failures — an authenticated one is reported (usage/audit, outcome
`error`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llm_gateway import resets
from llm_gateway.api.errors import GatewayError
from llm_gateway.compat import anthropic as an
from llm_gateway.compat import openai as oa
from llm_gateway.compat.common import dumps, invalid, loads, native_request, parse_body, parse_multipart, passthrough_headers, problem_of
from llm_gateway.pipeline.auth import Authenticator, require_scope
from llm_gateway.pipeline.context import RequestContext, new_request_id
from llm_gateway.service.http import HttpRequest, HttpResponse

OPENAI, ANTHROPIC = "openai", "anthropic"
OPENAI_CHAT = "/openai/v1/chat/completions"
ANTHROPIC_MESSAGES = "/anthropic/v1/messages"
JSON = "application/json"
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MAX_MEDIA_READ = 64 * 1024 * 1024


def door_of(path: str) -> str:
    return ANTHROPIC if path.startswith("/anthropic/") else OPENAI


def _headers(door: str, native_headers: dict[str, str], rid: str | None) -> dict[str, str]:
    headers = passthrough_headers(native_headers)
    if rid:
        headers["x-request-id"] = rid
        if door == ANTHROPIC:
            headers["request-id"] = rid
    return headers


def door_error(door: str, problem: dict[str, Any], native_headers: dict[str, str] | None = None, rid: str | None = None) -> HttpResponse:
    """A native problem as the door's error body and status (the native code in `x-llmgw-error-code`)."""
    rid = rid or problem.get("instance")
    if rid and not problem.get("instance"):
        problem = {**problem, "instance": rid}
    status, body = (an if door == ANTHROPIC else oa).error_object(problem)
    headers = _headers(door, native_headers or {}, rid)
    headers["x-llmgw-error-code"] = str(problem.get("code") or "internal_error")
    return HttpResponse(status, {"Content-Type": JSON, **headers}, dumps(body))


def _gateway_error(door: str, exc: GatewayError, rid: str | None) -> HttpResponse:
    problem = exc.to_problem()
    if rid:
        problem["instance"] = rid
    return door_error(door, problem, exc.response_headers(), rid)


def read_generated(url: str) -> bytes:
    """The bytes of a file the gateway just generated (its own presigned URL or `s3://`)."""
    from llm_gateway.stores.files import FileStorage, parse_gateway_url

    location = parse_gateway_url(url)
    if location is None:
        raise GatewayError("internal_error", "A generated file's URL could not be read back.")
    bucket, key = location
    parts = key.split("/")
    tenant = parts[1] if len(parts) > 2 and parts[0] == "generated" else ""
    data, _ = FileStorage(bucket).read(tenant, bucket, key, MAX_MEDIA_READ)
    return data


class CompatService:
    def __init__(self, chat: Any = None, embeddings: Any = None, auth: Authenticator | None = None) -> None:
        self._chat = chat
        self._embeddings = embeddings
        self.auth = auth or Authenticator()

    @property
    def chat(self) -> Any:
        if self._chat is not None:
            return self._chat
        from llm_gateway.service.chat import chat_service

        return chat_service()

    @property
    def embeddings_service(self) -> Any:
        if self._embeddings is not None:
            return self._embeddings
        from llm_gateway.service.embeddings import embeddings_service

        return embeddings_service()

    # ------------------------------------------------------------ shared

    def _body(self, req: HttpRequest) -> dict[str, Any]:
        return parse_body(req.body, req.headers.get("content-type"))

    def _authenticate(self, req: HttpRequest, route: str) -> Any:
        principal = self.auth.authenticate(req.headers, req.authorizer)
        require_scope(principal, route)
        return principal

    def _early(self, door: str, req: HttpRequest, exc: GatewayError, route: str = "chat") -> HttpResponse:
        """A door-level refusal: the credentials are checked first (their error wins); an
        authenticated chat request is reported like the native path's early failures."""
        rid = req.request_id
        try:
            principal = self._authenticate(req, route)
        except GatewayError as auth_exc:
            return _gateway_error(door, auth_exc, rid)
        if route == "chat":
            try:
                ctx = RequestContext(principal=principal, request_id=rid or new_request_id(), route=route)
                ctx.outcome, ctx.error_code = "error", exc.code
                self.chat.pipeline.usage.report(ctx)
            except Exception:  # noqa: BLE001 - reporting must never change the answer
                pass
        return _gateway_error(door, exc, rid)

    def _translate(self, door: str, resp: HttpResponse, ok: Callable[[dict[str, Any]], dict[str, Any]], rid: str | None) -> HttpResponse:
        """A native buffered answer → the door's: problems → door errors, JSON → `ok(json)`."""
        if resp.status >= 400:
            return door_error(door, problem_of(resp.buffered_body()), resp.headers, rid)
        if resp.status != 200 or resp.stream is not None:
            return resp  # 202 with a job (a long-running model): the native job body, documented
        native = loads(resp.body)
        headers = _headers(door, resp.headers, rid)
        cost = (native.get("usage") or {}).get("cost_estimate") if isinstance(native, dict) else None
        if cost is not None:
            headers["x-llmgw-cost-usd"] = str(cost)
        return HttpResponse(200, {"Content-Type": JSON, **headers}, dumps(ok(native)))

    @staticmethod
    def _rid(req: HttpRequest) -> str:
        if not req.request_id:
            req.request_id = new_request_id()
        return req.request_id

    # ------------------------------------------------------------ streaming app contract

    def chat_completions(self, req: HttpRequest) -> HttpResponse:
        """What the streaming app calls: the door's chat route, by path."""
        if req.path == OPENAI_CHAT:
            return self.openai_chat(req)
        if req.path == ANTHROPIC_MESSAGES:
            return self.anthropic_messages(req)
        return self.not_found(req)

    def not_found(self, req: HttpRequest) -> HttpResponse:
        rid = self._rid(req)
        door = door_of(req.path)
        return _gateway_error(door, GatewayError("not_found", f"There is no route {req.method} {req.path[:200]}."), rid)

    # ------------------------------------------------------------ OpenAI

    def openai_chat(self, req: HttpRequest) -> HttpResponse:
        rid = self._rid(req)
        try:
            native, stream, include_usage = oa.chat_request(self._body(req), req.headers)
        except GatewayError as exc:
            return self._early(OPENAI, req, exc)
        resp = self.chat.chat_completions(native_request(req, native))
        if stream and resp.status == 200 and resp.stream is not None:
            return HttpResponse(200, {**SSE_HEADERS, **_headers(OPENAI, resp.headers, rid)},
                                stream=oa.chat_stream(resp.stream, include_usage))
        return self._translate(OPENAI, resp, oa.chat_response, rid)

    def openai_embeddings(self, req: HttpRequest) -> HttpResponse:
        rid = self._rid(req)
        try:
            native = oa.embeddings_request(self._body(req), req.headers)
        except GatewayError as exc:
            return self._early(OPENAI, req, exc, "embeddings")
        resp = self.embeddings_service.embeddings(native_request(req, native, "/embeddings"))
        return self._translate(OPENAI, resp, oa.embeddings_response, rid)

    def openai_models(self, req: HttpRequest) -> HttpResponse:
        rid = self._rid(req)
        resp = self.chat.list_models(req)
        return self._translate(OPENAI, resp, oa.models_response, rid)

    def openai_model(self, req: HttpRequest, model_id: str) -> HttpResponse:
        rid = self._rid(req)
        resp = self.chat.list_models(req)
        if resp.status != 200:
            return self._translate(OPENAI, resp, oa.models_response, rid)
        for m in loads(resp.body).get("data") or ():
            if model_id == m["id"] or model_id in (m.get("aliases") or ()):
                return HttpResponse(200, {"Content-Type": JSON, **_headers(OPENAI, resp.headers, rid)}, dumps(oa.model_object(m)))
        err = GatewayError("model_not_found", f"The model '{model_id[:200]}' does not exist or you do not have access to it.")
        return _gateway_error(OPENAI, err, rid)

    def openai_images(self, req: HttpRequest) -> HttpResponse:
        rid = self._rid(req)
        try:
            native, fmt = oa.images_request(self._body(req), req.headers)
        except GatewayError as exc:
            return self._early(OPENAI, req, exc)
        resp = self.chat.chat_completions(native_request(req, native))

        def ok(body: dict[str, Any]) -> dict[str, Any]:
            urls = [p["url"] for p in body.get("content") or () if p.get("type") == "image"]
            if fmt == "b64_json":
                import base64

                images = [{"b64_json": base64.b64encode(read_generated(u)).decode("ascii")} for u in urls]
            else:
                images = [{"url": u} for u in urls]
            return oa.images_response(body, images)

        try:
            return self._translate(OPENAI, resp, ok, rid)
        except GatewayError as exc:
            return _gateway_error(OPENAI, exc, rid)

    def openai_speech(self, req: HttpRequest) -> HttpResponse:
        rid = self._rid(req)
        try:
            native = oa.speech_request(self._body(req), req.headers)
        except GatewayError as exc:
            return self._early(OPENAI, req, exc)
        from llm_gateway.registry.catalog import get_catalog

        model = get_catalog().lookup(native["model"])
        streamed = model is not None and "stream" in model.capabilities
        if streamed:  # audio chunks straight from the provider: nothing stored, nothing read back
            native["stream"] = True
        resp = self.chat.chat_completions(native_request(req, native))
        if resp.status >= 400 or resp.status == 202:
            return self._translate(OPENAI, resp, lambda b: b, rid)
        headers = _headers(OPENAI, resp.headers, rid)
        try:
            if resp.stream is not None:
                audio, fmt, problem = oa.speech_audio(resp.stream)
                if problem is not None:
                    return door_error(OPENAI, problem, resp.headers, rid)
                media_type = oa.SPEECH_TYPES.get(fmt or "", "application/octet-stream")
            else:
                body = loads(resp.body)
                parts = [p for p in body.get("content") or () if p.get("type") == "audio"]
                if not parts:
                    raise GatewayError("provider_error", "The model returned no audio.")
                audio = read_generated(parts[0]["url"])
                media = body.get("media") or [{}]
                media_type = media[0].get("media_type") or "application/octet-stream"
        except GatewayError as exc:
            return _gateway_error(OPENAI, exc, rid)
        return HttpResponse(200, {"Content-Type": media_type, **headers}, audio)  # type: ignore[arg-type] - bytes body

    def openai_transcriptions(self, req: HttpRequest) -> HttpResponse:
        rid = self._rid(req)
        try:
            principal = self._authenticate(req, "chat")
        except GatewayError as exc:
            return _gateway_error(OPENAI, exc, rid)
        try:
            form = parse_multipart(req.body, req.headers.get("content-type"))
            fields = {name: parts[0].text for name, parts in form.items() if parts and parts[0].filename is None}
            upload = (form.get("file") or [None])[0]
            if upload is None or not upload.data:
                raise invalid("file is required (the audio file to transcribe).", "file")
            if fields.get("stream", "false").lower() == "true":
                raise GatewayError("capability_not_supported", "Streamed transcription is not supported; omit stream.",
                                   errors=[{"path": "stream", "message": "not supported"}])
            fmt = fields.get("response_format") or "json"
            if fmt not in oa.TRANSCRIPTION_FORMATS:
                raise invalid(f"response_format must be one of {', '.join(sorted(oa.TRANSCRIPTION_FORMATS))}.", "response_format")
            if not fields.get("model"):
                raise invalid("you must provide a model parameter", "model")
            from llm_gateway.registry.catalog import get_catalog

            get_catalog().resolve(fields["model"])  # an unknown model is refused before anything is stored
        except GatewayError as exc:
            return self._early(OPENAI, req, exc)
        from llm_gateway.media.sniff import EXTENSIONS, sniff
        from llm_gateway.stores.files import FileStorage

        media_type = sniff(upload.data) or (upload.content_type or "application/octet-stream").split(";")[0].strip()
        ext = EXTENSIONS.get(media_type) or (upload.filename or "").rsplit(".", 1)[-1][:8] or "bin"
        stored = FileStorage().put(principal.tenant_id, upload.data, media_type, kind="upload", ext=ext)
        try:
            native = oa.transcription_request(fields, f"s3://{stored.bucket}/{stored.key}", req.headers)
        except GatewayError as exc:
            return self._early(OPENAI, req, exc)
        resp = self.chat.chat_completions(native_request(req, native))
        if resp.status != 200 or resp.stream is not None:
            return self._translate(OPENAI, resp, lambda b: b, rid)
        content_type, body = oa.transcription_response(loads(resp.body), fmt, fields.get("language"))
        headers = _headers(OPENAI, resp.headers, rid)
        text = body if isinstance(body, str) else dumps(body)
        return HttpResponse(200, {"Content-Type": content_type, **headers}, text)

    # ------------------------------------------------------------ OpenAI files and batches

    @property
    def batches(self) -> Any:
        from llm_gateway.jobs.batch_service import batch_service

        return batch_service()

    def _upload(self, principal: Any, fid: str) -> tuple[bytes, str]:
        """The bytes and S3 key of an uploaded file of the caller's tenant (`not_found` otherwise)."""
        from llm_gateway.stores.files import FileStorage

        key = oa.file_key(fid, principal.tenant_id)
        if key is not None:
            storage = FileStorage()
            try:
                data, _ = storage.read(principal.tenant_id, storage.bucket, key, MAX_MEDIA_READ)
                return data, key
            except GatewayError:
                pass
        raise GatewayError("not_found", f"No such File object: {fid[:120]}")

    def openai_file_create(self, req: HttpRequest) -> HttpResponse:
        rid = self._rid(req)
        try:
            principal = self._authenticate(req, "batches")
            form = parse_multipart(req.body, req.headers.get("content-type"))
            purpose = (form.get("purpose") or [None])[0]
            upload = (form.get("file") or [None])[0]
            if purpose is None or purpose.text != "batch":
                raise invalid("purpose must be 'batch' (the gateway keeps files for the Batch API only).", "purpose")
            if upload is None or not upload.data:
                raise invalid("file is required.", "file")
            from llm_gateway.stores.files import FileStorage

            stored = FileStorage().put(principal.tenant_id, upload.data, "application/jsonl", kind="upload", ext="jsonl")
        except GatewayError as exc:
            return _gateway_error(OPENAI, exc, rid)
        import time

        fid = oa.file_id(stored.key.removeprefix(f"tenants/{principal.tenant_id}/"))
        body = oa.file_object(fid, len(upload.data), upload.filename or "upload.jsonl", int(time.time()))
        return HttpResponse(200, {"Content-Type": JSON, "x-request-id": rid}, dumps(body))

    def _file_bytes(self, req: HttpRequest, fid: str) -> tuple[bytes | str, str]:
        """(content, filename) of an uploaded file or of a batch's output / error file."""
        principal = self._authenticate(req, "batches")
        for prefix, errors in ((oa.OUTPUT_PREFIX, False), (oa.ERROR_PREFIX, True)):
            if fid.startswith(prefix):
                resp = self.batches.get(req, fid[len(prefix):])
                if resp.status != 200:
                    problem = problem_of(resp.buffered_body())
                    raise GatewayError("not_found", f"No such File object: {fid[:120]} ({problem.get('detail')})")
                return oa.batch_file(loads(resp.body), errors), f"{fid}.jsonl"
        data, key = self._upload(principal, fid)
        return data, key.rsplit("/", 1)[-1]

    def openai_file_get(self, req: HttpRequest, fid: str) -> HttpResponse:
        rid = self._rid(req)
        try:
            content, name = self._file_bytes(req, fid)
        except GatewayError as exc:
            return _gateway_error(OPENAI, exc, rid)
        size = len(content.encode("utf-8") if isinstance(content, str) else content)
        return HttpResponse(200, {"Content-Type": JSON, "x-request-id": rid}, dumps(oa.file_object(fid, size, name, 0)))

    def openai_file_content(self, req: HttpRequest, fid: str) -> HttpResponse:
        rid = self._rid(req)
        try:
            content, _ = self._file_bytes(req, fid)
        except GatewayError as exc:
            return _gateway_error(OPENAI, exc, rid)
        return HttpResponse(200, {"Content-Type": "application/octet-stream", "x-request-id": rid}, content)  # type: ignore[arg-type]

    def openai_batch_create(self, req: HttpRequest) -> HttpResponse:
        rid = self._rid(req)
        try:
            body = self._body(req)
            for key in body:
                if key not in ("input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"):
                    raise invalid(f"Unrecognized request argument supplied: {key}", key)
            fid = body.get("input_file_id")
            if not isinstance(fid, str) or not fid:
                raise invalid("input_file_id is required.", "input_file_id")
            if body.get("endpoint") != oa.BATCH_ENDPOINT:
                raise invalid(f"endpoint must be {oa.BATCH_ENDPOINT} (the gateway batches chat completions).", "endpoint")
            if body.get("completion_window", "24h") != "24h":
                raise invalid("completion_window must be 24h.", "completion_window")
            metadata = body.get("metadata") or {}
            if not isinstance(metadata, dict):
                raise invalid("metadata must be an object of string values.", "metadata")
            principal = self._authenticate(req, "batches")
            data, _ = self._upload(principal, fid)
            native = {"requests": oa.batch_requests(data, req.headers), "metadata": {**metadata, oa.INPUT_FILE_KEY: fid}}
        except GatewayError as exc:
            return self._early(OPENAI, req, exc, "batches")
        resp = self.batches.create(native_request(req, native, "/batches"))
        if resp.status >= 400:
            return door_error(OPENAI, problem_of(resp.buffered_body()), resp.headers, rid)
        return HttpResponse(200, {"Content-Type": JSON, **_headers(OPENAI, resp.headers, rid)}, dumps(oa.batch_object(loads(resp.body))))

    def openai_batch_get(self, req: HttpRequest, batch_id: str) -> HttpResponse:
        rid = self._rid(req)
        return self._translate(OPENAI, self.batches.get(req, batch_id), oa.batch_object, rid)

    def openai_batch_cancel(self, req: HttpRequest, batch_id: str) -> HttpResponse:
        rid = self._rid(req)
        return self._translate(OPENAI, self.batches.cancel(req, batch_id), oa.batch_object, rid)

    # ------------------------------------------------------------ Anthropic

    def anthropic_messages(self, req: HttpRequest) -> HttpResponse:
        rid = self._rid(req)
        try:
            native = an.messages_request(self._body(req), req.headers)
        except GatewayError as exc:
            return self._early(ANTHROPIC, req, exc)
        resp = self.chat.chat_completions(native_request(req, native))
        if native.get("stream") and resp.status == 200 and resp.stream is not None:
            return HttpResponse(200, {**SSE_HEADERS, **_headers(ANTHROPIC, resp.headers, rid)}, stream=an.message_stream(resp.stream))
        return self._translate(ANTHROPIC, resp, an.message_response, rid)

    def anthropic_count_tokens(self, req: HttpRequest) -> HttpResponse:
        """`messages/count_tokens`: authenticated and approval-checked, not charged (no provider call).
        Exact for the mock provider (its tokenizer); an estimate (about four characters a token,
        fixed costs for media parts) for the others."""
        rid = self._rid(req)
        try:
            principal = self._authenticate(req, "chat")
        except GatewayError as exc:
            return _gateway_error(ANTHROPIC, exc, rid)
        try:
            native = an.messages_request(self._body(req), req.headers, count_only=True)
            count = count_input_tokens(native, principal, self.chat.pipeline)
        except GatewayError as exc:
            return _gateway_error(ANTHROPIC, exc, rid)
        return HttpResponse(200, {"Content-Type": JSON, "x-request-id": rid, "request-id": rid}, dumps(an.count_response(count)))

    def anthropic_models(self, req: HttpRequest) -> HttpResponse:
        rid = self._rid(req)
        resp = self.chat.list_models(req)

        def ok(body: dict[str, Any]) -> dict[str, Any]:
            data = [{"type": "model", "id": m["id"], "display_name": m["id"], "created_at": "1970-01-01T00:00:00Z"}
                    for m in body.get("data") or ()]
            return {"data": data, "has_more": False, "first_id": data[0]["id"] if data else None,
                    "last_id": data[-1]["id"] if data else None}

        return self._translate(ANTHROPIC, resp, ok, rid)


# ---------------------------------------------------------------- count_tokens

MEDIA_TOKENS = {"image": 85, "audio": 50, "video": 250, "document": 120}


def count_input_tokens(native: dict[str, Any], principal: Any, pipeline: Any) -> int:
    from llm_gateway.api.models import ChatRequest
    from llm_gateway.api.parse import parse_model
    from llm_gateway.pipeline.tools import resolve_tools
    from llm_gateway.registry.catalog import get_catalog

    request = parse_model(ChatRequest, dumps(native).encode("utf-8"))
    model = get_catalog().resolve(request.model)
    if not pipeline.governance.approved(principal, [model]):
        raise GatewayError("model_not_approved", f"Model '{model.id}' is not approved for tenant '{principal.tenant_id}'.", model=model.id)
    tools = resolve_tools(request, getattr(pipeline, "type_registry", None))
    if model.provider.kind == "mock":
        from llm_gateway.providers.base import Deadline, ProviderCall
        from llm_gateway.providers.mock import _input_tokens

        return _input_tokens(ProviderCall(request=request, model=model, deadline=Deadline(1.0, 1.0), tools=tools))
    chars = 0
    media = 0
    for message in request.messages:
        for part in message.content:
            if part.type == "text":
                chars += len(part.text)
            elif part.type == "tool_result":
                chars += len(part.tool_result.content)
            elif part.type == "tool_call":
                chars += len(part.tool_call.name) + len(dumps(part.tool_call.arguments))
            else:
                media += MEDIA_TOKENS.get(part.type, 0)
    for tool in tools:
        chars += len(tool.get("name", "")) + len(tool.get("description", "")) + len(dumps(tool.get("parameters", {})))
    if request.response_schema is not None:
        chars += len(dumps(request.response_schema.json_schema))
    return -(-chars // 4) + media + 3 * len(request.messages)


_service: CompatService | None = None


def compat_service() -> CompatService:
    global _service
    if _service is None:
        _service = CompatService()
    return _service


@resets.register
def reset_compat_service() -> None:
    global _service
    _service = None
