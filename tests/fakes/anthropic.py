"""A fake Anthropic Messages API (`POST /v1/messages`) speaking Anthropic's published wire format.

It answers a provider-neutral `Script` buffered (a `message` object) or streamed (`message_start`,
`content_block_start` / `content_block_delta` (`text_delta`, `input_json_delta`) /
`content_block_stop`, `message_delta`, `message_stop`, with `ping`s in between), produces each
error class of `ERROR_CLASSES` with Anthropic's status and `{"type":"error","error":{...}}` body,
and can fail mid-stream with an `event: error`.

Every request is checked the way the real API checks it — `x-api-key`, `anthropic-version`,
JSON content type, required `max_tokens`, alternating user/assistant turns, `tool_result` blocks
first and answering the previous turn's `tool_use` ids, block and source shapes, `tool_choice`,
temperature range, no unknown top-level fields. A bad request gets a 400
`invalid_request_error` like Anthropic's and is listed in `violations` so tests can assert none.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tests.fakes.script import Script
from tests.fakes.server import FakeRequest, FakeServer, Reply

API_KEY = "sk-ant-api03-fake-anthropic-key-0123456789"
KEY_ENV = "FAKE_ANTHROPIC_API_KEY"
VERSION = "2023-06-01"
MODEL = "claude-fake-4-5"

STOP_REASON = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}

# error class -> (HTTP status, Anthropic error type, message)
ERRORS: dict[str, tuple[int, str, str]] = {
    "auth": (401, "authentication_error", "invalid x-api-key"),
    "rate_limit": (429, "rate_limit_error",
                   "This request would exceed the rate limit for your organization of 50 requests per minute."),
    "server": (500, "api_error", "Internal server error"),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "context_length": (400, "invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum"),
    "bad_request": (400, "invalid_request_error", "messages.0.content.0.text.text: Field required"),
}

TOP_LEVEL = frozenset({
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature", "top_p",
    "top_k", "tools", "tool_choice", "thinking", "service_tier", "output_config", "output_format", "container",
    "mcp_servers", "context_management", "inference_geo",
})
USER_BLOCKS = frozenset({"text", "image", "document", "tool_result", "search_result"})
ASSISTANT_BLOCKS = frozenset({"text", "tool_use", "thinking", "redacted_thinking", "server_tool_use"})
IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake_0001"}


def frame(data: dict[str, Any]) -> bytes:
    return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()


class FakeAnthropic(FakeServer):
    provider_id = "anthropic"
    model = MODEL
    # conformance features (tests/conformance/scenarios.py): no audio, video or reasoning-token detail
    supports = frozenset({
        "text", "multi_turn", "system", "image", "document", "tools", "tool_choice", "tool_round_trip",
        "structured_output", "stop", "max_tokens", "stream", "stream_tools", "usage_cache", "usage_cache_write",
    })

    def __init__(self, script: Script | None = None) -> None:
        super().__init__()
        self._script = script or Script()
        self.stream_error: str | None = None  # an ERROR_CLASSES name sent as `event: error` mid-stream
        self.stream_error_after: int = 3  # ... after this many content events
        self.violations: list[str] = []
        self.route("POST", "/v1/messages", self._messages)

    # ---------------------------------------------------------------- scripting
    def script(self, s: Script, *, stream_error: str | None = None, stream_error_after: int = 3) -> "FakeAnthropic":
        self._script = s
        self.stream_error = stream_error if stream_error is not None else getattr(s, "stream_error", None)
        self.stream_error_after = stream_error_after
        return self

    def catalog(self, caps: list[str] | None = None, *, options: dict[str, Any] | None = None,
                limits: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        os.environ[KEY_ENV] = API_KEY
        provider = {"id": self.provider_id, "kind": "anthropic", "base_url": self.url, "credential": {"env": KEY_ENV}}
        model = {
            "id": f"{self.provider_id}::{self.model}",
            "capabilities": list(caps or ["chat", "stream", "tools", "structured_output", "vision", "documents"]),
            "limits": limits or {"context_window": 200000, "max_output_tokens": 64000},
            "pricing": {"input_per_mtok": 3.0, "output_per_mtok": 15.0, "cached_input_per_mtok": 0.30, "cache_write_per_mtok": 3.75},
        }
        if options:
            model["options"] = options
        return provider, [model]

    # ---------------------------------------------------------------- what was sent, provider-neutral
    @staticmethod
    def received(req: FakeRequest) -> dict[str, Any]:
        """The conformance suite's provider-neutral view of one recorded request."""
        body = req.json()
        system = body.get("system")
        if isinstance(system, list):
            system = "\n\n".join(b.get("text", "") for b in system)
        parts: list[str] = []
        texts: list[str] = []
        for m in body.get("messages") or []:
            content = m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]
            for b in content:
                kind = b.get("type")
                if kind == "tool_result":
                    parts.append("tool:tool_result")
                    continue
                parts.append(f"{m['role']}:{'tool_call' if kind == 'tool_use' else kind}")
                if kind == "text":
                    texts.append(b["text"])
        choice = body.get("tool_choice")
        if choice is not None:
            choice = {"auto": "auto", "any": "required", "none": "none"}.get(choice.get("type")) or choice.get("name")
        return {
            "system": system or None,
            "parts": parts,
            "texts": texts,
            "tools": [t["name"] for t in body.get("tools") or [] if t["name"] != "json_response"],
            "tool_choice": choice,
            "schema": bool((body.get("output_config") or {}).get("format") or body.get("output_format")),
            "stream": bool(body.get("stream")),
            "max_tokens": body.get("max_tokens"),
            "stop": body.get("stop_sequences"),
            "temperature": body.get("temperature"),
        }

    # ---------------------------------------------------------------- request checks
    def check(self, req: FakeRequest) -> str | None:
        """The first thing Anthropic would reject in this request, or None."""
        h = req.headers
        if h.get("x-api-key") != API_KEY:
            return "auth"
        if h.get("anthropic-version") != VERSION:
            return "anthropic-version: header is required and must be 2023-06-01"
        if not (h.get("content-type") or "").startswith("application/json"):
            return "content-type must be application/json"
        if "authorization" in h:
            return "unexpected Authorization header (Anthropic uses x-api-key)"
        try:
            body = req.json()
        except ValueError:
            return "request body is not valid JSON"
        if not isinstance(body, dict):
            return "request body must be an object"
        unknown = set(body) - TOP_LEVEL
        if unknown:
            return f"{sorted(unknown)[0]}: Extra inputs are not permitted"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model: Field required"
        mt = body.get("max_tokens")
        if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
            return "max_tokens: Field required (a positive integer)"
        t = body.get("temperature")
        if t is not None and not (isinstance(t, (int, float)) and 0 <= t <= 1):
            return "temperature: Input should be less than or equal to 1"
        if "system" in body:
            system = body["system"]
            if isinstance(system, list):
                if not all(isinstance(b, dict) and b.get("type") == "text" and b.get("text") for b in system):
                    return "system: text blocks only"
            elif not isinstance(system, str):
                return "system: Input should be a valid string or list"
        if "stop_sequences" in body and not (isinstance(body["stop_sequences"], list) and all(isinstance(s, str) for s in body["stop_sequences"])):
            return "stop_sequences: Input should be a valid list of strings"
        tool_names: set[str] = set()
        for i, tool in enumerate(body.get("tools") or []):
            if not isinstance(tool, dict) or not tool.get("name") or not isinstance(tool.get("input_schema"), dict):
                return f"tools.{i}: name and input_schema are required"
            if tool["input_schema"].get("type") != "object":
                return f"tools.{i}.input_schema.type: Input should be 'object'"
            if set(tool) - {"name", "description", "input_schema", "cache_control", "strict", "type"}:
                return f"tools.{i}: Extra inputs are not permitted"
            tool_names.add(tool["name"])
        choice = body.get("tool_choice")
        if choice is not None:
            if not tool_names:
                return "tool_choice: may only be specified while providing tools"
            if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
                return "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"
            if choice["type"] == "tool" and choice.get("name") not in tool_names:
                return f"tool_choice.name: tool '{choice.get('name')}' not found in tools"
        fmt = (body.get("output_config") or {}).get("format") if "output_config" in body else body.get("output_format")
        if fmt is not None:
            if "output_format" in body and "structured-outputs-2025-11-13" not in h.get("anthropic-beta", ""):
                return "output_format: requires the structured-outputs-2025-11-13 beta"
            if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
                return "output_config.format: type json_schema with a schema is required"
            bad = _unsupported_schema(fmt["schema"], "output_config.format.schema")
            if bad:
                return bad
        return self._check_messages(body.get("messages"))

    def _check_messages(self, messages: Any) -> str | None:
        if not isinstance(messages, list) or not messages:
            return "messages: at least one message is required"
        pending: set[str] = set()
        prev = None
        for i, m in enumerate(messages):
            role = m.get("role") if isinstance(m, dict) else None
            if role not in ("user", "assistant"):
                return f"messages.{i}.role: Input should be 'user' or 'assistant'"
            if role == prev:
                return 'messages: roles must alternate between "user" and "assistant"'
            prev = role
            content = m.get("content")
            if isinstance(content, str):
                if not content:
                    return f"messages.{i}: content must be non-empty"
                blocks: list[Any] = [{"type": "text", "text": content}]
            elif isinstance(content, list) and content:
                blocks = content
            else:
                return f"messages.{i}: content must be a non-empty string or list"
            allowed = USER_BLOCKS if role == "user" else ASSISTANT_BLOCKS
            seen_other = False
            answered: set[str] = set()
            for j, b in enumerate(blocks):
                kind = b.get("type") if isinstance(b, dict) else None
                where = f"messages.{i}.content.{j}"
                if kind not in allowed:
                    return f"{where}.type: '{kind}' is not valid in a {role} message"
                if kind == "text":
                    if not isinstance(b.get("text"), str) or not b["text"]:
                        return f"{where}: text content blocks must be non-empty"
                elif kind == "tool_result":
                    if seen_other:
                        return f"{where}: tool_result blocks must come first in the user message content"
                    if b.get("tool_use_id") not in pending:
                        return f"{where}: unexpected `tool_use_id` found in `tool_result` blocks: {b.get('tool_use_id')}"
                    answered.add(b["tool_use_id"])
                    if "content" in b and not isinstance(b["content"], (str, list)):
                        return f"{where}.content: Input should be a valid string or list"
                elif kind == "tool_use":
                    if not b.get("id") or not b.get("name") or not isinstance(b.get("input"), dict):
                        return f"{where}: tool_use needs id, name and an object input"
                elif kind in ("image", "document"):
                    bad = _check_source(b.get("source"), kind, where)
                    if bad:
                        return bad
                if kind != "tool_result":
                    seen_other = True
            if role == "user" and pending and answered != pending:
                return f"messages.{i}: tool_use ids were found without tool_result blocks immediately after: {sorted(pending - answered)[0]}"
            pending = {b["id"] for b in blocks if b.get("type") == "tool_use"} if role == "assistant" else set()
            if role == "assistant" and i == len(messages) - 1 and blocks[-1].get("type") == "text" and blocks[-1]["text"] != blocks[-1]["text"].rstrip():
                return "messages: final assistant content cannot end with trailing whitespace"
        return None

    # ---------------------------------------------------------------- answers
    def _messages(self, req: FakeRequest) -> Reply:
        s = self._script
        problem = self.check(req)
        if problem == "auth":
            self.violations.append("x-api-key missing or wrong")
            return self.error_reply("auth", s)
        if problem:
            self.violations.append(problem)
            return Reply(400, json=error_body("invalid_request_error", problem))
        if s.error:
            return self.error_reply(s.error, s)
        body = req.json()
        blocks = self._blocks(s, body)
        if body.get("stream"):
            return Reply(200, chunks=self._events(s, body, blocks), headers={"Content-Type": "text/event-stream", "request-id": "req_fake_0001"},
                         delay_s=s.delay_s, chunk_delay_s=s.chunk_delay_s, stall_after=s.stall_after_chunks, cut_after=s.cut_after_chunks)
        return Reply(200, json={
            "id": "msg_fake_01", "type": "message", "role": "assistant", "model": body["model"],
            "content": blocks, "stop_reason": self._stop_reason(s, blocks), "stop_sequence": None,
            "usage": self._usage(s, s.output_tokens),
        }, headers={"request-id": "req_fake_0001"}, delay_s=s.delay_s)

    def error_reply(self, kind: str, s: Script) -> Reply:
        status, etype, message = ERRORS[kind]
        headers = {"request-id": "req_fake_0001"}
        if s.retry_after is not None:
            headers["retry-after"] = str(s.retry_after)
        return Reply(status, json=error_body(etype, message), headers=headers, delay_s=s.delay_s)

    @staticmethod
    def _usage(s: Script, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": s.input_tokens - s.cached_tokens - s.cache_write_tokens,
            "cache_creation_input_tokens": s.cache_write_tokens,
            "cache_read_input_tokens": s.cached_tokens,
            "output_tokens": output_tokens,
        }

    @staticmethod
    def _blocks(s: Script, body: dict[str, Any]) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        choice = body.get("tool_choice") or {}
        if choice.get("type") == "tool" and not s.tool_calls and s.text is not None:
            # a forced tool: the model answers by calling it, the scripted text being its JSON input
            try:
                value = json.loads(s.text)
            except ValueError:
                value = {"text": s.text}
            if not isinstance(value, dict):  # a tool input is an object: non-object answers come wrapped
                value = {"value": value}
            return [{"type": "tool_use", "id": "toolu_fake_forced", "name": choice["name"], "input": value}]
        if s.text:
            blocks.append({"type": "text", "text": s.text})
        for tc in s.tool_calls:
            blocks.append({"type": "tool_use", "id": tc["id"], "name": tc["name"], "input": tc.get("arguments") or {}})
        return blocks

    @staticmethod
    def _stop_reason(s: Script, blocks: list[dict[str, Any]]) -> str:
        if s.finish == "stop" and any(b["type"] == "tool_use" for b in blocks):
            return "tool_use"
        return STOP_REASON[s.finish]

    def _events(self, s: Script, body: dict[str, Any], blocks: list[dict[str, Any]]) -> list[bytes]:
        """Network chunks. Like the real API, the first write carries `message_start`, the first
        `content_block_start` and a `ping`; after that one event per chunk (pings in between)."""
        out = [frame({"type": "message_start", "message": {
            "id": "msg_fake_01", "type": "message", "role": "assistant", "model": body["model"], "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": self._usage(s, 1)}})]
        content_events = 0
        for index, block in enumerate(blocks):
            if block["type"] == "text":
                start = frame({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})
                deltas = [{"type": "text_delta", "text": piece} for piece in _split_words(block["text"])]
            else:
                start = frame({"type": "content_block_start", "index": index, "content_block": {
                    "type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}})
                start += frame({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": ""}})
                args = json.dumps(block["input"])
                deltas = [{"type": "input_json_delta", "partial_json": args[k:k + 12]} for k in range(0, len(args), 12)]
            if index == 0:
                out[0] += start + frame({"type": "ping"})
            else:
                out.append(start)
            for k, delta in enumerate(deltas):
                out.append(frame({"type": "content_block_delta", "index": index, "delta": delta}))
                content_events += 1
                if k == 1:
                    out.append(frame({"type": "ping"}))
                if self.stream_error and content_events == self.stream_error_after:
                    return out + [self._error_frame(self.stream_error)]
            out.append(frame({"type": "content_block_stop", "index": index}))
        if not blocks:
            out[0] += frame({"type": "ping"})
        if self.stream_error:
            return out + [self._error_frame(self.stream_error)]
        out.append(frame({"type": "message_delta", "delta": {"stop_reason": self._stop_reason(s, blocks), "stop_sequence": None},
                          "usage": {"output_tokens": s.output_tokens}}))
        out.append(frame({"type": "message_stop"}))
        return out

    @staticmethod
    def _error_frame(kind: str) -> bytes:
        _, etype, message = ERRORS[kind]
        return frame(error_body(etype, message))


def _split_words(text: str) -> list[str]:
    pieces: list[str] = []
    current = ""
    for ch in text:
        current += ch
        if ch == " ":
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces or [text]


def _check_source(source: Any, kind: str, where: str) -> str | None:
    if not isinstance(source, dict):
        return f"{where}.source: Field required"
    stype = source.get("type")
    if stype == "url":
        return None if isinstance(source.get("url"), str) and source["url"].startswith(("http://", "https://")) else f"{where}.source.url: invalid URL"
    if stype == "base64":
        mt = source.get("media_type")
        if kind == "image" and mt not in IMAGE_TYPES:
            return f"{where}.source.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
        if kind == "document" and mt != "application/pdf":
            return f"{where}.source.media_type: Input should be 'application/pdf'"
        return None if isinstance(source.get("data"), str) and source["data"] else f"{where}.source.data: Field required"
    if stype == "text" and kind == "document":
        return None if source.get("media_type") == "text/plain" and isinstance(source.get("data"), str) else f"{where}.source: invalid text source"
    return f"{where}.source.type: '{stype}' is not valid"


_UNSUPPORTED = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength", "maxLength")


def _unsupported_schema(schema: Any, where: str) -> str | None:
    """What Anthropic's structured outputs reject (a 400 on the real API)."""
    if isinstance(schema, list):
        for i, s in enumerate(schema):
            bad = _unsupported_schema(s, f"{where}.{i}")
            if bad:
                return bad
        return None
    if not isinstance(schema, dict):
        return None
    for key in _UNSUPPORTED:
        if key in schema:
            return f"{where}: '{key}' is not supported in structured outputs"
    if (schema.get("type") == "object" or "properties" in schema) and schema.get("additionalProperties") is not False:
        return f"{where}: For 'object' type, 'additionalProperties' must be explicitly set to false"
    if isinstance(schema.get("minItems"), int) and schema["minItems"] > 1:
        return f"{where}: minItems values other than 0 or 1 are not supported"
    for key in ("properties", "$defs", "definitions"):
        for name, sub in (schema.get(key) or {}).items():
            bad = _unsupported_schema(sub, f"{where}.{key}.{name}")
            if bad:
                return bad
    for key in ("items", "anyOf", "allOf"):
        if key in schema:
            bad = _unsupported_schema(schema[key], f"{where}.{key}")
            if bad:
                return bad
    return None
