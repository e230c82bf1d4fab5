"""Anthropic Messages API adapter (`POST {base_url}/v1/messages`).

Request mapping
- `system` messages become the top-level `system` string (text only); the rest become
  alternating `user` / `assistant` turns: consecutive same-role messages are merged, `tool`
  messages become `user` turns of `tool_result` blocks (placed first, as Anthropic requires),
  assistant `tool_call` parts become `tool_use` blocks (arguments as objects).
- Images and PDFs: a `url` source, or a `base64` source when the pipeline fetched the media
  inline (`call.extra["media"][url] = {"data": <b64>, "media_type": ...}`); `data:` URLs are
  sent as base64; plain-text documents as a `text` source. Audio and video are refused
  (`capability_not_supported`) before any call.
- Tools → `{name, description, input_schema}`; `tool_choice` auto/required/none/named →
  `{type: auto|any|none|tool}`.
- `max_tokens` is required by Anthropic: the request's, else the model option
  `default_max_tokens`, else `min(limits.max_output_tokens, 4096)`.
- `temperature` (Anthropic accepts 0..1; above is a `validation_error`), `top_p`,
  `stop` → `stop_sequences`. `seed` has no Anthropic equivalent and is not sent.
- Structured output (`response_schema`), chosen by the model (or provider) option
  `structured_output`:
  * `"native"` (default): `output_config.format = {type: json_schema, schema}` (GA); the
    schema is first narrowed to what Anthropic's constrained decoding accepts (objects get
    `additionalProperties: false`; numeric/length constraints and unknown string formats move
    into the description) — the gateway still validates the answer against the original;
  * `"beta"`: the same as the pre-GA `output_format` with
    `anthropic-beta: structured-outputs-2025-11-13`;
  * `"tool"`: a forced tool whose `input_schema` is the response schema (non-object schemas
    wrapped in `{"value": ...}`); its input becomes the answer's JSON text.
  Never silently dropped.

Response mapping: text blocks → one text part; `tool_use` → tool calls; `stop_reason`
end_turn/stop_sequence/pause_turn → stop, max_tokens/model_context_window_exceeded → length,
tool_use → tool_calls, refusal → content_filter. Usage is normalized so `input_tokens`
includes cache reads and cache writes (`cached_input_tokens` = cache_read_input_tokens,
`cache_write_tokens` = cache_creation_input_tokens).

Streaming parses `message_start` (usage), `content_block_start` / `_delta` (`text_delta`,
`input_json_delta`) / `_stop`, `message_delta` (stop_reason, cumulative usage),
`message_stop`, `ping` and `error` events; the last delta carries finish reason and exact usage.
Errors `{"type":"error","error":{"type","message"}}` go through `provider_status_error`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx

from llm_gateway.api.errors import GatewayError, redact
from llm_gateway.outbound.client import provider_status_error
from llm_gateway.outbound.credentials import resolve_credential
from llm_gateway.providers.base import ChatResult, ProviderAdapter, ProviderCall, StreamDelta, TokenUsage

API_VERSION = "2023-06-01"
STRUCTURED_OUTPUTS_BETA = "structured-outputs-2025-11-13"
DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS_CAP = 4096
RESPONSE_TOOL = "json_response"

STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic error type -> the HTTP status it documents (used for errors inside a 200 stream)
ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
_SUPPORTED_FORMATS = frozenset({"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"})
_DROPPED_CONSTRAINTS = {
    "minimum": "Must be at least {}.",
    "maximum": "Must be at most {}.",
    "exclusiveMinimum": "Must be greater than {}.",
    "exclusiveMaximum": "Must be less than {}.",
    "multipleOf": "Must be a multiple of {}.",
    "minLength": "Must be at least {} characters long.",
    "maxLength": "Must be at most {} characters long.",
    "maxItems": "Must have at most {} items.",
    "uniqueItems": "Items must be unique ({}).",
    "minProperties": "Must have at least {} properties.",
    "maxProperties": "Must have at most {} properties.",
}


_raw_decode = json.JSONDecoder().raw_decode  # stream events: skips json.loads' argument checks


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def native_schema(schema: Any) -> Any:
    """A JSON Schema narrowed to what Anthropic's constrained decoding accepts.

    Objects get `additionalProperties: false`; constraints it rejects (numeric bounds, string
    lengths, `minItems` > 1, unsupported string formats…) are removed and restated in the
    description, as Anthropic's own SDKs do. The answer is still checked against the original.
    """
    if isinstance(schema, list):
        return [native_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in schema.items():
        if key in _DROPPED_CONSTRAINTS:
            notes.append(_DROPPED_CONSTRAINTS[key].format(json.dumps(value)))
        elif key == "minItems" and isinstance(value, int) and value > 1:
            notes.append(f"Must have at least {value} items.")
            out[key] = 1
        elif key == "format" and value not in _SUPPORTED_FORMATS:
            notes.append(f"Format: {value}.")
        elif key in ("properties", "$defs", "definitions", "patternProperties") and isinstance(value, dict):
            out[key] = {name: native_schema(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf", "allOf", "oneOf", "prefixItems", "not"):
            out[key] = native_schema(value)
        elif key == "additionalProperties":
            continue
        else:
            out[key] = value
    kind = out.get("type")
    if kind == "object" or (isinstance(kind, list) and "object" in kind) or (kind is None and "properties" in out):
        out["additionalProperties"] = False
        out.pop("patternProperties", None)
    if "oneOf" in out and "anyOf" not in out:  # oneOf is not supported; anyOf is the closest
        out["anyOf"] = out.pop("oneOf")
    if notes:
        desc = out.get("description")
        out["description"] = (desc + " " if desc else "") + " ".join(notes)
    return out


def _parse_data_url(url: str) -> tuple[str, str] | None:
    """(media_type, base64 data) of a `data:<type>;base64,<data>` URL."""
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        return None
    return head[: -len(";base64")] or "application/octet-stream", data


class AnthropicAdapter(ProviderAdapter):
    kind = "anthropic"
    accepted_parts = frozenset({"text", "image", "document", "tool_call", "tool_result"})

    # ------------------------------------------------------------ checks

    def check(self, call: ProviderCall) -> None:
        super().check(call)
        req = call.request
        pid = self.provider.id
        if req.temperature is not None and req.temperature > 1:
            raise GatewayError(
                "validation_error",
                f"Provider '{pid}' (anthropic) accepts temperature between 0 and 1; got {req.temperature}.",
                errors=[{"path": "temperature", "message": "must be between 0 and 1 for Anthropic models"}],
                provider=pid,
            )
        for i, message in enumerate(req.messages):
            for j, part in enumerate(message.content):
                kind = part.type
                if message.role == "system" and kind != "text":
                    raise GatewayError(
                        "capability_not_supported",
                        f"Provider '{pid}' (anthropic) takes only text in system messages; messages[{i}].content[{j}] is '{kind}'.",
                        provider=pid,
                    )
                if message.role == "assistant" and kind in ("image", "document"):
                    raise GatewayError(
                        "capability_not_supported",
                        f"Provider '{pid}' (anthropic) does not accept '{kind}' parts in assistant messages (messages[{i}].content[{j}]).",
                        provider=pid,
                    )

    # ------------------------------------------------------------ request translation

    def _media_source(self, call: ProviderCall, url: str, kind: str) -> dict[str, Any]:
        inline = call.extra.get("media", {}).get(url) if call.extra else None
        if isinstance(inline, dict) and inline.get("data") is not None:
            media_type = inline.get("media_type") or ("application/pdf" if kind == "document" else "image/png")
            data = inline["data"]
        else:
            target = inline if isinstance(inline, str) else url
            if target.startswith("data:"):
                parsed = _parse_data_url(target)
                if parsed is None:
                    raise GatewayError("validation_error", f"A {kind} data: URL must be base64-encoded for provider '{self.provider.id}'.",
                                       provider=self.provider.id)
                media_type, data = parsed
            elif target.startswith(("https://", "http://")):
                return {"type": "url", "url": target}
            else:
                scheme = target.partition(":")[0]
                raise GatewayError(
                    "capability_not_supported",
                    f"Provider '{self.provider.id}' (anthropic) cannot fetch '{scheme}:' {kind} URLs and the gateway did not inline it.",
                    provider=self.provider.id,
                )
        if isinstance(data, (bytes, bytearray)):
            data = base64.b64encode(data).decode("ascii")
        if kind == "document":
            if media_type == "text/plain":
                text = base64.b64decode(data).decode("utf-8", errors="replace")
                return {"type": "text", "media_type": "text/plain", "data": text}
            if media_type != "application/pdf":
                raise GatewayError("capability_not_supported",
                                   f"Provider '{self.provider.id}' (anthropic) accepts PDF or plain-text documents, not '{media_type}'.",
                                   provider=self.provider.id)
        elif media_type not in _IMAGE_TYPES:
            raise GatewayError("capability_not_supported",
                               f"Provider '{self.provider.id}' (anthropic) accepts JPEG, PNG, GIF or WebP images, not '{media_type}'.",
                               provider=self.provider.id)
        return {"type": "base64", "media_type": media_type, "data": data}

    def _messages(self, call: ProviderCall) -> tuple[str | None, list[dict[str, Any]]]:
        system: list[str] = []
        out: list[dict[str, Any]] = []
        for message in call.request.messages:
            role = message.role
            if role == "system":
                system.extend(p.text for p in message.content if p.text)
                continue
            target = "assistant" if role == "assistant" else "user"
            blocks: list[dict[str, Any]] = []
            for part in message.content:
                kind = part.type
                if kind == "text":
                    if part.text:
                        blocks.append({"type": "text", "text": part.text})
                elif kind == "tool_result":
                    tr = part.tool_result
                    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tr.tool_call_id}
                    if tr.content:
                        block["content"] = tr.content
                    blocks.append(block)
                elif kind == "tool_call":
                    tc = part.tool_call
                    blocks.append({"type": "tool_use", "id": tc.id, "name": tc.name, "input": tc.arguments})
                elif kind == "image":
                    blocks.append({"type": "image", "source": self._media_source(call, part.url, "image")})
                elif kind == "document":
                    blocks.append({"type": "document", "source": self._media_source(call, part.url, "document")})
            if not blocks:
                continue
            if out and out[-1]["role"] == target:
                out[-1]["content"].extend(blocks)
            else:
                out.append({"role": target, "content": blocks})
        for msg in out:
            content = msg["content"]
            if msg["role"] == "user" and len(content) > 1:
                # tool_result blocks must come first in the user turn that answers tool_use
                results = [b for b in content if b["type"] == "tool_result"]
                if results and len(results) != len(content):
                    msg["content"] = results + [b for b in content if b["type"] != "tool_result"]
        if out and out[-1]["role"] == "assistant":
            last = out[-1]["content"][-1]
            if last["type"] == "text":  # a final assistant turn (prefill) may not end in whitespace
                stripped = last["text"].rstrip()
                if stripped:
                    last["text"] = stripped
                else:
                    out[-1]["content"].pop()
                    if not out[-1]["content"]:
                        out.pop()
        return ("\n\n".join(system) if system else None), out

    def structured_mode(self, call: ProviderCall) -> str:
        mode = call.model.options.get("structured_output") or self.provider.options.get("structured_output") or "native"
        return mode if mode in ("native", "beta", "tool") else "native"

    def max_tokens(self, call: ProviderCall) -> int:
        if call.request.max_tokens is not None:
            return call.request.max_tokens
        configured = call.model.options.get("default_max_tokens")
        if configured:
            return int(configured)
        limit = call.model.limits.get("max_output_tokens")
        return min(int(limit), DEFAULT_MAX_TOKENS_CAP) if limit else DEFAULT_MAX_TOKENS_CAP

    def build_body(self, call: ProviderCall, *, stream: bool) -> dict[str, Any]:
        req = call.request
        system, messages = self._messages(call)
        if not messages:
            raise GatewayError("validation_error", f"Provider '{self.provider.id}' (anthropic) needs at least one non-empty user or assistant message.",
                               errors=[{"path": "messages", "message": "no user or assistant content"}], provider=self.provider.id)
        body: dict[str, Any] = {"model": call.model.provider_model, "max_tokens": self.max_tokens(call), "messages": messages}
        if system:
            body["system"] = system
        tools = [
            {"name": t["name"], "description": t.get("description") or "",
             "input_schema": t.get("parameters") or {"type": "object", "properties": {}}}
            for t in call.tools
        ]
        choice: dict[str, Any] | None = None
        rc = req.tool_choice
        if tools and rc is not None:
            if isinstance(rc, str):
                choice = {"type": {"auto": "auto", "required": "any", "none": "none"}[rc]}
            else:
                choice = {"type": "tool", "name": rc.name}
        schema = call.response_schema
        if schema is not None:
            mode = self.structured_mode(call)
            if mode == "tool":
                if any(t["name"] == RESPONSE_TOOL for t in tools):
                    raise GatewayError("validation_error", f"The tool name '{RESPONSE_TOOL}' is reserved for structured output on provider '{self.provider.id}'.",
                                       provider=self.provider.id)
                wrapped = _wrap_schema(schema)
                if not tools or (choice is not None and choice["type"] == "none"):
                    choice = {"type": "tool", "name": RESPONSE_TOOL}  # only the answer tool may be used
                elif choice is None or choice["type"] == "auto":
                    choice = {"type": "any"}  # a user tool or the answer tool, never free text
                # "any" and a named tool stay as the caller asked
                tools.append({"name": RESPONSE_TOOL, "description": "Give the final answer as JSON matching this schema.",
                              "input_schema": wrapped if wrapped is not None else schema})
            else:
                fmt = {"type": "json_schema", "schema": native_schema(schema)}
                if mode == "beta":
                    body["output_format"] = fmt
                else:
                    body["output_config"] = {"format": fmt}
        if tools:
            body["tools"] = tools
        if choice is not None:
            body["tool_choice"] = choice
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.top_p is not None:
            body["top_p"] = req.top_p
        if req.stop:
            body["stop_sequences"] = req.stop
        if stream:
            body["stream"] = True
        return body

    def headers(self, call: ProviderCall | None = None) -> dict[str, str]:
        key = resolve_credential(self.provider.id, self.provider.credential)
        headers = {"content-type": "application/json", "anthropic-version": self.provider.options.get("anthropic_version", API_VERSION)}
        if key:
            headers["x-api-key"] = key
        betas = list(self.provider.options.get("beta") or ())
        if call is not None and call.response_schema is not None and self.structured_mode(call) == "beta":
            betas.append(STRUCTURED_OUTPUTS_BETA)
        if betas:
            headers["anthropic-beta"] = ",".join(betas)
        return headers

    def _url(self) -> str:
        return self.http.url(self.provider.base_url or DEFAULT_BASE_URL, "/v1/messages")

    # ------------------------------------------------------------ response translation

    def _error(self, status: int, message: str, headers: httpx.Headers | None, kind: str | None) -> GatewayError:
        if kind == "overloaded_error" and "overloaded" not in message.lower():
            message = f"overloaded: {message}"
        return provider_status_error(self.provider.id, status, message, headers,
                                     kind="rate_limit" if kind == "rate_limit_error" else None)

    def _stream_error(self, err: dict[str, Any]) -> GatewayError:
        """An `error` event after the stream began (e.g. `overloaded_error`): the HTTP status was 200."""
        pid = self.provider.id
        etype = err.get("type") or "error"
        detail = f"Provider '{pid}' failed mid-stream ({etype}): {redact(str(err.get('message') or ''))[:1000]}"
        if etype == "rate_limit_error":
            return GatewayError("rate_limited", detail, provider=pid, retry_after_s=1.0, provider_status=429)
        return GatewayError("provider_error", detail, provider=pid, provider_status=ERROR_STATUS.get(etype, 502))

    def raise_for_error(self, resp: httpx.Response) -> None:
        if resp.status_code < 400:
            return
        kind = None
        try:
            resp.read()
            err = resp.json().get("error") or {}
            message = err.get("message") if isinstance(err, dict) else str(err)
            kind = err.get("type") if isinstance(err, dict) else None
        except (ValueError, AttributeError):
            message = resp.text[:500]
        raise self._error(resp.status_code, message or resp.reason_phrase, resp.headers, kind)

    @staticmethod
    def usage_from(raw: dict[str, Any] | None) -> TokenUsage:
        if not raw:
            return TokenUsage()
        read = raw.get("cache_read_input_tokens") or 0
        written = raw.get("cache_creation_input_tokens") or 0
        return TokenUsage(
            input_tokens=(raw.get("input_tokens") or 0) + read + written,
            output_tokens=raw.get("output_tokens") or 0,
            cached_input_tokens=read,
            cache_write_tokens=written,
        )

    def parse_result(self, data: dict[str, Any], call: ProviderCall | None = None) -> ChatResult:
        if data.get("type") == "error":
            err = data.get("error") or {}
            kind = err.get("type")
            raise self._error(ERROR_STATUS.get(kind, 502), err.get("message", ""), None, kind)
        texts: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        answered = False
        wrapped = call is not None and call.response_schema is not None and _wrap_schema(call.response_schema) is not None
        for block in data.get("content") or ():
            kind = block.get("type")
            if kind == "text":
                texts.append(block.get("text") or "")
            elif kind == "tool_use":
                args = block.get("input")
                if not isinstance(args, dict):
                    args = {} if args is None else {"value": args}
                if block.get("name") == RESPONSE_TOOL and call is not None and call.response_schema is not None \
                        and self.structured_mode(call) == "tool":
                    texts.append(_dumps(args.get("value") if wrapped else args))
                    answered = True
                    continue
                tool_calls.append({"id": block.get("id", ""), "name": block.get("name", ""), "arguments": args})
        text = "".join(texts)
        content = [{"type": "text", "text": text}] if text else []
        finish = STOP.get(data.get("stop_reason") or "end_turn", "stop")
        if finish == "tool_calls" and answered and not tool_calls:
            finish = "stop"
        return ChatResult(content=content, tool_calls=tool_calls, finish_reason=finish,
                          usage=self.usage_from(data.get("usage")), provider_response_id=data.get("id"))

    # ------------------------------------------------------------ calls

    def chat(self, call: ProviderCall) -> ChatResult:
        body = self.build_body(call, stream=False)
        remaining = max(0.001, call.deadline.remaining())
        timeout = httpx.Timeout(remaining, connect=min(10.0, remaining))
        resp = self.http.request(self.provider.id, "POST", self._url(), json=body, headers=self.headers(call), timeout=timeout)
        self.raise_for_error(resp)
        try:
            data = resp.json()
        except ValueError:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned a body that is not JSON.", provider=self.provider.id) from None
        return self.parse_result(data, call)

    def stream(self, call: ProviderCall) -> Iterator[StreamDelta]:
        body = self.build_body(call, stream=True)
        first = max(0.001, call.deadline.first_token_remaining())
        timeout = httpx.Timeout(first, connect=min(first, 10.0))
        with self.http.stream(self.provider.id, "POST", self._url(), json=body, headers=self.headers(call), timeout=timeout) as resp:
            self.raise_for_error(resp)
            yield from self.parse_stream(resp.iter_lines(), call)

    def parse_stream(self, lines: Any, call: ProviderCall | None = None) -> Iterator[StreamDelta]:
        """Anthropic SSE lines -> StreamDeltas. Dispatches on each event's JSON `type` (the
        `event:` line repeats it), so only `data:` lines are decoded."""
        pid = self.provider.id
        tool_mode = call is not None and call.response_schema is not None and self.structured_mode(call) == "tool"
        wrapped = tool_mode and _wrap_schema(call.response_schema) is not None  # type: ignore[union-attr]
        raw_usage: dict[str, Any] = {}
        stop_reason: str | None = None
        # content block index -> [tool ordinal or -1 for the response tool, fragments seen]
        blocks: dict[int, list[Any]] = {}
        answer: list[str] = []
        answered = False
        n_tools = 0
        done = False
        loads = json.loads
        deadline = call.deadline if call is not None else None
        for line in lines:
            if line[:6] == "data: ":
                raw = line[6:]
            elif line[:5] == "data:":
                raw = line[5:].lstrip()
            else:
                continue  # `event:` names repeat the JSON `type`; blank lines and comments carry nothing
            if deadline is not None and deadline.remaining() <= 0:  # a provider trickling events never trips socket timeouts
                raise GatewayError("provider_timeout", f"Provider '{pid}' did not finish the stream within the total timeout.",
                                   provider=pid, timeout="total")
            try:
                data, end = _raw_decode(raw)
                if end != len(raw) and raw[end:].strip():
                    raise ValueError(raw)
                kind = data.get("type")
            except (ValueError, AttributeError):
                raise GatewayError("provider_error", f"Provider '{pid}' sent a malformed stream event.", provider=pid) from None
            if kind == "content_block_delta":
                delta = data.get("delta") or {}
                dkind = delta.get("type")
                if dkind == "text_delta":
                    text = delta.get("text")
                    if text:
                        yield StreamDelta(text=text)
                elif dkind == "input_json_delta":
                    fragment = delta.get("partial_json")
                    if fragment:
                        state = blocks.get(data.get("index", 0))
                        if state is None:
                            continue
                        state[1] += 1
                        if state[0] < 0:
                            answer.append(fragment)
                        else:
                            yield StreamDelta(tool_calls=[{"index": state[0], "function": {"arguments": fragment}}])
                # thinking / signature / citations deltas carry nothing the contract streams
            elif kind == "content_block_start":
                block = data.get("content_block") or {}
                if block.get("type") == "tool_use":
                    index = data.get("index", 0)
                    if tool_mode and block.get("name") == RESPONSE_TOOL:
                        blocks[index] = [-1, 0]
                        continue
                    blocks[index] = [n_tools, 0]
                    yield StreamDelta(tool_calls=[{"index": n_tools, "id": block.get("id", ""),
                                                   "function": {"name": block.get("name", ""), "arguments": ""}}])
                    n_tools += 1
                elif block.get("type") == "text" and block.get("text"):
                    yield StreamDelta(text=block["text"])
            elif kind == "content_block_stop":
                state = blocks.pop(data.get("index", 0), None)
                if state is None:
                    continue
                if state[0] < 0:
                    raw = "".join(answer)
                    answer.clear()
                    try:
                        value = loads(raw) if raw else {}
                    except ValueError:
                        raise GatewayError("provider_error", f"Provider '{pid}' streamed a structured answer that is not JSON.", provider=pid) from None
                    if wrapped and isinstance(value, dict):
                        value = value.get("value")
                    answered = True
                    yield StreamDelta(text=_dumps(value))
                elif state[1] == 0:  # a call without arguments: still a JSON object
                    yield StreamDelta(tool_calls=[{"index": state[0], "function": {"arguments": "{}"}}])
            elif kind == "message_delta":
                stop_reason = (data.get("delta") or {}).get("stop_reason") or stop_reason
                usage = data.get("usage")
                if usage:
                    raw_usage.update((k, v) for k, v in usage.items() if v is not None)
            elif kind == "message_start":
                message = data.get("message") or {}
                usage = message.get("usage")
                if usage:
                    raw_usage.update((k, v) for k, v in usage.items() if v is not None)
            elif kind == "message_stop":
                done = True
                break
            elif kind == "error":
                raise self._stream_error(data.get("error") or {})
            # ping and unknown events: ignored
        if not done:
            raise GatewayError("provider_error", f"Provider '{pid}' ended the stream before it was complete.", provider=pid)
        finish = STOP.get(stop_reason or "end_turn", "stop")
        if finish == "tool_calls" and answered and n_tools == 0:
            finish = "stop"
        yield StreamDelta(finish_reason=finish, usage=self.usage_from(raw_usage))


def _wrap_schema(schema: dict[str, Any]) -> dict[str, Any] | None:
    """For tool-mode structured output: a tool input must be an object; wrap anything else."""
    kind = schema.get("type")
    if kind == "object" or (kind is None and "properties" in schema):
        return None
    return {"type": "object", "properties": {"value": schema}, "required": ["value"]}
