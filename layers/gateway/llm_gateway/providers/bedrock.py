"""AWS Bedrock adapter: the Converse / ConverseStream API through boto3's `bedrock-runtime` client.

The deliberate exception to "only `stores` knows AWS": Bedrock is a *provider*, reached with
SigV4-signed calls that only botocore makes well, so this adapter owns its own boto3 client.
It never touches the gateway's own AWS resources (tables, buckets, state machines) and ignores
`LLMGW_AWS_ENDPOINT_URL` (the local emulator) and `AWS_ENDPOINT_URL*` (boto3's configured
endpoints): its endpoint comes from the catalog alone.

Client: created lazily on first use and reused; region from the catalog provider's `region`
(else the AWS default chain); `endpoint_url` from the provider's `base_url` when set (a VPC
endpoint, or a local fake in tests); credentials from the normal AWS chain (Lambda role, env,
profile), or from the catalog's `credential`: `{"aws": true, "profile": "<name>"}` (an explicit
profile, which outranks the `AWS_*` environment keys — what local mode needs, since it points
those at its emulator) or `{"aws": true, "access_key_env": ..., "secret_key_env": ...,
"session_token_env": ...}` (names of environment variables).
botocore fixes timeouts per client, so the adapter keeps a small LRU of clients keyed by read
timeout (rounded up to 0.1 s below 10 s, to 1 s above): buffered calls use the remaining total
budget, streams the time-to-first-token budget (also the longest allowed gap between two events;
the total budget is checked between events; from the first token on, the socket's read timeout
is the remaining total budget). Retries are off (the gateway falls back instead). botocore does
not go through the outbound client, so the adapter itself asks the client's per-upstream circuit
breaker for a permit and reports each outcome (5xx/timeouts/transport failures and broken streams
fail, 429 is neutral, other 4xx succeed), and registers a stream's socket with the attempt's
`CallControl` so the watchdog can abort it (buffered calls are bounded by the read timeout only). Provider options: `max_pool_connections` (50), `connect_timeout_s` (5), `proxy`,
`s3_bucket_owner` (for `s3Location` media).

Request translation:
- system messages -> `system` text blocks; user / assistant -> `messages`, consecutive same-role
  messages merged (Bedrock requires alternation); `tool` messages -> `toolResult` blocks
  (`toolUseId`, content `[{"text": ...}]`) in a user message; assistant `tool_call` parts ->
  `toolUse` blocks with `input` as an object.
- image / document / video / audio parts -> `image` / `document` / `video` / `audio` blocks with
  `source.bytes` when the pipeline supplied the media inline (`call.extra["media"][url]` =
  `{"data": <base64>, "media_type": ...}`, or a `data:` URL), or `source.s3Location` for
  `s3://` URLs. Any other URL is `capability_not_supported` (Bedrock does not fetch URLs).
- tools -> `toolConfig.tools[].toolSpec` (`inputSchema.json`); `tool_choice` auto/required/named
  -> `auto` / `any` / `tool`. Bedrock has no "none": tools are then not offered (unless the
  history holds tool blocks, which makes Bedrock require a `toolConfig`). When the history holds
  tool blocks but the request offers no tools, the tools used in the history are declared with
  an open schema, because Bedrock rejects tool blocks without a `toolConfig`.
- `response_schema` (never dropped): model option `structured_output: "tool"` (default) offers a
  forced tool `json_answer` whose input is the answer (non-object schemas wrapped in `{"value"}`);
  its input comes back as one text part of compact JSON and finish `stop`.
  `structured_output: "native"` sends `outputConfig.textFormat` (`json_schema`, the schema as a
  JSON string) for models with Bedrock's native structured outputs.
- `max_tokens`, `temperature`, `top_p`, `stop` -> `inferenceConfig`. `seed` has no Converse
  field and is not sent. Model options `additional_request_fields` ->
  `additionalModelRequestFields`, `guardrail` -> `guardrailConfig`.

Streaming: the adapter reads the `application/vnd.amazon.eventstream` body itself (`decode_events`:
prelude and message CRC32s checked, string headers, JSON payloads) instead of iterating botocore's
`EventStream`, which costs about four times as much per event; the events are the same dicts.
messageStart / contentBlockStart (toolUse id + name) / contentBlockDelta (text, toolUse input
fragments) / contentBlockStop / messageStop (stop reason) / metadata (usage) become `StreamDelta`s:
text deltas, `delta.tool_calls` fragments (`index` counts tool calls, the first carries `id` and
`name`), and a last delta with the finish reason and the exact usage. The structured-output answer
tool's input is buffered and emitted as one compact JSON text delta when its block stops, so a
streamed and a buffered answer are identical. Exception frames (throttlingException,
modelStreamErrorException, internalServerException, serviceUnavailableException,
validationException) map like the HTTP errors below.

Answer translation: text blocks joined into one text part, `toolUse` -> tool calls (arguments as
objects); stop reasons end_turn/stop_sequence -> stop, max_tokens/model_context_window_exceeded
-> length, tool_use -> tool_calls, guardrail_intervened/content_filtered -> content_filter,
malformed_model_output/malformed_tool_use -> `provider_error`.
Usage: Bedrock's `inputTokens` counts only the *uncached* input; `cacheReadInputTokens` and
`cacheWriteInputTokens` are separate (`totalTokens` = input + output + cache read + cache write).
The gateway's `input_tokens` includes both, so they are added. Should a response ever report
`totalTokens == inputTokens + outputTokens` with cache counts present (inputTokens already
inclusive), they are not added twice.

Errors: ClientError codes -> ThrottlingException / ServiceQuotaExceededException ->
`rate_limited` (Retry-After kept, else 1 s); AccessDeniedException -> `provider_error`
(credentials rejected); ValidationException -> `validation_error` when it is about context length,
else `provider_error`; ModelTimeoutException -> `provider_timeout`; ServiceUnavailable /
InternalServer / ModelNotReady / ModelError -> `provider_error`. The same for the exception events
of a stream. botocore Read/ConnectTimeoutError -> `provider_timeout`; EndpointConnectionError
and other transport failures -> `provider_error`. Provider messages are kept (redacted).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import re
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlparse

from orjson import loads as _orjson_loads

from llm_gateway.api.errors import GatewayError
from llm_gateway.outbound.client import provider_status_error
from llm_gateway.providers.base import ChatResult, ProviderAdapter, ProviderCall, StreamDelta, TokenUsage

ANSWER_TOOL = "json_answer"
ANSWER_TOOL_DESCRIPTION = (
    "Give your final answer by calling this tool. Its input is the answer itself and must follow the input schema."
)

STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
MALFORMED_STOP_REASONS = frozenset({"malformed_model_output", "malformed_tool_use"})

# error code (lower-cased; stream exception events use camelCase names) -> the HTTP status whose
# mapping the gateway applies (see `provider_status_error`)
STATUS_BY_CODE = {
    "throttlingexception": 429,
    "servicequotaexceededexception": 429,
    "accessdeniedexception": 403,
    "unrecognizedclientexception": 403,
    "invalidsignatureexception": 403,
    "expiredtokenexception": 403,
    "validationexception": 400,
    "resourcenotfoundexception": 404,
    "modeltimeoutexception": 408,
    "modelerrorexception": 424,
    "modelstreamerrorexception": 424,
    "internalserverexception": 500,
    "serviceunavailableexception": 503,
    "modelnotreadyexception": 503,  # HTTP 429 on the wire, but the model is warming up, not rate limiting
}
_CONTEXT_PATTERNS = re.compile(
    r"(input|prompt) is too long|too many (input )?tokens|context (length|window)|maximum context|token limit",
    re.IGNORECASE,
)

IMAGE_FORMATS = {"png": "png", "jpeg": "jpeg", "jpg": "jpeg", "gif": "gif", "webp": "webp"}
DOCUMENT_FORMATS = {
    "pdf": "pdf", "csv": "csv", "doc": "doc", "docx": "docx", "xls": "xls", "xlsx": "xlsx",
    "html": "html", "htm": "html", "txt": "txt", "md": "md", "markdown": "md",
    "application/pdf": "pdf", "text/csv": "csv", "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html", "text/plain": "txt", "text/markdown": "md",
}
VIDEO_FORMATS = {
    "mkv": "mkv", "x-matroska": "mkv", "mov": "mov", "quicktime": "mov", "mp4": "mp4", "webm": "webm",
    "flv": "flv", "x-flv": "flv", "mpeg": "mpeg", "mpg": "mpg", "wmv": "wmv", "x-ms-wmv": "wmv",
    "3gp": "three_gp", "3gpp": "three_gp",
}
AUDIO_FORMATS = {
    "mp3": "mp3", "mpeg": "mp3", "opus": "opus", "wav": "wav", "x-wav": "wav", "wave": "wav", "aac": "aac",
    "flac": "flac", "mp4": "mp4", "m4a": "m4a", "ogg": "ogg", "webm": "webm", "pcm": "pcm",
}
_FORMATS = {"image": IMAGE_FORMATS, "document": DOCUMENT_FORMATS, "video": VIDEO_FORMATS, "audio": AUDIO_FORMATS}
_DOC_NAME_BAD = re.compile(r"[^A-Za-z0-9\s\-\(\)\[\]]+")

DEFAULT_CONNECT_S = float(os.environ.get("LLMGW_CONNECT_TIMEOUT_S", "5"))
_MAX_CLIENTS = 8


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _timeout_key(seconds: float) -> float:
    """Round a budget up so that equal budgets share a client (0.1 s steps below 10 s, 1 s above)."""
    seconds = max(0.1, seconds)
    if seconds < 10:
        return math.ceil(seconds * 10) / 10
    return float(math.ceil(seconds))


class BedrockAdapter(ProviderAdapter):
    kind = "bedrock"
    accepted_parts = frozenset({"text", "image", "document", "video", "audio", "tool_call", "tool_result"})

    def __init__(self, provider: Any, http: Any) -> None:
        super().__init__(provider, http)
        self._session: Any = None
        self._clients: OrderedDict[float, Any] = OrderedDict()
        self._lock = threading.Lock()

    # ------------------------------------------------------------ client

    def client(self, read_timeout_s: float) -> Any:
        """The `bedrock-runtime` client for this read timeout (created once, then reused)."""
        key = _timeout_key(read_timeout_s)
        with self._lock:
            c = self._clients.get(key)
            if c is not None:
                self._clients.move_to_end(key)
                return c
            import boto3
            from botocore.config import Config

            if self._session is None:
                self._session = self._new_session(boto3)
            opts = self.provider.options
            proxy = opts.get("proxy")
            config = Config(
                read_timeout=key,
                connect_timeout=min(float(opts.get("connect_timeout_s", DEFAULT_CONNECT_S)), key),
                retries={"total_max_attempts": 1, "mode": "standard"},  # the gateway falls back instead
                max_pool_connections=int(opts.get("max_pool_connections", 50)),
                tcp_keepalive=True,
                user_agent_extra="llm-gateway",
                ignore_configured_endpoint_urls=True,  # the catalog's base_url is the only endpoint
                proxies={"http": proxy, "https": proxy} if proxy else None,
            )
            try:
                c = self._session.client(
                    "bedrock-runtime",
                    region_name=self.provider.region or self._session.region_name or "us-east-1",
                    endpoint_url=self.provider.base_url or None,
                    config=config,
                )
            except Exception as exc:  # botocore ProfileNotFound, a broken config file: configuration, not a crash
                self._session = None
                raise GatewayError("provider_error",
                                   f"Provider '{self.provider.id}' has an unusable AWS credential source or configuration "
                                   f"({type(exc).__name__}).", provider=self.provider.id) from None
            self._clients[key] = c
            while len(self._clients) > _MAX_CLIENTS:
                self._clients.popitem(last=False)
            return c

    def _new_session(self, boto3: Any) -> Any:
        """A boto3 session on the provider's credential source (see the module docstring)."""
        source = self.provider.credential or {}
        pid = self.provider.id
        kwargs: dict[str, Any] = {}
        if source.get("profile"):
            kwargs["profile_name"] = source["profile"]  # an explicit profile outranks the AWS_* env keys
        elif source.get("access_key_env"):
            key = os.environ.get(source["access_key_env"])
            secret = os.environ.get(source.get("secret_key_env") or "")
            if not key or not secret:
                raise GatewayError("provider_error",
                                   f"Provider '{pid}' has no credential configured (set environment variables "
                                   f"{source['access_key_env']} and {source.get('secret_key_env') or '<secret_key_env>'}).",
                                   provider=pid)
            kwargs.update(aws_access_key_id=key, aws_secret_access_key=secret,
                          aws_session_token=os.environ.get(source.get("session_token_env") or "") or None)
        try:
            import botocore.session

            core = botocore.session.Session()
            core.register_component("data_loader", _shared_loader())
            return boto3.session.Session(botocore_session=core, **kwargs)
        except Exception as exc:  # botocore ProfileNotFound and friends: configuration, not a crash
            raise GatewayError("provider_error", f"Provider '{pid}' has an unusable AWS credential source ({type(exc).__name__}).",
                               provider=pid) from None

    # ------------------------------------------------------------ request translation

    def _media_source(self, call: ProviderCall, kind: str, url: str) -> tuple[dict[str, Any], str | None]:
        """(`source`, media type or None) for a media part: inline bytes or an S3 location."""
        entry = call.extra.get("media", {}).get(url) if call.extra else None
        data_url = entry if isinstance(entry, str) else (url if url.startswith("data:") else None)
        if isinstance(entry, dict) and entry.get("data") is not None:
            data, media_type = entry["data"], entry.get("media_type")
            raw = data if isinstance(data, (bytes, bytearray)) else self._b64(data, url)
            return {"bytes": bytes(raw)}, media_type
        if data_url and data_url.startswith("data:"):
            header, _, payload = data_url[5:].partition(",")
            media_type = header.split(";")[0] or None
            raw = self._b64(payload, url) if header.endswith(";base64") else unquote(payload).encode()
            return {"bytes": raw}, media_type
        if url.startswith("s3://"):
            loc: dict[str, Any] = {"uri": url}
            owner = self.provider.options.get("s3_bucket_owner")
            if owner:
                loc["bucketOwner"] = str(owner)
            media_type = entry.get("media_type") if isinstance(entry, dict) else None
            return {"s3Location": loc}, media_type
        raise GatewayError(
            "capability_not_supported",
            f"Provider '{self.provider.id}' (bedrock) takes {kind} content as inline bytes or an s3:// URL; "
            f"'{url[:200]}' was not fetched by the gateway.",
            provider=self.provider.id,
        )

    def _b64(self, data: str, url: str) -> bytes:
        try:
            return base64.b64decode(data, validate=False)
        except (binascii.Error, ValueError):
            raise GatewayError("validation_error", f"The inline data of '{url[:200]}' is not valid base64.") from None

    def _format(self, kind: str, url: str, media_type: str | None) -> str:
        table = _FORMATS[kind]
        if media_type:
            mt = media_type.lower().split(";")[0].strip()
            if mt in table:
                return table[mt]
            sub = mt.rpartition("/")[2]
            if sub in table:
                return table[sub]
        path = urlparse(url).path if not url.startswith("data:") else ""
        ext = path.rpartition(".")[2].lower() if "." in path.rpartition("/")[2] else ""
        if ext in table:
            return table[ext]
        raise GatewayError(
            "capability_not_supported",
            f"Provider '{self.provider.id}' (bedrock) cannot tell the {kind} format of '{url[:200]}'"
            f"{f' ({media_type})' if media_type else ''}; it takes {', '.join(sorted(set(table.values())))}.",
            provider=self.provider.id,
        )

    def _media_block(self, call: ProviderCall, kind: str, url: str, doc_names: set[str]) -> dict[str, Any]:
        source, media_type = self._media_source(call, kind, url)
        block: dict[str, Any] = {"format": self._format(kind, url, media_type), "source": source}
        if kind == "document":
            stem = unquote(urlparse(url).path.rpartition("/")[2].rpartition(".")[0]) if not url.startswith("data:") else ""
            name = " ".join(_DOC_NAME_BAD.sub(" ", stem).split())[:200] or "document"
            base, n = name, 1
            while name in doc_names:  # names must be unique within a request
                n += 1
                name = f"{base} ({n})"
            doc_names.add(name)
            block["name"] = name
        return {kind: block}

    def _messages(self, call: ProviderCall) -> tuple[list[dict[str, Any]], list[dict[str, Any]], set[str] | None]:
        """(system blocks, messages, names of the tools the history calls — None without tool blocks)."""
        system: list[dict[str, Any]] = []
        messages: list[dict[str, Any]] = []
        history_tools: set[str] | None = None
        doc_names: set[str] = set()

        def add(role: str, block: dict[str, Any]) -> None:
            if messages and messages[-1]["role"] == role:
                messages[-1]["content"].append(block)
            else:
                messages.append({"role": role, "content": [block]})

        for message in call.request.messages:
            role = message.role
            if role == "system":
                for part in message.content:
                    if part.type != "text":
                        raise GatewayError(
                            "capability_not_supported",
                            f"Provider '{self.provider.id}' (bedrock) takes only text in system messages, not '{part.type}'.",
                            provider=self.provider.id,
                        )
                    if part.text:
                        system.append({"text": part.text})
                continue
            base_role = "assistant" if role == "assistant" else "user"
            for part in message.content:
                kind = part.type
                if kind == "text":
                    if part.text:
                        add(base_role, {"text": part.text})
                elif kind == "tool_call":
                    tc = part.tool_call
                    history_tools = (history_tools or set()) | {tc.name}
                    add("assistant", {"toolUse": {"toolUseId": tc.id, "name": tc.name, "input": tc.arguments}})
                elif kind == "tool_result":
                    tr = part.tool_result
                    history_tools = history_tools or set()
                    add("user", {"toolResult": {"toolUseId": tr.tool_call_id, "content": [{"text": tr.content or "(no output)"}]}})
                else:
                    add(base_role, self._media_block(call, kind, part.url, doc_names))
        return system, messages, history_tools

    def _structured_mode(self, call: ProviderCall) -> str | None:
        if call.response_schema is None:
            return None
        mode = call.model.options.get("structured_output") or self.provider.options.get("structured_output") or "tool"
        return "native" if mode == "native" else "tool"

    @staticmethod
    def _answer_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """The answer tool's input schema, and whether the answer is wrapped in `{"value": ...}`."""
        if schema.get("type") == "object" or (schema.get("type") is None and "properties" in schema):
            out = dict(schema)
            out.setdefault("type", "object")
            return out, False
        return {"type": "object", "properties": {"value": schema}, "required": ["value"]}, True

    def answer_tool_name(self, call: ProviderCall) -> str:
        name = ANSWER_TOOL
        taken = {t["name"] for t in call.tools}
        while name in taken:
            name += "_"
        return name

    def build_request(self, call: ProviderCall) -> dict[str, Any]:
        """The Converse / ConverseStream parameters (the same for both), `modelId` included."""
        req = call.request
        system, messages, history_tools = self._messages(call)
        params: dict[str, Any] = {"modelId": call.model.provider_model, "messages": messages}
        if system:
            params["system"] = system

        choice = req.tool_choice
        mode = self._structured_mode(call)
        offer_user_tools = bool(call.tools) and (choice != "none" or history_tools is not None)
        specs: list[dict[str, Any]] = []
        if offer_user_tools:
            specs = [
                {"toolSpec": {"name": t["name"], "description": t.get("description") or t["name"],
                              "inputSchema": {"json": t.get("parameters") or {"type": "object", "properties": {}}}}}
                for t in call.tools
            ]
        elif history_tools is not None:
            # Bedrock rejects toolUse/toolResult blocks without a toolConfig: declare what the history used
            specs = [
                {"toolSpec": {"name": name, "description": "A tool used earlier in this conversation.",
                              "inputSchema": {"json": {"type": "object", "properties": {}}}}}
                for name in sorted(history_tools)
            ]
        tool_choice: dict[str, Any] | None = None
        if offer_user_tools and choice is not None and choice != "none":
            if choice == "auto":
                tool_choice = {"auto": {}}
            elif choice == "required":
                tool_choice = {"any": {}}
            else:
                tool_choice = {"tool": {"name": choice.name}}
        if mode == "tool" and not (offer_user_tools and (choice == "required" or hasattr(choice, "name"))):
            answer = self.answer_tool_name(call)
            schema, _ = self._answer_schema(call.response_schema or {})
            specs.append({"toolSpec": {"name": answer, "description": ANSWER_TOOL_DESCRIPTION, "inputSchema": {"json": schema}}})
            # with user tools on offer the model may still call them; it must call *some* tool
            tool_choice = {"any": {}} if offer_user_tools and choice != "none" else {"tool": {"name": answer}}
        elif mode == "native":
            params["outputConfig"] = {
                "textFormat": {
                    "type": "json_schema",
                    "structure": {"jsonSchema": {"schema": _dumps(call.response_schema),
                                                 "name": str(call.extra.get("schema_name") or "response")[:64]}},
                }
            }
        if specs:
            tool_config: dict[str, Any] = {"tools": specs}
            if tool_choice is not None:
                tool_config["toolChoice"] = tool_choice
            params["toolConfig"] = tool_config

        inference: dict[str, Any] = {}
        if req.max_tokens is not None:
            inference["maxTokens"] = req.max_tokens
        if req.temperature is not None:
            inference["temperature"] = req.temperature
        if req.top_p is not None:
            inference["topP"] = req.top_p
        if req.stop:
            inference["stopSequences"] = list(req.stop)
        if inference:
            params["inferenceConfig"] = inference
        extra_fields = call.model.options.get("additional_request_fields")
        if extra_fields:
            params["additionalModelRequestFields"] = extra_fields
        guardrail = call.model.options.get("guardrail") or self.provider.options.get("guardrail")
        if guardrail:
            g = {"guardrailIdentifier": guardrail["identifier"], "guardrailVersion": str(guardrail.get("version", "DRAFT"))}
            if guardrail.get("trace"):
                g["trace"] = guardrail["trace"]
            params["guardrailConfig"] = g
        return params

    # ------------------------------------------------------------ answer translation

    @staticmethod
    def usage_from(raw: dict[str, Any] | None) -> TokenUsage:
        if not raw:
            return TokenUsage()
        inp = int(raw.get("inputTokens") or 0)
        out = int(raw.get("outputTokens") or 0)
        read = int(raw.get("cacheReadInputTokens") or 0)
        write = int(raw.get("cacheWriteInputTokens") or 0)
        total = raw.get("totalTokens")
        if (read or write) and total is not None and int(total) == inp + out:
            input_total = inp  # already inclusive: do not count the cache twice
        else:
            input_total = inp + read + write
        return TokenUsage(input_tokens=input_total, output_tokens=out, cached_input_tokens=read, cache_write_tokens=write)

    def _finish(self, stop_reason: str | None, answered: bool) -> str:
        if stop_reason in MALFORMED_STOP_REASONS:
            raise GatewayError(
                "provider_error",
                f"Provider '{self.provider.id}' stopped with '{stop_reason}': the model's output could not be used.",
                provider=self.provider.id,
            )
        finish = STOP_REASONS.get(stop_reason or "end_turn", "stop")
        if finish == "tool_calls" and answered:
            return "stop"
        return finish

    @staticmethod
    def _answer_text(value: Any, wrapped: bool) -> str:
        if wrapped and isinstance(value, dict):
            value = value.get("value")
        return _dumps(value)

    def parse_result(self, data: dict[str, Any], call: ProviderCall) -> ChatResult:
        mode = self._structured_mode(call)
        answer = self.answer_tool_name(call) if mode == "tool" else None
        wrapped = self._answer_schema(call.response_schema or {})[1] if answer else False
        message = (data.get("output") or {}).get("message") or {}
        texts: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        answered = False
        for block in message.get("content") or ():
            if "text" in block:
                texts.append(block["text"])
            elif "toolUse" in block:
                tu = block["toolUse"]
                if answer is not None and tu.get("name") == answer:
                    texts.append(self._answer_text(tu.get("input"), wrapped))
                    answered = True
                    continue
                args = tu.get("input")
                tool_calls.append({"id": tu.get("toolUseId", ""), "name": tu.get("name", ""),
                                   "arguments": args if isinstance(args, dict) else ({} if args is None else {"value": args})})
        text = "".join(texts)
        content = [{"type": "text", "text": text}] if text else []
        finish = self._finish(data.get("stopReason"), answered and not tool_calls)
        request_id = (data.get("ResponseMetadata") or {}).get("RequestId")
        return ChatResult(content=content, tool_calls=tool_calls, finish_reason=finish,
                          usage=self.usage_from(data.get("usage")), provider_response_id=request_id)

    # ------------------------------------------------------------ errors

    def error_from_code(self, code: str, message: str, headers: dict[str, str] | None = None,
                        http_status: int | None = None) -> GatewayError:
        status = STATUS_BY_CODE.get(code.lower(), http_status or 502)
        message = f"{code}: {message}" if message else code
        if status == 400 and _CONTEXT_PATTERNS.search(message):
            message = f"context length exceeded: {message}"
        return provider_status_error(self.provider.id, status, message, headers or {},
                                     kind="throttled" if status == 429 else None)

    def translate_exception(self, exc: BaseException) -> GatewayError:
        """A botocore / urllib3 failure as the gateway's error."""
        from botocore import exceptions as bx

        pid = self.provider.id
        if isinstance(exc, bx.ClientError):
            err = exc.response.get("Error") or {}
            meta = exc.response.get("ResponseMetadata") or {}
            code = str(err.get("Code") or "UnknownError")
            status = meta.get("HTTPStatusCode")
            return self.error_from_code(code, str(err.get("Message") or ""), meta.get("HTTPHeaders") or {},
                                        status if isinstance(status, int) and status >= 400 else None)
        if isinstance(exc, bx.ConnectTimeoutError):
            return GatewayError("provider_timeout", f"Provider '{pid}' did not answer in time (connect timeout).",
                                provider=pid, timeout="connect")
        if isinstance(exc, bx.ReadTimeoutError):
            return GatewayError("provider_timeout", f"Provider '{pid}' did not answer in time (read timeout).",
                                provider=pid, timeout="read")
        if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
            return GatewayError("provider_error", f"Provider '{pid}' has no AWS credentials configured ({type(exc).__name__}).",
                                provider=pid)
        if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionClosedError):
            return GatewayError("provider_error", f"Could not reach provider '{pid}' ({type(exc).__name__}).", provider=pid)
        try:
            from urllib3.exceptions import ReadTimeoutError as U3ReadTimeout

            if isinstance(exc, U3ReadTimeout):
                return GatewayError("provider_timeout", f"Provider '{pid}' did not answer in time (read timeout).",
                                    provider=pid, timeout="read")
        except ImportError:  # pragma: no cover
            pass
        return GatewayError("provider_error", f"Provider '{pid}' failed ({type(exc).__name__}).", provider=pid)

    @staticmethod
    def _transport_errors() -> tuple[type[BaseException], ...]:
        from botocore.eventstream import ParserError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            from urllib3.exceptions import HTTPError as U3Error
        except ImportError:  # pragma: no cover
            return (ClientError, BotoCoreError, ParserError)
        return (ClientError, BotoCoreError, ParserError, U3Error)

    # ------------------------------------------------------------ calls

    def _budget(self, call: ProviderCall, seconds: float, what: str) -> float:
        if seconds <= 0:
            raise GatewayError("provider_timeout", f"Provider '{self.provider.id}' had no time left ({what} budget spent).",
                               provider=self.provider.id, timeout=what)
        return seconds

    def chat(self, call: ProviderCall) -> ChatResult:
        params = self.build_request(call)
        control = _current_control()
        if control is not None:
            control.check()  # already timed out or cancelled: no call
        client = self.client(self._budget(call, call.deadline.remaining(), "total"))
        permit = self._permit(client)
        try:
            data = client.converse(**params)
        except self._transport_errors() as exc:
            raise self._failed(self.translate_exception(exc), permit, control) from None
        try:
            result = self.parse_result(data, call)
        except GatewayError as exc:
            raise self._failed(exc, permit, control) from None
        _report(permit, "success")
        return result

    def stream(self, call: ProviderCall) -> Iterator[StreamDelta]:
        params = self.build_request(call)
        control = _current_control()
        if control is not None:
            control.check()
        client = self.client(self._budget(call, call.deadline.first_token_remaining(), "ttft"))
        permit = self._permit(client)
        errors = self._transport_errors()
        try:
            resp = client.converse_stream(**params)
        except errors as exc:
            raise self._failed(self.translate_exception(exc), permit, control) from None
        events = resp["stream"]
        sock = _socket_of(events)
        remove = control.on_abort(lambda: _shutdown(sock)) if control is not None and sock is not None else _noop
        raw = getattr(events, "_raw_stream", None)
        source = self.decode_events(raw.stream()) if hasattr(raw, "stream") else events
        first = False
        try:
            for delta in self.parse_stream(source, call):
                if not first and (delta.text or delta.tool_calls):
                    first = True
                    if sock is not None:  # from the first token on, only the total budget bounds a read
                        _settimeout(sock, call.deadline.remaining())
                yield delta
        except errors as exc:
            raise self._failed(self.translate_exception(exc), permit, control) from None
        except GatewayError as exc:
            raise self._failed(exc, permit, control) from None
        except GeneratorExit:
            _report(permit, "neutral")  # the consumer stopped reading
            raise
        else:
            _report(permit, "success")
        finally:
            remove()
            close = getattr(events, "close", None)
            if close is not None:
                close()

    # ------------------------------------------------------------ embeddings and images (InvokeModel)
    # `invoke_model(modelId, body=<JSON>, contentType/accept application/json)`, one model family each:
    # - Titan Text Embeddings v2 (`amazon.titan-embed-text-v2:0`): one input per call (catalog
    #   `max_inputs_per_call: 1`; the pipeline runs the calls concurrently) — {inputText, dimensions?,
    #   normalize: true} -> {embedding, inputTextTokenCount}.
    # - Cohere Embed (`cohere.embed-*`): up to 96 texts — {texts, input_type: search_document (model
    #   option `input_type`), embedding_types: ["float"], truncate: "END"} -> {embeddings: {float: [...]}}
    #   (or a plain list); input tokens from the `X-Amzn-Bedrock-Input-Token-Count` header.
    # - Nova Canvas / Titan Image Generator: {taskType: TEXT_IMAGE, textToImageParams: {text,
    #   negativeText?}, imageGenerationConfig: {numberOfImages, width?, height?, seed?}} -> {images: [b64],
    #   error}.

    def _invoke(self, model_id: str, body: dict[str, Any], deadline: Any) -> tuple[dict[str, Any], dict[str, str]]:
        control = _current_control()
        if control is not None:
            control.check()
        remaining = deadline.remaining() if deadline is not None else 60.0
        client = self.client(self._budget_s(remaining))
        permit = self._permit(client)
        try:
            resp = client.invoke_model(modelId=model_id, body=_dumps(body).encode("utf-8"),
                                       contentType="application/json", accept="application/json")
            payload = resp["body"].read()
        except self._transport_errors() as exc:
            raise self._failed(self.translate_exception(exc), permit, control) from None
        try:
            data = json.loads(payload)
        except ValueError:
            raise self._failed(GatewayError("provider_error", f"Provider '{self.provider.id}' returned a body that is not JSON.",
                                            provider=self.provider.id), permit, control) from None
        _report(permit, "success")
        headers = {k.lower(): v for k, v in ((resp.get("ResponseMetadata") or {}).get("HTTPHeaders") or {}).items()}
        return data if isinstance(data, dict) else {"value": data}, headers

    def _budget_s(self, seconds: float) -> float:
        if seconds <= 0:
            raise GatewayError("provider_timeout", f"Provider '{self.provider.id}' had no time left (total budget spent).",
                               provider=self.provider.id, timeout="total")
        return seconds

    def embed(self, call: Any) -> Any:
        from llm_gateway.providers.base import EmbedResult

        model_id = call.model.provider_model
        if model_id.startswith("cohere.embed"):
            body: dict[str, Any] = {"texts": call.inputs, "input_type": call.model.options.get("input_type", "search_document"),
                                    "embedding_types": ["float"], "truncate": "END"}
            data, headers = self._invoke(model_id, body, call.deadline)
            embeddings = data.get("embeddings")
            if isinstance(embeddings, dict):
                embeddings = embeddings.get("float")
            if not isinstance(embeddings, list) or len(embeddings) != len(call.inputs):
                raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned malformed embeddings.", provider=self.provider.id)
            tokens = int(headers.get("x-amzn-bedrock-input-token-count") or 0)
            return EmbedResult(vectors=[[float(v) for v in e] for e in embeddings], usage=TokenUsage(input_tokens=tokens))
        vectors = []
        tokens = 0
        for text in call.inputs:  # Titan takes one text per call
            body = {"inputText": text, "normalize": True}
            if call.dimensions:
                body["dimensions"] = call.dimensions
            data, _ = self._invoke(model_id, body, call.deadline)
            if not isinstance(data.get("embedding"), list):
                raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned no embedding.", provider=self.provider.id)
            vectors.append([float(v) for v in data["embedding"]])
            tokens += int(data.get("inputTextTokenCount") or 0)
        return EmbedResult(vectors=vectors, usage=TokenUsage(input_tokens=tokens))

    def generate_image(self, call: ProviderCall) -> ChatResult:
        from llm_gateway.media.generation import data_url, option, parse_size, prompt_of

        req = call.request
        text_params: dict[str, Any] = {"text": prompt_of(req)}
        if option(req, "negative_prompt"):
            text_params["negativeText"] = option(req, "negative_prompt")
        config: dict[str, Any] = {"numberOfImages": int(option(req, "n", 1))}
        if option(req, "size"):
            config["width"], config["height"] = parse_size(option(req, "size"), (1024, 1024))
        if option(req, "seed") is not None:
            config["seed"] = int(option(req, "seed"))
        if option(req, "quality") in ("standard", "premium"):
            config["quality"] = option(req, "quality")
        body = {"taskType": "TEXT_IMAGE", "textToImageParams": text_params, "imageGenerationConfig": config}
        data, headers = self._invoke(call.model.provider_model, body, call.deadline)
        if data.get("error"):
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' refused the image: {data['error']}", provider=self.provider.id)
        images = [base64.b64decode(b) for b in data.get("images") or () if isinstance(b, str)]
        if not images:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned no image.", provider=self.provider.id)
        from llm_gateway.media.sniff import sniff

        parts = [{"type": "image", "url": data_url(sniff(img) or "image/png", img)} for img in images]
        return ChatResult(content=parts, tool_calls=[], finish_reason="stop", usage=TokenUsage(images=len(parts)),
                          provider_response_id=headers.get("x-amzn-requestid"))

    # ------------------------------------------------------------ circuit breaker and deadlines

    def _permit(self, client: Any) -> Any:
        """A call admitted by the outbound client's circuit breaker for this upstream (when it has
        breakers): botocore does not go through the outbound client, so the adapter asks itself."""
        breakers = getattr(self.http, "breakers", None)
        if breakers is None:
            return None
        return breakers.acquire(self.provider.id, client.meta.endpoint_url)

    def _failed(self, err: GatewayError, permit: Any, control: Any) -> GatewayError:
        """Report the outcome to the breaker and name an abort after its deadline."""
        if control is not None and control.reason is not None:
            _report(permit, "neutral" if control.reason == "cancelled" else "failure")
            return control.error(control.reason)
        status = err.extra.get("provider_status")
        if err.code == "rate_limited":
            _report(permit, "neutral")
        elif err.code == "provider_timeout" or status is None or status >= 500 or status == 408:
            _report(permit, "failure")  # transport failures, timeouts, 5xx: the upstream is unwell
        else:
            _report(permit, "success")  # a 4xx: the upstream is alive, the request was the problem
        return err

    def decode_events(self, chunks: Iterator[bytes]) -> Iterator[dict[str, Any]]:
        """AWS event-stream frames -> `{event type: payload}` dicts, as botocore's EventStream
        yields them for the fields this adapter reads, in a quarter of its time (prelude and
        message CRC32s checked). An exception frame raises the mapped `GatewayError`."""
        pending = b""
        unpack2, unpack1 = _STRUCT_II.unpack_from, _STRUCT_I.unpack_from
        crc32, loads = zlib.crc32, _loads
        header_cache = _HEADER_CACHE  # Bedrock repeats a handful of header blocks, stream after stream
        for chunk in chunks:
            data = pending + chunk if pending else chunk
            view = memoryview(data)
            pos, n = 0, len(data)
            while n - pos >= 16:
                total, hlen = unpack2(data, pos)
                end = pos + total
                if end > n:
                    break
                if total < 16 + hlen or crc32(view[pos : pos + 8]) != unpack1(data, pos + 8)[0] \
                        or crc32(view[pos : end - 4]) != unpack1(data, end - 4)[0]:
                    raise GatewayError("provider_error", f"Provider '{self.provider.id}' sent a corrupt event-stream frame.",
                                       provider=self.provider.id)
                raw_headers = data[pos + 12 : pos + 12 + hlen]
                headers = header_cache.get(raw_headers)
                if headers is None:
                    headers = _frame_headers(raw_headers, 0, hlen)
                    if len(header_cache) < 256:
                        header_cache[raw_headers] = headers
                payload = data[pos + 12 + hlen : end - 4]
                pos = end
                kind = headers.get(":message-type", "event")
                if kind == "event":
                    name = headers.get(":event-type")
                    if name:
                        try:
                            body = loads(payload) if payload else {}
                        except ValueError:
                            raise GatewayError("provider_error", f"Provider '{self.provider.id}' sent a '{name}' event that is not JSON.",
                                               provider=self.provider.id) from None
                        yield {name: body}
                    continue
                if kind == "exception":
                    code = str(headers.get(":exception-type") or "UnknownException")
                    try:
                        body = loads(payload) if payload else {}
                    except ValueError:
                        body = {}
                    message = (body.get("message") or body.get("Message") or "") if isinstance(body, dict) else ""
                    raise self.error_from_code(code, str(message))
                code = str(headers.get(":error-code") or "UnknownError")  # :message-type error
                raise self.error_from_code(code, str(headers.get(":error-message") or ""))
            view.release()
            pending = data[pos:] if pos < n else b""
        if pending:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' ended the stream in the middle of an event.",
                               provider=self.provider.id)

    def parse_stream(self, events: Any, call: ProviderCall) -> Iterator[StreamDelta]:
        """ConverseStream events (dicts as botocore yields them) -> `StreamDelta`s."""
        mode = self._structured_mode(call)
        answer = self.answer_tool_name(call) if mode == "tool" else None
        wrapped = self._answer_schema(call.response_schema or {})[1] if answer else False
        tool_index: dict[int, int] = {}  # contentBlockIndex -> contract tool-call index
        answer_blocks: dict[int, list[str]] = {}  # contentBlockIndex -> buffered answer-tool input
        stop_reason: str | None = None
        stopped = False
        usage: TokenUsage | None = None
        answered = False
        deadline = call.deadline
        for event in events:
            if deadline.remaining() <= 0:
                raise GatewayError("provider_timeout", f"Provider '{self.provider.id}' did not finish in time (total timeout).",
                                   provider=self.provider.id, timeout="total")
            if "contentBlockDelta" in event:
                ev = event["contentBlockDelta"]
                delta = ev.get("delta") or {}
                idx = ev.get("contentBlockIndex", 0)
                if "text" in delta:
                    if delta["text"]:
                        yield StreamDelta(text=delta["text"])
                elif "toolUse" in delta:
                    fragment = (delta["toolUse"] or {}).get("input") or ""
                    if idx in answer_blocks:
                        answer_blocks[idx].append(fragment)
                    elif fragment:
                        if idx not in tool_index:  # a delta without its start event
                            tool_index[idx] = len(tool_index)
                        yield StreamDelta(tool_calls=[{"index": tool_index[idx], "function": {"arguments": fragment}}])
                # reasoningContent / citation deltas are not part of the contract's stream
            elif "contentBlockStart" in event:
                ev = event["contentBlockStart"]
                start = (ev.get("start") or {}).get("toolUse")
                if start is not None:
                    idx = ev.get("contentBlockIndex", 0)
                    if answer is not None and start.get("name") == answer:
                        answer_blocks[idx] = []
                        continue
                    tool_index[idx] = len(tool_index)
                    yield StreamDelta(tool_calls=[{"index": tool_index[idx], "id": start.get("toolUseId", ""),
                                                   "function": {"name": start.get("name", ""), "arguments": ""}}])
            elif "contentBlockStop" in event:
                idx = event["contentBlockStop"].get("contentBlockIndex", 0)
                if idx in answer_blocks:
                    yield StreamDelta(text=self._answer_from_fragments(answer_blocks.pop(idx), wrapped))
                    answered = True
            elif "messageStop" in event:
                stop_reason = event["messageStop"].get("stopReason")
                stopped = True
            elif "metadata" in event:
                usage = self.usage_from(event["metadata"].get("usage"))
            # messageStart carries only the role
        for idx in sorted(answer_blocks):  # an answer block the stream never closed
            yield StreamDelta(text=self._answer_from_fragments(answer_blocks.pop(idx), wrapped))
            answered = True
        if not stopped:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' ended the stream before it was complete.",
                               provider=self.provider.id)
        yield StreamDelta(finish_reason=self._finish(stop_reason, answered and not tool_index), usage=usage or TokenUsage())

    def _answer_from_fragments(self, fragments: list[str], wrapped: bool) -> str:
        raw = "".join(fragments)
        try:
            value = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' streamed a structured answer that is not JSON.",
                               provider=self.provider.id) from None
        return self._answer_text(value, wrapped)


