"""OpenAI Chat Completions adapter (`POST {base_url}/chat/completions`).

Request mapping
- `system` messages → `system` messages (text only; the model option `system_role: "developer"`
  sends them as `developer` messages instead). `user` → `user`: a single string when the
  message is only text, else an array of parts. `assistant` → `assistant` with its text as
  `content` and its `tool_call` parts as `tool_calls` (arguments serialized to a JSON string).
  Every `tool_result` part → its own `tool` message (`tool_call_id`, `content`), placed before
  the rest of the message that carried it, as OpenAI requires.
- Media (user messages only):
  * image → `image_url` part: `http(s)` URLs are passed for OpenAI to fetch; inline bytes (a
    `data:` URL, or what the pipeline fetched into `call.extra["media"][url] =
    {"data": <base64>, "media_type": ...}`) are sent as a base64 `data:` URL (PNG, JPEG, WEBP,
    GIF);
  * audio → `input_audio` part `{data, format: wav|mp3}`, inline bytes only;
  * document → `file` part `{filename, file_data: "data:application/pdf;base64,..."}`, inline
    PDF bytes only (a plain-text document is sent as a text part);
  * video → not accepted.
  Whatever cannot be sent is refused with `capability_not_supported` in `check()`, before any
  call.
- Tools → `{"type": "function", "function": {name, description, parameters}}`; `tool_choice`
  auto/none/required/named → the same / `{"type": "function", "function": {"name"}}`. A named or
  `required` choice without tools is a `validation_error`; `auto`/`none` without tools is omitted.
- Structured output: `response_schema` → `response_format: {"type": "json_schema",
  "json_schema": {name, schema, strict}}`; `strict` is true when the schema already meets
  OpenAI's strict subset (every object closed with `additionalProperties: false` and all its
  properties required, no `allOf`/`not`/`if`/`patternProperties`), so the provider guarantees the
  shape; otherwise false (best effort — the gateway validates the answer either way). The model
  or provider option `strict_schema` (true/false) overrides. Servers without `json_schema` can set
  the option `structured_output: "json_object"`: `response_format: {"type": "json_object"}` plus
  a system instruction carrying the schema. Never silently dropped.
- `max_tokens` → `max_completion_tokens` (OpenAI; `max_tokens` for compatible servers),
  `temperature`, `top_p`, `seed`, `stop` (OpenAI takes at most 4 sequences). The model option
  `unsupported_params` (e.g. `["temperature", "top_p", "stop"]` for reasoning models) turns a
  request using them into `capability_not_supported` instead of a provider 400.

Response mapping: `message.content` → a text part; `refusal` → a text part with finish
`content_filter`; `tool_calls` → tool calls with arguments parsed to objects. `finish_reason`
stop/length/tool_calls/content_filter (legacy `function_call` → tool_calls); a `stop` that came
with tool calls (OpenAI does this for a forced tool) → `tool_calls`. Usage: `prompt_tokens`
(already including cached tokens) → input, `completion_tokens` (already including reasoning
tokens) → output, `prompt_tokens_details.cached_tokens` → cached_input_tokens,
`completion_tokens_details.reasoning_tokens` → reasoning_tokens.

Streaming always sets `stream_options.include_usage`, so the last chunk (empty `choices`) has
exact usage. Text, refusal and tool-call fragments become deltas (a tool call's id and name are
passed once, its argument fragments as they come). A malformed chunk, an `error` object in the
stream, or a stream that ends without `[DONE]` before its usage arrived is a `provider_error`.

Errors: `{"error": {message, type, param, code}}` (and the `{"message"}` / `{"error": "..."}`
shapes some compatible servers use) go through `provider_status_error`, so 429 → rate_limited
(Retry-After, else OpenAI's `x-ratelimit-reset-*` headers), `context_length_exceeded` →
validation_error, 401/403/5xx → provider_error, 408/504 → provider_timeout. A 429
`insufficient_quota` is not a rate limit (retrying does not help): provider_error.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import httpx

from llm_gateway.api.errors import GatewayError
from llm_gateway.outbound.client import provider_status_error
from llm_gateway.outbound.credentials import resolve_credential
from llm_gateway.providers.base import (AudioChunk, ChatResult, Deadline, EmbedCall, EmbedResult, ProviderAdapter, ProviderCall,
                                         StreamDelta, TokenUsage)

DEFAULT_BASE_URL = "https://api.openai.com/v1"

FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
AUDIO_FORMATS = {
    "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/vnd.wave": "wav",
    "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/mpeg3": "mp3",
}
DOCUMENT_TYPES = frozenset({"application/pdf"})
TEXT_DOCUMENT_TYPES = frozenset({"text/plain", "text/markdown", "text/csv"})
_MEDIA_ALIASES = {"image/jpg": "image/jpeg"}

_SCHEMA_NAME = re.compile(r"[^A-Za-z0-9_-]")
_NOT_STRICT = ("allOf", "not", "if", "then", "else", "patternProperties", "dependentRequired", "dependentSchemas",
               "unevaluatedProperties", "propertyNames")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_WIRE_KEY = "_openai_wire"
_FLUSH = ("",)
_raw_decode = json.JSONDecoder().raw_decode  # stream chunks: skips json.loads' argument and whitespace handling


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def inline_media(call: ProviderCall, url: str) -> tuple[str, str] | None:
    """`(media_type, base64)` for a media URL whose bytes are at hand: fetched by the pipeline
    (`call.extra["media"][url]`) or carried by a `data:` URL. None when only the URL is known."""
    media = call.extra.get("media")
    if media:
        item = media.get(url)
        if item and item.get("data"):
            mt = (item.get("media_type") or "").split(";")[0].strip().lower()
            return _MEDIA_ALIASES.get(mt, mt), item["data"]
    if url[:5].lower() == "data:":
        head, sep, payload = url[5:].partition(",")
        if not sep:
            return None
        params = head.split(";")
        mt = params[0].strip().lower() or "text/plain"
        if "base64" in (p.strip().lower() for p in params[1:]):
            data = payload
        else:
            data = base64.b64encode(unquote_to_bytes(payload)).decode("ascii")
        return _MEDIA_ALIASES.get(mt, mt), data
    return None


def strict_compatible(schema: Any) -> bool:
    """Whether a JSON Schema already fits OpenAI's strict Structured Outputs subset."""
    if not isinstance(schema, dict):
        return False
    if any(k in schema for k in _NOT_STRICT):
        return False
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required") or ()) != set(props):
            return False
        if not all(strict_compatible(sub) for sub in props.values()):
            return False
    items = schema.get("items")
    if items is not None and not strict_compatible(items):
        return False
    for key in ("anyOf", "oneOf"):
        if key in schema and not all(strict_compatible(sub) for sub in schema[key]):
            return False
    for key in ("$defs", "definitions"):
        if key in schema and not all(strict_compatible(sub) for sub in schema[key].values()):
            return False
    return True


