"""The Anthropic door: Messages API bodies ⇄ the native contract (pure functions, no I/O).

Messages request → native request
- `system` (a string or text blocks) → a system message; `messages` content as a string or
  blocks: `text`; `image` (`base64` source → a `data:` URL, `url` source as is); `document`
  (`base64` PDF → a `data:` URL, `url` as is, `text` / `content` sources → text parts);
  assistant `tool_use` → `tool_call` parts; user `tool_result` (string or text blocks; `is_error`
  prefixes the content with "Error: ") → a native `tool` message placed before the rest of that
  user turn. `thinking` / `redacted_thinking` history blocks are dropped; `file` sources,
  server tools and MCP are refused (`capability_not_supported`).
- `tools` (custom tools: `name`, `description`, `input_schema`) → unified tools; `tool_choice`
  auto / any / tool / none → auto / required / named / none.
- `max_tokens` (required, as Anthropic requires it), `temperature`, `top_p`, `stop_sequences`,
  `metadata.user_id` → native `metadata`; `output_format` / `output_config.format`
  (`json_schema`) → `response_schema`. Accepted and not applied: `top_k`, `thinking`,
  `service_tier`, `cache_control` on blocks.

Native → Anthropic: a `message` (text and `tool_use` blocks; `stop_reason` end_turn /
max_tokens / tool_use / refusal; `usage.input_tokens` excludes cache reads and writes, which are
`cache_read_input_tokens` / `cache_creation_input_tokens`), the streaming event sequence
(`message_start`, `content_block_start`, `ping`, `content_block_delta` with `text_delta` /
`input_json_delta`, `content_block_stop`, `message_delta` with stop_reason and cumulative usage,
`message_stop`; a failure after the start → an `error` event), and errors as
`{"type": "error", "error": {"type", "message"}, "request_id"}` with Anthropic's statuses.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Mapping

from llm_gateway.api.errors import GatewayError
from llm_gateway.compat.common import BODY_EXTENSIONS, apply_extensions, dumps, frame_events, invalid, loads

# ---------------------------------------------------------------- errors

ERRORS: dict[str, tuple[int, str]] = {
    "validation_error": (400, "invalid_request_error"),
    "invalid_json": (400, "invalid_request_error"),
    "capability_not_supported": (400, "invalid_request_error"),
    "unsupported_media_type": (400, "invalid_request_error"),
    "request_blocked": (400, "invalid_request_error"),
    "response_blocked": (400, "invalid_request_error"),
    "unauthorized": (401, "authentication_error"),
    "budget_exceeded": (402, "billing_error"),
    "forbidden": (403, "permission_error"),
    "model_not_approved": (403, "permission_error"),
    "model_not_found": (404, "not_found_error"),
    "model_deprecated": (404, "not_found_error"),
    "not_found": (404, "not_found_error"),
    "job_not_found": (404, "not_found_error"),
    "batch_not_found": (404, "not_found_error"),
    "job_expired": (404, "not_found_error"),
    "batch_expired": (404, "not_found_error"),
    "method_not_allowed": (405, "invalid_request_error"),
    "conflict": (409, "invalid_request_error"),
    "payload_too_large": (413, "request_too_large"),
    "rate_limited": (429, "rate_limit_error"),
    "internal_error": (500, "api_error"),
    "provider_error": (502, "api_error"),
    "provider_timeout": (504, "timeout_error"),
}


def error_object(problem: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """A native problem body → (Anthropic status, `{"type": "error", "error": {...}, "request_id"}`)."""
    code = str(problem.get("code") or "internal_error")
    status, etype = ERRORS.get(code, (int(problem.get("status") or 500), "api_error"))
    body: dict[str, Any] = {"type": "error", "error": {"type": etype, "message": str(problem.get("detail") or problem.get("title") or "Error")}}
    if problem.get("instance"):
        body["request_id"] = problem["instance"]
    return status, body


# ---------------------------------------------------------------- request

_FIELDS = frozenset({
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature", "top_p",
    "tools", "tool_choice", "output_format", "output_config", *BODY_EXTENSIONS,
})
_IGNORED = frozenset({"top_k", "thinking", "service_tier"})
_REFUSED = frozenset({"container", "mcp_servers", "context_management"})


def _unsupported(message: str, path: str) -> GatewayError:
    return GatewayError("capability_not_supported", message, errors=[{"path": path, "message": "not supported"}])


def _source_url(source: Any, where: str) -> str:
    if not isinstance(source, dict):
        raise invalid(f"{where}: Field required", where)
    kind = source.get("type")
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if not isinstance(media_type, str) or not isinstance(data, str):
            raise invalid(f"{where}: a base64 source needs media_type and data.", where)
        return f"data:{media_type};base64,{data}"
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url:
            raise invalid(f"{where}.url: Field required", f"{where}.url")
        return url
    if kind == "file":
        raise _unsupported(f"{where}: file sources need the Files API, which the gateway does not have; send base64 or a url.", where)
    raise invalid(f"{where}.type: Input tag {kind!r} is not one of base64, url.", f"{where}.type")


def _document(block: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    title = block.get("title")
    prefix = f"{title}\n\n" if isinstance(title, str) and title else ""
    if kind == "text":
        return [{"type": "text", "text": prefix + str(source.get("data") or "")}]
    if kind == "content":
        parts: list[dict[str, Any]] = []
        for k, item in enumerate(source.get("content") or ()):
            parts.extend(_blocks([item], f"{where}.source.content[{k}]", "user"))
        if prefix and parts and parts[0]["type"] == "text":
            parts[0] = {"type": "text", "text": prefix + parts[0]["text"]}
        return parts
    return [{"type": "document", "url": _source_url(source, f"{where}.source")}]


def _tool_result_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid(f"{where}: must be a string or a list of blocks.", where)
    texts = []
    for k, item in enumerate(content):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text":
            texts.append(str(item.get("text") or ""))
        else:
            raise _unsupported(f"{where}[{k}]: only text blocks are supported inside tool_result (got {kind!r}).", f"{where}[{k}]")
    return "\n".join(texts)


def _blocks(content: Any, where: str, role: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise invalid(f"{where}: Input should be a valid string or list of content blocks.", where)
    parts: list[dict[str, Any]] = []
    for k, block in enumerate(content):
        here = f"{where}.{k}"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": str(block.get("text") or "")})
        elif kind == "image":
            parts.append({"type": "image", "url": _source_url(block.get("source"), f"{here}.source")})
        elif kind == "document":
            parts.extend(_document(block, here))
        elif kind == "tool_use" and role == "assistant":
            args = block.get("input")
            if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str) or not isinstance(args, dict):
                raise invalid(f"{here}: tool_use needs id, name and an input object.", here)
            parts.append({"type": "tool_call", "tool_call": {"id": block["id"], "name": block["name"], "arguments": args}})
        elif kind == "tool_result" and role == "user":
            call_id = block.get("tool_use_id")
            if not isinstance(call_id, str) or not call_id:
                raise invalid(f"{here}.tool_use_id: Field required", f"{here}.tool_use_id")
            text = _tool_result_text(block.get("content"), f"{here}.content")
            if block.get("is_error"):
                text = "Error: " + text
            parts.append({"type": "tool_result", "tool_result": {"tool_call_id": call_id, "content": text}})
        elif kind in ("thinking", "redacted_thinking") and role == "assistant":
            continue
        elif kind in ("server_tool_use", "web_search_tool_result", "mcp_tool_use", "mcp_tool_result", "container_upload",
                      "search_result", "code_execution_tool_result"):
            raise _unsupported(f"{here}: {kind} blocks are not supported by the gateway.", f"{here}.type")
        else:
            raise invalid(f"{here}.type: {kind!r} is not a valid {role} content block.", f"{here}.type")
    return parts


def _messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        if isinstance(system, str):
            text = system
        elif isinstance(system, list):
            text = "\n\n".join(str(b.get("text") or "") for b in system if isinstance(b, dict) and b.get("type") == "text")
        else:
            raise invalid("system: Input should be a valid string or list of text blocks.", "system")
        if text:
            out.append({"role": "system", "content": [{"type": "text", "text": text}]})
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: Field required (a non-empty list)", "messages")
    for i, m in enumerate(messages):
        where = f"messages.{i}"
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", "assistant"):
            raise invalid(f"{where}.role: Input should be 'user' or 'assistant'", f"{where}.role")
        content = m.get("content")
        if type(content) is str:  # the common case: one text block
            out.append({"role": role, "content": [{"type": "text", "text": content}]})
            continue
        parts = _blocks(content, f"{where}.content", role)
        if role == "user" and any(p["type"] == "tool_result" for p in parts):
            out.append({"role": "tool", "content": [p for p in parts if p["type"] == "tool_result"]})
            parts = [p for p in parts if p["type"] != "tool_result"]
            if not parts:
                continue
        out.append({"role": role, "content": parts or [{"type": "text", "text": ""}]})
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise invalid("tools: Input should be a valid list", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise invalid(f"tools.{i}: Input should be an object", f"tools.{i}")
        if tool.get("type") not in (None, "custom"):
            raise _unsupported(f"tools.{i}: server tools ({tool.get('type')}) are not supported by the gateway; use custom tools.", f"tools.{i}.type")
        if not isinstance(tool.get("name"), str) or not isinstance(tool.get("input_schema"), dict):
            raise invalid(f"tools.{i}: name and input_schema are required.", f"tools.{i}")
        out.append({"type": "unified", "name": tool["name"], "description": tool.get("description") or "",
                    "parameters": {"json_schema": tool["input_schema"]}})
    return out


def _tool_choice(choice: Any) -> Any:
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "auto":
        return "auto"
    if kind == "any":
        return "required"
    if kind == "none":
        return "none"
    if kind == "tool" and isinstance(choice.get("name"), str):
        return {"type": "tool", "name": choice["name"]}
    raise invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'", "tool_choice")


def _output_schema(body: Mapping[str, Any]) -> dict[str, Any] | None:
    fmt = body.get("output_format")
    config = body.get("output_config")
    if fmt is None and isinstance(config, dict):
        fmt = config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise invalid("output_format: Input should be {\"type\": \"json_schema\", \"schema\": {...}}", "output_format")
    return {"json_schema": fmt["schema"]}


def messages_request(body: Mapping[str, Any], headers: Mapping[str, str], *, count_only: bool = False) -> dict[str, Any]:
    """An Anthropic Messages body → the native request (`count_only`: the count_tokens body)."""
    for key in body:
        if key in _REFUSED:
            raise _unsupported(f"{key}: not supported by the gateway.", key)
        if key not in _FIELDS and key not in _IGNORED:
            raise invalid(f"{key}: Extra inputs are not permitted", key)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model: Field required", "model")
    native: dict[str, Any] = {"model": model, "messages": _messages(body)}
    max_tokens = body.get("max_tokens")
    if not count_only:
        if max_tokens is None:
            raise invalid("max_tokens: Field required", "max_tokens")
        native["max_tokens"] = max_tokens
    if body.get("tools"):
        native["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        native["tool_choice"] = _tool_choice(body["tool_choice"])
    schema = _output_schema(body)
    if schema is not None:
        native["response_schema"] = schema
    if body.get("stop_sequences"):
        native["stop"] = body["stop_sequences"]
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            native[key] = body[key]
    if body.get("stream") is True and not count_only:
        native["stream"] = True
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and metadata.get("user_id") is not None:
        native["metadata"] = {"user_id": metadata["user_id"]}
    for key in BODY_EXTENSIONS:
        if body.get(key) is not None:
            native[key] = body[key]
    apply_extensions(native, headers)
    return native


# ---------------------------------------------------------------- response

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def usage(native: Mapping[str, Any] | None) -> dict[str, Any]:
    native = native or {}
    cached = int(native.get("cached_input_tokens") or 0)
    written = int(native.get("cache_write_tokens") or 0)
    return {
        "input_tokens": max(0, int(native.get("input_tokens") or 0) - cached - written),
        "cache_creation_input_tokens": written,
        "cache_read_input_tokens": cached,
        "output_tokens": int(native.get("output_tokens") or 0),
    }


def message_response(native: Mapping[str, Any]) -> dict[str, Any]:
    """A native response body → an Anthropic `message`."""
    content: list[dict[str, Any]] = []
    for part in native.get("content") or ():
        if part.get("type") == "text" and part.get("text"):
            content.append({"type": "text", "text": part["text"]})
    for call in native.get("tool_calls") or ():
        content.append({"type": "tool_use", "id": call["id"], "name": call["name"], "input": call.get("arguments") or {}})
    return {
        "id": native.get("id"),
        "type": "message",
        "role": "assistant",
        "model": native.get("model_used"),
        "content": content,
        "stop_reason": STOP_REASONS.get(native.get("finish_reason") or "stop", "end_turn"),
        "stop_sequence": None,
        "usage": usage(native.get("usage")),
    }


def _event(name: str, body: str) -> str:
    return f"event: {name}\ndata: {body}\n\n"


def message_stream(frames: Iterator[str]) -> Iterator[str]:
    """Native SSE frames → Anthropic's event sequence. Text deltas open a `text` block, a tool
    call's first delta (its id and name) a `tool_use` block whose argument fragments follow as
    `input_json_delta`; a change of kind closes the open block."""
    index = -1  # the open block's index
    open_kind: str | None = None  # "text" | native tool-call index as "tool:<n>"
    pinged = False
    try:
        for frame in frames:
            for event, data in frame_events(frame):
                if event == "error":
                    _, err = error_object(loads(data))
                    err.pop("request_id", None)
                    yield _event("error", dumps(err))
                    continue
                if data == "[DONE]":
                    continue
                chunk = loads(data)
                delta = chunk.get("delta") or {}
                if "role" in delta:
                    message = {"id": chunk.get("id"), "type": "message", "role": "assistant", "model": chunk.get("model"),
                               "content": [], "stop_reason": None, "stop_sequence": None,
                               "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                                         "output_tokens": 0}}
                    yield _event("message_start", dumps({"type": "message_start", "message": message}))
                text = delta.get("content")
                if text:
                    if open_kind != "text":
                        if open_kind is not None:
                            yield _event("content_block_stop", f'{{"type":"content_block_stop","index":{index}}}')
                        index += 1
                        open_kind = "text"
                        yield _event("content_block_start",
                                     f'{{"type":"content_block_start","index":{index},"content_block":{{"type":"text","text":""}}}}')
                        if not pinged:
                            pinged = True
                            yield _event("ping", '{"type": "ping"}')
                    yield _event("content_block_delta",
                                 f'{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":{dumps(text)}}}}}')
                for tc in delta.get("tool_calls") or ():
                    kind = f"tool:{tc.get('index', 0)}"
                    fn = tc.get("function") or {}
                    if open_kind != kind:
                        if open_kind is not None:
                            yield _event("content_block_stop", f'{{"type":"content_block_stop","index":{index}}}')
                        index += 1
                        open_kind = kind
                        block = {"type": "tool_use", "id": tc.get("id") or f"toolu_{index}", "name": fn.get("name") or "", "input": {}}
                        yield _event("content_block_start", dumps({"type": "content_block_start", "index": index, "content_block": block}))
                        if not pinged:
                            pinged = True
                            yield _event("ping", '{"type": "ping"}')
                    if fn.get("arguments"):
                        yield _event("content_block_delta",
                                     f'{{"type":"content_block_delta","index":{index},"delta":{{"type":"input_json_delta","partial_json":{dumps(fn["arguments"])}}}}}')
                finish = chunk.get("finish_reason")
                if finish is not None:
                    if open_kind is not None:
                        yield _event("content_block_stop", f'{{"type":"content_block_stop","index":{index}}}')
                        open_kind = None
                    if not pinged:
                        pinged = True
                        yield _event("ping", '{"type": "ping"}')
                    body = {"type": "message_delta", "delta": {"stop_reason": STOP_REASONS.get(finish, "end_turn"), "stop_sequence": None},
                            "usage": usage(chunk.get("usage"))}
                    yield _event("message_delta", dumps(body))
                    yield _event("message_stop", '{"type":"message_stop"}')
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()


# ---------------------------------------------------------------- count_tokens


def count_response(input_tokens: int) -> dict[str, Any]:
    return {"input_tokens": int(input_tokens)}