# ---------------------------------------------------------------- helpers (event stream)

def _loads(payload: bytes) -> Any:
    """The compact UTF-8 JSON payload of an event frame (orjson: a few times faster than `json`
    on these small bodies; invalid JSON or trailing data raises ValueError, as json does)."""
    return _orjson_loads(payload)


_STRUCT_II = struct.Struct(">II")
_HEADER_CACHE: dict[bytes, dict[str, Any]] = {}  # raw header block -> parsed headers (read-only once stored)
_STRUCT_I = struct.Struct(">I")
# header value type -> fixed size (types 6 and 7, bytes and string, carry a 2-byte length)
_FIXED_HEADER_SIZE = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}


def _frame_headers(buf: bytes, pos: int, end: int) -> dict[str, Any]:
    """The string-valued headers of one frame (others are skipped; Bedrock sends strings only)."""
    headers: dict[str, Any] = {}
    while pos < end:
        nlen = buf[pos]
        name = buf[pos + 1 : pos + 1 + nlen].decode()
        pos += 1 + nlen
        vtype = buf[pos]
        pos += 1
        if vtype in (6, 7):
            vlen = (buf[pos] << 8) | buf[pos + 1]
            value = buf[pos + 2 : pos + 2 + vlen]
            if vtype == 7:
                headers[name] = value.decode()
            pos += 2 + vlen
        elif vtype in _FIXED_HEADER_SIZE:
            pos += _FIXED_HEADER_SIZE[vtype]
        else:
            break  # unknown type: the rest cannot be located
    return headers