def _reset_seconds(value: str | None) -> float | None:
    """OpenAI's `x-ratelimit-reset-*` durations (`1s`, `6m0s`, `20ms`, `1h2m3.5s`) in seconds."""
    if not value:
        return None
    total = 0.0
    found = False
    for number, unit in _DURATION.findall(value):
        found = True
        total += float(number) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    return total if found else None


class OpenAIAdapter(ProviderAdapter):
    kind = "openai"
    accepted_parts = frozenset({"text", "image", "audio", "document", "tool_call", "tool_result"})
    max_tokens_field = "max_completion_tokens"
    max_stop: int | None = 4  # OpenAI: "Up to 4 sequences"
    default_base_url: str | None = DEFAULT_BASE_URL

    # ------------------------------------------------------------ options

    def _option(self, call: ProviderCall, name: str, default: Any = None) -> Any:
        """A model option, else the provider option, else the default."""
        value = call.model.options.get(name)
        if value is None:
            value = self.provider.options.get(name)
        return default if value is None else value

    def _unsupported(self, detail: str) -> GatewayError:
        return GatewayError("capability_not_supported", f"Provider '{self.provider.id}' ({self.kind}): {detail}",
                            provider=self.provider.id)

    def _invalid(self, detail: str, path: str) -> GatewayError:
        return GatewayError("validation_error", f"{path}: {detail}", errors=[{"path": path, "message": detail}],
                            provider=self.provider.id)

    # ------------------------------------------------------------ request translation

    def _media_part(self, call: ProviderCall, part: Any, where: str) -> dict[str, Any]:
        kind = part.type
        url = part.url
        inline = inline_media(call, url)
        if kind == "image":
            if inline is None:
                scheme = urlsplit(url).scheme.lower()
                if scheme not in ("http", "https"):
                    raise self._unsupported(
                        f"{where}: image URLs with the '{scheme}:' scheme cannot be fetched by the provider; "
                        "send the image as a data: URL or an https URL.")
                return {"type": "image_url", "image_url": {"url": url}}
            media_type, data = inline
            if media_type not in IMAGE_TYPES:
                raise self._unsupported(f"{where}: image type '{media_type}' is not accepted (PNG, JPEG, WEBP or GIF).")
            return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}
        if inline is None:
            raise self._unsupported(
                f"{where}: {kind} parts need the bytes inline (a data: URL, or media fetched by the gateway); "
                "the provider does not fetch URLs for them.")
        media_type, data = inline
        if kind == "audio":
            fmt = AUDIO_FORMATS.get(media_type)
            if fmt is None:
                raise self._unsupported(f"{where}: audio type '{media_type}' is not accepted (WAV or MP3).")
            return {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}
        # document
        if media_type in TEXT_DOCUMENT_TYPES:
            try:
                return {"type": "text", "text": base64.b64decode(data).decode("utf-8")}
            except (ValueError, UnicodeDecodeError):
                raise self._invalid("the text document is not valid base64-encoded UTF-8", where) from None
        if media_type not in DOCUMENT_TYPES:
            raise self._unsupported(f"{where}: document type '{media_type}' is not accepted (PDF or plain text).")
        item = (call.extra.get("media") or {}).get(url) or {}
        filename = item.get("filename") or self._filename(url)
        return {"type": "file", "file": {"filename": filename, "file_data": f"data:{media_type};base64,{data}"}}

    @staticmethod
    def _filename(url: str) -> str:
        if url[:5].lower() != "data:":
            name = urlsplit(url).path.rsplit("/", 1)[-1]
            if name.lower().endswith(".pdf"):
                return name
        return "document.pdf"

    def _messages(self, call: ProviderCall) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        system_role = self._option(call, "system_role", "system")
        for i, message in enumerate(call.request.messages):
            role = message.role
            texts: list[str] = []
            parts: list[dict[str, Any]] = []
            tool_calls: list[dict[str, Any]] = []
            only_text = True
            for j, part in enumerate(message.content):
                kind = part.type
                if kind == "text":
                    texts.append(part.text)
                    parts.append({"type": "text", "text": part.text})
                elif kind == "tool_result":
                    if role in ("system", "assistant"):
                        raise self._invalid(f"a tool_result part cannot be in a {role} message", f"messages[{i}].content[{j}]")
                    res = part.tool_result
                    out.append({"role": "tool", "tool_call_id": res.tool_call_id, "content": res.content})
                elif kind == "tool_call":
                    if role != "assistant":
                        raise self._invalid("tool_call parts belong in assistant messages", f"messages[{i}].content[{j}]")
                    tc = part.tool_call
                    tool_calls.append({"id": tc.id, "type": "function",
                                       "function": {"name": tc.name, "arguments": _dumps(tc.arguments)}})
                elif kind in ("image", "audio", "document"):
                    where = f"messages[{i}].content[{j}]"
                    if role != "user":
                        raise self._unsupported(f"{where}: {kind} parts are only accepted in user messages.")
                    parts.append(self._media_part(call, part, where))
                    only_text = False
                else:
                    raise self._unsupported(f"messages[{i}].content[{j}]: '{kind}' content parts are not accepted.")
            if role == "user":
                if parts:
                    out.append({"role": "user", "content": "".join(texts) if only_text else parts})
            elif role == "assistant":
                entry: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
                if tool_calls:
                    entry["tool_calls"] = tool_calls
                out.append(entry)
            elif role == "system":
                out.append({"role": system_role, "content": "".join(texts)})
            elif texts:  # text beside tool results in a tool message: keep it, as user context
                out.append({"role": "user", "content": "".join(texts)})
        return out

    def _response_format(self, call: ProviderCall, schema: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
        if self._option(call, "structured_output", "json_schema") == "json_object":
            instruction = ("Respond with a single JSON object (no prose, no code fence) that conforms to this JSON Schema: "
                           + _dumps(schema))
            messages.insert(0, {"role": self._option(call, "system_role", "system"), "content": instruction})
            return {"type": "json_object"}
        title = schema.get("title")
        name = _SCHEMA_NAME.sub("_", title)[:64] if isinstance(title, str) and title.strip() else "response"
        strict = call.extra.get("strict_schema")
        if strict is None:
            strict = self._option(call, "strict_schema")
        if strict is None:
            strict = schema.get("type") == "object" and strict_compatible(schema)
        fmt: dict[str, Any] = {"name": name, "schema": schema, "strict": bool(strict)}
        if isinstance(schema.get("description"), str):
            fmt["description"] = schema["description"]
        return {"type": "json_schema", "json_schema": fmt}

    def build_body(self, call: ProviderCall, *, stream: bool) -> dict[str, Any]:
        """The wire body (also the place every request-side refusal is raised)."""
        req = call.request
        messages = self._messages(call)
        body: dict[str, Any] = {"model": call.model.provider_model, "messages": messages}
        tool_names = None
        if call.tools:
            tools = []
            tool_names = set()
            for t in call.tools:
                fn: dict[str, Any] = {"name": t["name"]}
                if t.get("description"):
                    fn["description"] = t["description"]
                fn["parameters"] = t.get("parameters") or {"type": "object", "properties": {}}
                tools.append({"type": "function", "function": fn})
                tool_names.add(t["name"])
            body["tools"] = tools
        choice = req.tool_choice
        if choice is not None:
            if isinstance(choice, str):
                if tool_names:
                    body["tool_choice"] = choice
                elif choice == "required":
                    raise self._invalid("tool_choice 'required' needs tools", "tool_choice")
            else:
                if not tool_names or choice.name not in tool_names:
                    raise self._invalid(f"tool_choice names '{choice.name}', which is not one of the request's tools", "tool_choice.name")
                body["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        schema = call.response_schema
        if schema is not None:
            body["response_format"] = self._response_format(call, schema, messages)
        if req.max_tokens is not None:
            body[self.max_tokens_field] = req.max_tokens
        if req.temperature is not None:
            body["temperature"] = req.temperature
        if req.top_p is not None:
            body["top_p"] = req.top_p
        if req.seed is not None:
            body["seed"] = req.seed
        if req.stop:
            if self.max_stop is not None and len(req.stop) > self.max_stop:
                raise self._invalid(f"this provider accepts at most {self.max_stop} stop sequences", "stop")
            body["stop"] = req.stop
        unsupported = self._option(call, "unsupported_params")
        if unsupported:
            used = [p for p in unsupported if body.get(p) is not None or (p == "max_tokens" and req.max_tokens is not None)]
            if used:
                raise self._unsupported(f"model '{call.model.id}' does not accept the parameter(s) {', '.join(used)}.")
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def check(self, call: ProviderCall) -> None:
        """Translate once, before any call: every refusal surfaces here; the body is kept for the call."""
        super().check(call)
        call.extra[_WIRE_KEY] = (self.provider.id, call.model.id, self.build_body(call, stream=False))

    def _body(self, call: ProviderCall, *, stream: bool) -> dict[str, Any]:
        kept = call.extra.pop(_WIRE_KEY, None)
        if kept is not None and kept[0] == self.provider.id and kept[1] == call.model.id:
            body = kept[2]
            if stream:
                body = {**body, "stream": True, "stream_options": {"include_usage": True}}
            return body
        return self.build_body(call, stream=stream)

    def headers(self) -> dict[str, str]:
        key = resolve_credential(self.provider.id, self.provider.credential)
        headers = {"Content-Type": "application/json"}
        extra = self.provider.options.get("headers")
        if extra:
            headers.update(extra)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        org = self.provider.options.get("organization")
        if org:
            headers["OpenAI-Organization"] = org
        project = self.provider.options.get("project")
        if project:
            headers["OpenAI-Project"] = project
        return headers

    def _url(self) -> str:
        base = self.provider.base_url or self.default_base_url
        if not base:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' has no base_url in the catalog.",
                               provider=self.provider.id)
        return self.http.url(base, "/chat/completions")

    @staticmethod
    def _timeout(call: ProviderCall) -> httpx.Timeout:
        """Streams: each read must come within the time-to-first-token budget."""
        first = max(0.001, call.deadline.first_token_remaining())
        return httpx.Timeout(first, connect=min(first, 10.0))

    # ------------------------------------------------------------ response translation

    @staticmethod
    def _error_fields(data: Any) -> tuple[str, str | None, str | None, str | None]:
        """(message, type, code, param) from OpenAI's error body or a compatible server's variant."""
        if not isinstance(data, dict):
            return "", None, None, None
        err = data.get("error", data)
        if isinstance(err, str):
            return err, None, None, None
        if not isinstance(err, dict):
            return str(err), None, None, None
        message = err.get("message") or err.get("detail") or ""
        if not isinstance(message, str):
            message = _dumps(message)
        code = err.get("code")
        param = err.get("param")
        return message, err.get("type"), (str(code) if code is not None else None), (str(param) if param else None)

    def raise_for_error(self, resp: httpx.Response) -> None:
        status = resp.status_code
        if status < 400:
            return
        resp.read()
        try:
            message, kind, code, param = self._error_fields(resp.json())
        except ValueError:
            message, kind, code, param = resp.text[:500].strip(), None, None, None
        message = message or resp.reason_phrase or f"HTTP {status}"
        if param and param not in message:
            message = f"{message} (param: {param})"
        pid = self.provider.id
        if code == "insufficient_quota" or kind == "insufficient_quota":
            raise GatewayError("provider_error", f"Provider '{pid}' refused the request: its account quota is exhausted ({message})",
                               provider=pid, provider_status=status)
        if code == "context_length_exceeded" and "context length" not in message.lower():
            message = f"context length exceeded: {message}"
        err = provider_status_error(pid, status, message, resp.headers,
                                    kind="rate_limit" if code == "rate_limit_exceeded" else None)
        if err.code == "rate_limited" and "retry-after" not in resp.headers and "retry-after-ms" not in resp.headers:
            names = ("x-ratelimit-reset-tokens",) if kind == "tokens" else (
                ("x-ratelimit-reset-requests",) if kind == "requests" else ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"))
            resets = [s for s in (_reset_seconds(resp.headers.get(n)) for n in names) if s is not None]
            if resets:
                err.retry_after_s = max(resets)
        raise err

    @staticmethod
    def usage_from(raw: dict[str, Any] | None) -> TokenUsage:
        if not raw:
            return TokenUsage()
        prompt_details = raw.get("prompt_tokens_details") or {}
        completion_details = raw.get("completion_tokens_details") or {}
        cached = prompt_details.get("cached_tokens") or raw.get("prompt_cache_hit_tokens") or 0  # DeepSeek's name
        return TokenUsage(
            input_tokens=raw.get("prompt_tokens") or 0,
            output_tokens=raw.get("completion_tokens") or 0,
            cached_input_tokens=cached,
            reasoning_tokens=completion_details.get("reasoning_tokens") or 0,
        )

    def parse_result(self, data: dict[str, Any]) -> ChatResult:
        pid = self.provider.id
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices:
            if isinstance(data, dict) and data.get("error"):
                message = self._error_fields(data)[0]
                raise GatewayError("provider_error", f"Provider '{pid}' returned an error: {message}", provider=pid)
            raise GatewayError("provider_error", f"Provider '{pid}' returned no choices.", provider=pid)
        choice = choices[0]
        message = choice.get("message") or {}
        content: list[dict[str, Any]] = []
        text = message.get("content")
        if isinstance(text, list):  # some compatible servers answer with parts
            text = "".join(p.get("text") or "" for p in text if isinstance(p, dict) and p.get("type") in ("text", "output_text"))
        if isinstance(text, str) and text:
            content.append({"type": "text", "text": text})
        refusal = message.get("refusal")
        if refusal:
            content.append({"type": "text", "text": refusal})
        tool_calls = []
        for tc in message.get("tool_calls") or ():
            fn = tc.get("function") or {}
            tool_calls.append({"id": tc.get("id") or "", "name": fn.get("name") or "", "arguments": self._arguments(fn.get("arguments"))})
        finish = FINISH.get(choice.get("finish_reason") or "stop", "stop")
        if tool_calls and finish == "stop":
            finish = "tool_calls"
        elif refusal and finish == "stop":
            finish = "content_filter"
        return ChatResult(content=content, tool_calls=tool_calls, finish_reason=finish,
                          usage=self.usage_from(data.get("usage")), provider_response_id=data.get("id"))

    def _arguments(self, raw: Any) -> dict[str, Any]:
        if isinstance(raw, dict):
            return raw
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned tool arguments that are not JSON.",
                               provider=self.provider.id) from None
        return value if isinstance(value, dict) else {"value": value}

    # ------------------------------------------------------------ calls

    def chat(self, call: ProviderCall) -> ChatResult:
        body = self._body(call, stream=False)
        remaining = max(0.001, call.deadline.remaining())
        timeout = httpx.Timeout(remaining, connect=min(10.0, remaining))
        resp = self.http.request(self.provider.id, "POST", self._url(), json=body, headers=self.headers(), timeout=timeout)
        self.raise_for_error(resp)
        try:
            data = resp.json()
        except ValueError:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned a body that is not JSON.",
                               provider=self.provider.id) from None
        return self.parse_result(data)

    def stream(self, call: ProviderCall) -> Iterator[StreamDelta]:
        body = self._body(call, stream=True)
        with self.http.stream(self.provider.id, "POST", self._url(), json=body, headers=self.headers(),
                              timeout=self._timeout(call)) as resp:
            self.raise_for_error(resp)
            yield from self.parse_stream(resp.iter_lines(), call.deadline)

    # ------------------------------------------------------------ embeddings and media (pipeline/embeddings.py, pipeline/modalities.py)
    # - embeddings: `POST /embeddings` {model, input: [...], encoding_format: "base64", dimensions?}; the
    #   base64 float32 vectors are kept as bytes (EmbedResult.raw), so a base64 answer needs no float
    #   round trip; usage `prompt_tokens`.
    # - images: `POST /images/generations` {model, prompt, n, size?, quality?, style?, background?,
    #   output_format?}; `response_format: b64_json` for DALL-E models (gpt-image models always answer
    #   base64); `data[].b64_json` -> image parts; usage tokens (gpt-image) and `images`.
    # - speech: `POST /audio/speech` {model, input, voice, response_format, speed?, instructions?} ->
    #   the audio bytes; streamed with `stream_format: "sse"` (`speech.audio.delta` {audio: base64},
    #   `speech.audio.done` {usage}), or the raw chunked body for models whose option
    #   `stream_format` is "audio" (tts-1). Usage: `characters` (+ tokens when reported).
    # - transcription: `POST /audio/transcriptions` multipart {file, model, response_format: json,
    #   language?, prompt?, temperature?} -> {text, usage: {type: tokens|duration}}.
    # - video (Sora): `POST /videos` multipart {model, prompt, seconds, size?} -> {id, status};
    #   `GET /videos/{id}` until `completed` (`failed` -> provider_error); `GET /videos/{id}/content`
    #   -> the MP4; `DELETE /videos/{id}` cancels. Usage: `seconds`.

    def _api_url(self, path: str) -> str:
        base = self.provider.base_url or self.default_base_url
        if not base:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' has no base_url in the catalog.",
                               provider=self.provider.id)
        return self.http.url(base, path)

    @staticmethod
    def _budget(deadline: Deadline | None, cap: float | None = None) -> httpx.Timeout:
        remaining = max(0.001, deadline.remaining()) if deadline is not None else 60.0
        if cap is not None:
            remaining = min(remaining, cap)
        return httpx.Timeout(remaining, connect=min(10.0, remaining))

    def _form_headers(self) -> dict[str, str]:
        return {k: v for k, v in self.headers().items() if k.lower() != "content-type"}

    def _json_of(self, resp: httpx.Response) -> dict[str, Any]:
        self.raise_for_error(resp)
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned a body that is not a JSON object.",
                               provider=self.provider.id)
        return data

    def _post(self, path: str, body: dict[str, Any], deadline: Deadline | None) -> dict[str, Any]:
        resp = self.http.request(self.provider.id, "POST", self._api_url(path), json=body, headers=self.headers(),
                                 timeout=self._budget(deadline))
        return self._json_of(resp)

    def embed(self, call: EmbedCall) -> EmbedResult:
        body: dict[str, Any] = {"model": call.model.provider_model, "input": call.inputs, "encoding_format": "base64"}
        if call.dimensions:
            body["dimensions"] = call.dimensions
        data = self._post("/embeddings", body, call.deadline)
        items = data.get("data")
        if not isinstance(items, list):
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned no embeddings.", provider=self.provider.id)
        items = sorted(items, key=lambda d: d.get("index", 0))
        raw: list[bytes | str] = []
        vectors: list[list[float]] = []
        size = None
        for item in items:
            emb = item.get("embedding")
            if isinstance(emb, str):  # base64 little-endian float32, as asked: kept as text (checked by length)
                if size is None:
                    size = len(emb)
                if len(emb) != size or size % 4 or (len(emb) - emb.count("=", -2)) * 3 // 4 % 4:
                    raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned an embedding that is not base64 float32.",
                                       provider=self.provider.id)
                raw.append(emb)
            elif isinstance(emb, list):  # a compatible server that ignores encoding_format
                vectors.append([float(v) for v in emb])
            else:
                raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned a malformed embedding.", provider=self.provider.id)
        if vectors and raw:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' mixed embedding encodings.", provider=self.provider.id)
        usage = TokenUsage(input_tokens=int((data.get("usage") or {}).get("prompt_tokens") or 0))
        return EmbedResult(vectors=vectors, usage=usage, raw=raw if not vectors else None)

    def generate_image(self, call: ProviderCall) -> ChatResult:
        from llm_gateway.media.generation import data_url, option, prompt_of

        req = call.request
        model = call.model.provider_model
        body: dict[str, Any] = {"model": model, "prompt": prompt_of(req), "n": int(option(req, "n", 1))}
        for key in ("size", "quality", "style", "background"):
            if option(req, key) is not None:
                body[key] = option(req, key)
        dalle = str(self._option(call, "image_api", "dall-e" if model.startswith("dall-e") else "gpt-image")) == "dall-e"
        if dalle:
            body["response_format"] = "b64_json"
        elif option(req, "format"):
            body["output_format"] = option(req, "format")
        data = self._post("/images/generations", body, call.deadline)
        parts = []
        for item in data.get("data") or ():
            b64 = item.get("b64_json") if isinstance(item, dict) else None
            if not b64:
                raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned an image without b64_json.",
                                   provider=self.provider.id)
            raw = base64.b64decode(b64)
            from llm_gateway.media.sniff import sniff

            parts.append({"type": "image", "url": data_url(sniff(raw) or "image/png", raw)})
        if not parts:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned no image.", provider=self.provider.id)
        u = data.get("usage") or {}
        usage = TokenUsage(input_tokens=int(u.get("input_tokens") or 0), output_tokens=int(u.get("output_tokens") or 0),
                           images=len(parts))
        return ChatResult(content=parts, tool_calls=[], finish_reason="stop", usage=usage, provider_response_id=None)

    def _speech_body(self, call: ProviderCall) -> tuple[dict[str, Any], str, str]:
        from llm_gateway.media.generation import instructions_of, option, prompt_of

        req = call.request
        text = prompt_of(req)
        fmt = str(option(req, "format", self._option(call, "format", "mp3")))
        body: dict[str, Any] = {"model": call.model.provider_model, "input": text,
                                "voice": option(req, "voice", self._option(call, "voice", "alloy")), "response_format": fmt}
        if option(req, "speed") is not None:
            body["speed"] = option(req, "speed")
        instructions = option(req, "instructions") or instructions_of(req)
        if instructions:
            body["instructions"] = instructions
        return body, fmt, text

    def speak(self, call: ProviderCall) -> ChatResult:
        from llm_gateway.media import samples
        from llm_gateway.media.generation import AUDIO_MIME, data_url

        body, fmt, text = self._speech_body(call)
        resp = self.http.request(self.provider.id, "POST", self._api_url("/audio/speech"), json=body, headers=self.headers(),
                                 timeout=self._budget(call.deadline))
        self.raise_for_error(resp)
        audio = resp.content
        if not audio:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned no audio.", provider=self.provider.id)
        seconds = (samples.wav_duration(audio) if fmt == "wav" else None) or 0.0
        usage = TokenUsage(characters=len(text), seconds=seconds)
        return ChatResult(content=[{"type": "audio", "url": data_url(AUDIO_MIME.get(fmt, "audio/mpeg"), audio)}], tool_calls=[],
                          finish_reason="stop", usage=usage)

    def speak_stream(self, call: ProviderCall) -> Iterator[AudioChunk]:
        body, fmt, text = self._speech_body(call)
        sse = self._option(call, "stream_format", "sse") == "sse"
        if sse:
            body["stream_format"] = "sse"
        with self.http.stream(self.provider.id, "POST", self._api_url("/audio/speech"), json=body, headers=self.headers(),
                              timeout=self._timeout_stream(call)) as resp:
            self.raise_for_error(resp)
            if not sse:
                for piece in resp.iter_bytes():
                    if piece:
                        yield AudioChunk(data=piece, format=fmt)
                yield AudioChunk(usage=TokenUsage(characters=len(text)))
                return
            from llm_gateway.providers.sse import iter_sse

            done = False
            for event in iter_sse(resp.iter_lines()):
                try:
                    data = json.loads(event.data)
                except ValueError:
                    raise GatewayError("provider_error", f"Provider '{self.provider.id}' sent a malformed speech event.",
                                       provider=self.provider.id) from None
                kind = data.get("type") or event.event
                if kind == "speech.audio.delta":
                    yield AudioChunk(data=base64.b64decode(data.get("audio") or ""), format=fmt)
                elif kind == "speech.audio.done":
                    u = data.get("usage") or {}
                    done = True
                    yield AudioChunk(usage=TokenUsage(input_tokens=int(u.get("input_tokens") or 0),
                                                      output_tokens=int(u.get("output_tokens") or 0), characters=len(text)))
                elif kind == "error" or "error" in data:
                    raise self._stream_error(data)
            if not done:
                raise GatewayError("provider_error", f"Provider '{self.provider.id}' ended the speech stream early.", provider=self.provider.id)

    def _timeout_stream(self, call: ProviderCall) -> httpx.Timeout:
        return self._timeout(call)

    def transcribe(self, call: ProviderCall) -> ChatResult:
        from llm_gateway.media import samples
        from llm_gateway.media.generation import input_media, option
        from llm_gateway.media.sniff import EXTENSIONS

        items = input_media(call, ("audio",))
        if len(items) != 1:
            raise self._invalid(f"'{call.model.id}' transcribes one audio part per request; got {len(items)}", "messages")
        audio = items[0]
        req = call.request
        form: dict[str, Any] = {"model": call.model.provider_model, "response_format": "json"}
        for key in ("language", "prompt", "temperature"):
            if option(req, key) is not None:
                form[key] = str(option(req, key))
        files = {"file": (f"audio.{EXTENSIONS.get(audio.media_type, 'bin')}", audio.data, audio.media_type or "application/octet-stream")}
        resp = self.http.request(self.provider.id, "POST", self._api_url("/audio/transcriptions"), data=form, files=files,
                                 headers=self._form_headers(), timeout=self._budget(call.deadline))
        data = self._json_of(resp)
        text = data.get("text")
        if not isinstance(text, str):
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned no transcript.", provider=self.provider.id)
        u = data.get("usage") or {}
        seconds = float(u.get("seconds") or data.get("duration") or 0.0) or (samples.wav_duration(audio.data) or 0.0)
        usage = TokenUsage(input_tokens=int(u.get("input_tokens") or 0), output_tokens=int(u.get("output_tokens") or 0), seconds=seconds)
        return ChatResult(content=[{"type": "text", "text": text}], tool_calls=[], finish_reason="stop", usage=usage)

    def start_async(self, call: ProviderCall) -> dict[str, Any]:
        from llm_gateway.media.generation import option, prompt_of

        req = call.request
        seconds = int(option(req, "duration", self._option(call, "duration", 4)))
        fields: list[tuple[str, tuple[None, str]]] = [("model", (None, call.model.provider_model)), ("prompt", (None, prompt_of(req))),
                                                       ("seconds", (None, str(seconds)))]
        if option(req, "size"):
            fields.append(("size", (None, str(option(req, "size")))))
        resp = self.http.request(self.provider.id, "POST", self._api_url("/videos"), files=fields, headers=self._form_headers(),
                                 timeout=self._budget(call.deadline, 60.0))
        data = self._json_of(resp)
        if not data.get("id"):
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned no video id.", provider=self.provider.id)
        return {"video_id": data["id"], "seconds": float(data.get("seconds") or seconds)}

    def poll_async(self, call: ProviderCall, handle: dict[str, Any]) -> tuple[bool, ChatResult | None]:
        from llm_gateway.media.generation import data_url

        vid = handle["video_id"]
        resp = self.http.request(self.provider.id, "GET", self._api_url(f"/videos/{vid}"), headers=self.headers(),
                                 timeout=self._budget(call.deadline, 30.0))
        data = self._json_of(resp)
        status = data.get("status")
        handle["progress"] = data.get("progress")
        if status in ("queued", "in_progress"):
            return False, None
        if status != "completed":
            message = ((data.get("error") or {}).get("message")) or f"status {status}"
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' failed the video: {message}", provider=self.provider.id)
        content = self.http.request(self.provider.id, "GET", self._api_url(f"/videos/{vid}/content"), headers=self.headers(),
                                    timeout=self._budget(call.deadline, 120.0))
        self.raise_for_error(content)
        seconds = float(data.get("seconds") or handle.get("seconds") or 0.0)
        return True, ChatResult(content=[{"type": "video", "url": data_url("video/mp4", content.content)}], tool_calls=[],
                                finish_reason="stop", usage=TokenUsage(seconds=seconds), provider_response_id=vid)

    def cancel_async(self, call: ProviderCall, handle: dict[str, Any]) -> None:
        try:
            self.http.request(self.provider.id, "DELETE", self._api_url(f"/videos/{handle['video_id']}"), headers=self.headers(),
                              timeout=10.0)
        except GatewayError:
            pass

    def _stream_error(self, data: Any) -> GatewayError:
        message = self._error_fields(data)[0] or "unknown error"
        return GatewayError("provider_error", f"Provider '{self.provider.id}' failed mid-stream: {message}",
                            provider=self.provider.id)

    def parse_stream(self, lines: Iterable[str], deadline: Deadline | None = None) -> Iterator[StreamDelta]:
        pid = self.provider.id
        finish: str | None = None
        usage: TokenUsage | None = None
        done = False
        saw_tool_call = False
        announced: set[int] = set()  # tool-call indexes whose id/name were already passed on
        name = ""
        buf: list[str] = []
        # SSE framing inline (the per-chunk hot path): `data:` lines accumulate, a blank line
        # dispatches, `event:` names the event, `:` lines are comments; a final blank flushes.
        for line in chain(lines, _FLUSH):
            if line[:6] == "data: ":
                buf.append(line[6:])
                continue
            if line:
                if line[0] != ":":
                    field, _, value = line.partition(":")
                    if value[:1] == " ":
                        value = value[1:]
                    if field == "data":
                        buf.append(value)
                    elif field == "event":
                        name = value
                continue
            if not buf:
                name = ""
                continue
            raw = buf[0] if len(buf) == 1 else "\n".join(buf)
            buf.clear()
            event_name, name = name, ""
            if raw == "[DONE]":
                done = True
                break
            if deadline is not None and deadline.remaining() <= 0:
                raise GatewayError("provider_timeout", f"Provider '{pid}' did not finish the stream within the total timeout.",
                                   provider=pid, timeout="total")
            try:
                data, end = _raw_decode(raw)
            except ValueError:
                try:
                    data, end = json.loads(raw), len(raw)
                except ValueError:
                    data, end = None, 0
            if not isinstance(data, dict) or (end != len(raw) and raw[end:].strip()):
                raise GatewayError("provider_error", f"Provider '{pid}' sent a malformed stream chunk.", provider=pid)
            if event_name == "error" or ("error" in data and not data.get("choices")):
                raise self._stream_error(data)
            raw_usage = data.get("usage")
            if raw_usage:
                usage = self.usage_from(raw_usage)
            for choice in data.get("choices") or ():
                if choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta") or {}
                text = delta.get("content")
                refusal = delta.get("refusal")
                if refusal:
                    text = (text or "") + refusal
                    if finish is None:
                        finish = "content_filter"
                tcs = delta.get("tool_calls")
                out_tcs = None
                if tcs:
                    saw_tool_call = True
                    out_tcs = []
                    for pos, tc in enumerate(tcs):
                        index = tc.get("index", pos)
                        item: dict[str, Any] = {"index": index}
                        fn = tc.get("function") or {}
                        f: dict[str, str] = {}
                        if index not in announced:
                            if tc.get("id"):
                                item["id"] = tc["id"]
                            if fn.get("name"):
                                f["name"] = fn["name"]
                            if "id" in item or "name" in f:
                                announced.add(index)
                        args = fn.get("arguments")
                        if args:
                            f["arguments"] = args if isinstance(args, str) else _dumps(args)
                        if f:
                            item["function"] = f
                        if len(item) > 1:
                            out_tcs.append(item)
                    out_tcs = out_tcs or None
                if text or out_tcs:
                    yield StreamDelta(text=text or None, tool_calls=out_tcs)
                reason = choice.get("finish_reason")
                if reason:
                    mapped = FINISH.get(reason, "stop")
                    finish = "content_filter" if finish == "content_filter" and mapped == "stop" else mapped
        if not done and (finish is None or usage is None):
            raise GatewayError("provider_error", f"Provider '{pid}' ended the stream before it was complete (no [DONE]).",
                               provider=pid)
        finish = finish or "stop"
        if saw_tool_call and finish == "stop":
            finish = "tool_calls"
        yield StreamDelta(finish_reason=finish, usage=usage or TokenUsage())