# ---------------------------------------------------------------- helpers (deadline enforcement)


_loader: Any = None


def _shared_loader() -> Any:
    """One botocore data loader per process: it caches the parsed service models, so an adapter
    created later (a new catalog, tests) gets its client in milliseconds, not a fresh JSON load."""
    global _loader
    if _loader is None:
        from botocore.loaders import create_loader

        _loader = create_loader()
    return _loader


def _current_control() -> Any:
    """The attempt's `CallControl` bound by the invoker, if the outbound package provides one."""
    try:
        from llm_gateway.outbound.control import current_control
    except ImportError:  # pragma: no cover - older outbound package
        return None
    return current_control()


def _report(permit: Any, outcome: str) -> None:
    if permit is not None:
        getattr(permit, outcome)()


def _socket_of(events: Any) -> Any:
    """The socket under botocore's EventStream (urllib3 response -> connection -> socket)."""
    raw = getattr(events, "_raw_stream", None)
    conn = getattr(raw, "connection", None) or getattr(raw, "_connection", None)
    return getattr(conn, "sock", None)


def _settimeout(sock: Any, seconds: float) -> None:
    try:
        sock.settimeout(max(0.001, seconds))
    except OSError:
        pass


def _shutdown(sock: Any) -> None:
    """Wake a read blocked on this socket in another thread (the watchdog's abort)."""
    import socket

    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except (OSError, TypeError):
        pass


def _noop() -> None:
    return None
