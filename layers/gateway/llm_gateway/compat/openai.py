"""The OpenAI door: OpenAI API bodies ⇄ the native contract (pure functions, no I/O).

Chat Completions request → native request
- `messages`: `system` / `developer` → system; `user` content as a string or parts (`text`,
  `image_url` (https or `data:` URL; `detail` is not carried), `input_audio` (`{data, format}` →
  a `data:audio/…;base64` audio part), `file` (`file_data` → a document part; `file_id` is
  refused: the gateway has no Files API)); `assistant` text / `refusal` parts and `tool_calls`
  (arguments parsed from their JSON string); `tool` messages → `tool_result` parts (consecutive
  ones in one native `tool` message).
- `tools` (`function` tools) → unified tools; `tool_choice` auto/none/required/named.
- `response_format`: `json_schema` → `response_schema` (the schema; its `name` becomes the
  schema `title` when it has none), `json_object` → `response_schema: {"type": "object"}`,
  `text` → nothing.
- `max_completion_tokens` (else `max_tokens`), `temperature`, `top_p`, `stop`, `seed`;
  `user` and `metadata` → native `metadata` (attribution); `stream`,
  `stream_options.include_usage`. `n` must be 1.
- Accepted and not applied (no native equivalent, no effect on the answer's shape):
  `frequency_penalty`, `presence_penalty`, `logit_bias`, `parallel_tool_calls`, `service_tier`,
  `store`, `reasoning_effort`, `verbosity`, `prompt_cache_key`, `safety_identifier`,
  `prediction`, `logprobs: false`, `modalities: ["text"]`. Refused with a 400: `n` > 1,
  `logprobs: true`, audio output, legacy `functions`, anything unknown ("Unrecognized request
  argument supplied: …", as OpenAI says it).

Native → OpenAI: `chat.completion` (one choice), `chat.completion.chunk` frames, usage
(`prompt_tokens` = input incl. cached, `completion_tokens` = output incl. reasoning,
`prompt_tokens_details.cached_tokens`, `completion_tokens_details.reasoning_tokens`), errors as
`{"error": {"message", "type", "param", "code"}}` with OpenAI's statuses (table `ERRORS`).
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Iterator
from typing import Any, Mapping

from llm_gateway.api.errors import GatewayError
from llm_gateway.compat.common import BODY_EXTENSIONS, apply_extensions, dumps, frame_events, invalid, loads

# ---------------------------------------------------------------- errors

# native code -> (OpenAI status, error type, error code or None = the native code)
ERRORS: dict[str, tuple[int, str, str | None]] = {
    "validation_error": (400, "invalid_request_error", None),
    "invalid_json": (400, "invalid_request_error", "invalid_json"),
    "capability_not_supported": (400, "invalid_request_error", None),
    "unsupported_media_type": (400, "invalid_request_error", None),
    "request_blocked": (400, "invalid_request_error", "content_policy_violation"),
    "response_blocked": (400, "invalid_request_error", "content_filter"),
    "unauthorized": (401, "invalid_request_error", "invalid_api_key"),
    "forbidden": (403, "invalid_request_error", None),
    "model_not_approved": (403, "invalid_request_error", None),
    "model_not_found": (404, "invalid_request_error", "model_not_found"),
    "model_deprecated": (404, "invalid_request_error", None),
    "not_found": (404, "invalid_request_error", "unknown_url"),
    "job_not_found": (404, "invalid_request_error", None),
    "batch_not_found": (404, "invalid_request_error", None),
    "job_expired": (404, "invalid_request_error", None),
    "batch_expired": (404, "invalid_request_error", None),
    "method_not_allowed": (405, "invalid_request_error", None),
    "conflict": (409, "invalid_request_error", None),
    "payload_too_large": (413, "invalid_request_error", None),
    "rate_limited": (429, "requests", "rate_limit_exceeded"),
    "budget_exceeded": (429, "insufficient_quota", "insufficient_quota"),
    "internal_error": (500, "server_error", None),
    "provider_error": (502, "server_error", None),
    "provider_timeout": (504, "server_error", "timeout"),
}


def _param(problem: Mapping[str, Any]) -> str | None:
    errors = problem.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        path = errors[0].get("path")
        if isinstance(path, str) and path not in ("$", "/", ""):
            return path
    if problem.get("code") in ("model_not_found", "model_deprecated", "model_not_approved"):
        return "model"
    return None


def error_object(problem: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """A native problem body → (OpenAI status, `{"error": {message, type, param, code}}`)."""
    code = str(problem.get("code") or "internal_error")
    status, etype, ocode = ERRORS.get(code, (int(problem.get("status") or 500), "server_error", None))
    if code == "rate_limited":
        limit = problem.get("limit")
        if isinstance(limit, dict) and limit.get("kind") == "tokens":
            etype = "tokens"
    message = str(problem.get("detail") or problem.get("title") or "Error")
    return status, {"error": {"message": message, "type": etype, "param": _param(problem), "code": ocode or code}}


# ---------------------------------------------------------------- chat: request

_IGNORED = frozenset({
    "frequency_penalty", "presence_penalty", "logit_bias", "parallel_tool_calls", "service_tier", "store",
    "reasoning_effort", "verbosity", "prompt_cache_key", "safety_identifier", "prediction", "top_logprobs",
})
_HANDLED = frozenset({
    "model", "messages", "tools", "tool_choice", "response_format", "stream", "stream_options", "n",
    "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "seed", "user", "metadata",
    "logprobs", "modalities", "audio", "functions", "function_call", "web_search_options",
    *BODY_EXTENSIONS,
})
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}


def _unknown_fields(body: Mapping[str, Any], known: frozenset[str]) -> None:
    for key in body:
        if key not in known:
            raise invalid(f"Unrecognized request argument supplied: {key}", key)


def _text_of(content: Any, where: str, *, allow_refusal: bool = False) -> str:
    """The text of system / tool / assistant content: a string or an array of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid(f"{where} must be a string or an array of content parts.", where)
    out = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            out.append(part["text"])
        elif kind == "refusal" and allow_refusal and isinstance(part.get("refusal"), str):
            out.append(part["refusal"])
        else:
            raise invalid(f"{where}[{j}]: only text parts are accepted here (got {kind!r}).", f"{where}[{j}].type")
    return "".join(out)


def _user_parts(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise invalid(f"{where} must be a string or a non-empty array of content parts.", where)
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        here = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str) or not url:
                raise invalid(f"{here}.image_url.url is required.", f"{here}.image_url.url")
            parts.append({"type": "image", "url": url})
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            data, fmt = audio.get("data"), audio.get("format")
            if not isinstance(data, str) or fmt not in _AUDIO_TYPES:
                raise invalid(f"{here}.input_audio needs base64 'data' and a 'format' of wav or mp3.", f"{here}.input_audio")
            parts.append({"type": "audio", "url": f"data:{_AUDIO_TYPES[fmt]};base64,{data}"})
        elif kind == "file":
            file = part.get("file") or {}
            data = file.get("file_data")
            if isinstance(data, str) and data:
                url = data if data.startswith("data:") else f"data:application/pdf;base64,{data}"
                parts.append({"type": "document", "url": url})
            elif file.get("file_id"):
                raise GatewayError("capability_not_supported", f"{here}.file.file_id: the gateway has no Files API; send the file inline as file_data.",
                                   errors=[{"path": f"{here}.file.file_id", "message": "not supported"}])
            else:
                raise invalid(f"{here}.file needs file_data.", f"{here}.file")
        else:
            raise invalid(f"{here}.type {kind!r} is not supported (text, image_url, input_audio, file).", f"{here}.type")
    return parts


def _tool_calls(calls: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(calls, list):
        raise invalid(f"{where} must be an array.", where)
    out = []
    for k, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise invalid(f"{where}[{k}] must be a function call with a name.", f"{where}[{k}].function")
        raw = fn.get("arguments") or "{}"
        try:
            args = loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise invalid(f"{where}[{k}].function.arguments is not valid JSON.", f"{where}[{k}].function.arguments") from None
        if not isinstance(args, dict):
            raise invalid(f"{where}[{k}].function.arguments must be a JSON object.", f"{where}[{k}].function.arguments")
        out.append({"type": "tool_call", "tool_call": {"id": str(call.get("id") or f"call_{k}"), "name": fn["name"], "arguments": args}})
    return out


def _messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise invalid("messages must be a non-empty array.", "messages")
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise invalid(f"{where} must be an object.", where)
        role = m.get("role")
        content = m.get("content")
        if role == "user":
            out.append({"role": "user", "content": _user_parts(content, f"{where}.content")})
        elif role in ("system", "developer"):
            out.append({"role": "system", "content": [{"type": "text", "text": _text_of(content, f"{where}.content")}]})
        elif role == "assistant":
            text = _text_of(content, f"{where}.content", allow_refusal=True)
            parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
            if m.get("tool_calls"):
                parts.extend(_tool_calls(m["tool_calls"], f"{where}.tool_calls"))
            out.append({"role": "assistant", "content": parts or [{"type": "text", "text": ""}]})
        elif role == "tool":
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str) or not call_id:
                raise invalid(f"{where}.tool_call_id is required.", f"{where}.tool_call_id")
            part = {"type": "tool_result", "tool_result": {"tool_call_id": call_id, "content": _text_of(content, f"{where}.content")}}
            if out and out[-1]["role"] == "tool":
                out[-1]["content"].append(part)
            else:
                out.append({"role": "tool", "content": [part]})
        elif role == "function":
            raise invalid(f"{where}: 'function' messages are the legacy format; use 'tool' messages.", f"{where}.role")
        else:
            raise invalid(f"{where}.role {role!r} is not one of system, developer, user, assistant, tool.", f"{where}.role")
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise invalid("tools must be an array.", "tools")
    out = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise invalid(f"tools[{i}] must be a function tool with a name.", f"tools[{i}]")
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        out.append({"type": "unified", "name": fn["name"], "description": fn.get("description") or "",
                    "parameters": {"json_schema": params}})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if isinstance(name, str) and name:
            return {"type": "tool", "name": name}
    raise invalid("tool_choice must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": …}}.", "tool_choice")


def _response_schema(fmt: Any) -> dict[str, Any] | None:
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"json_schema": {"type": "object"}}
    if kind == "json_schema":
        spec = fmt.get("json_schema") or {}
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            schema = {"type": "object"}
        name = spec.get("name")
        if isinstance(name, str) and name and "title" not in schema:
            schema = {**schema, "title": name}
        if isinstance(spec.get("description"), str) and "description" not in schema:
            schema = {**schema, "description": spec["description"]}
        return {"json_schema": schema}
    raise invalid("response_format.type must be text, json_object or json_schema.", "response_format.type")


def chat_request(body: Mapping[str, Any], headers: Mapping[str, str]) -> tuple[dict[str, Any], bool, bool]:
    """An OpenAI chat body → (native request, stream, include_usage)."""
    for key in body:
        if key not in _HANDLED and key not in _IGNORED:
            raise invalid(f"Unrecognized request argument supplied: {key}", key)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("you must provide a model parameter", "model")
    n = body.get("n")
    if n not in (None, 1):
        raise invalid(f"n must be 1 on this gateway (got {n!r}); send separate requests for more choices.", "n")
    if body.get("logprobs"):
        raise GatewayError("capability_not_supported", "logprobs are not supported by the gateway.", errors=[{"path": "logprobs", "message": "not supported"}])
    modalities = body.get("modalities")
    if body.get("audio") or (isinstance(modalities, list) and any(m != "text" for m in modalities)):
        raise GatewayError("capability_not_supported", "Audio output on chat completions is not supported; use /openai/v1/audio/speech.",
                           errors=[{"path": "modalities", "message": "only text"}])
    if body.get("functions") is not None or body.get("function_call") is not None:
        raise invalid("functions / function_call are the legacy format; use tools and tool_choice.", "functions")
    if body.get("web_search_options") is not None:
        raise GatewayError("capability_not_supported", "web_search_options is not supported by the gateway.",
                           errors=[{"path": "web_search_options", "message": "not supported"}])
    native: dict[str, Any] = {"model": model, "messages": _messages(body.get("messages"))}
    if body.get("tools"):
        native["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        native["tool_choice"] = _tool_choice(body["tool_choice"])
    if body.get("response_format") is not None:
        schema = _response_schema(body["response_format"])
        if schema is not None:
            native["response_schema"] = schema
    stream = body.get("stream") is True
    if stream:
        native["stream"] = True
    options = body.get("stream_options")
    include_usage = bool(stream and isinstance(options, dict) and options.get("include_usage"))
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        native["max_tokens"] = max_tokens
    for key in ("temperature", "top_p", "stop", "seed"):
        if body.get(key) is not None:
            native[key] = body[key]
    metadata = body.get("metadata")
    if metadata is not None or body.get("user") is not None:
        meta = dict(metadata) if isinstance(metadata, dict) else {}
        if metadata is not None and not isinstance(metadata, dict):
            raise invalid("metadata must be an object of string values.", "metadata")
        if body.get("user") is not None:
            meta["user"] = body["user"]
        native["metadata"] = meta
    for key in BODY_EXTENSIONS:
        if body.get(key) is not None:
            native[key] = body[key]
    apply_extensions(native, headers)
    return native, stream, include_usage


# ---------------------------------------------------------------- chat: response


def usage(native: Mapping[str, Any] | None) -> dict[str, Any]:
    native = native or {}
    prompt = int(native.get("input_tokens") or 0)
    completion = int(native.get("output_tokens") or 0)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": int(native.get("cached_input_tokens") or 0), "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": int(native.get("reasoning_tokens") or 0), "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def chat_response(native: Mapping[str, Any]) -> dict[str, Any]:
    """A native response body → an OpenAI `chat.completion`."""
    texts = [p["text"] for p in native.get("content") or () if p.get("type") == "text"]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None, "refusal": None,
                               "annotations": []}
    calls = native.get("tool_calls")
    if calls:
        message["tool_calls"] = [{"id": c["id"], "type": "function",
                                  "function": {"name": c["name"], "arguments": dumps(c.get("arguments") or {})}} for c in calls]
    body: dict[str, Any] = {
        "id": native.get("id") or "chatcmpl-gateway",
        "object": "chat.completion",
        "created": native.get("created") or int(time.time()),
        "model": native.get("model_used"),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": native.get("finish_reason") or "stop"}],
        "usage": usage(native.get("usage")),
    }
    if native.get("media"):
        body["media"] = native["media"]  # generated media (gateway extension)
    return body


def chat_stream(frames: Iterator[str], include_usage: bool) -> Iterator[str]:
    """Native SSE frames → `chat.completion.chunk` frames (`data: [DONE]` last; a failure after
    the stream began → `event: error` with the OpenAI error object, as the SDKs read it)."""
    created = int(time.time())
    head = ""
    try:
        for frame in frames:
            for event, data in frame_events(frame):
                if event == "error":
                    _, err = error_object(loads(data))
                    yield f"event: error\ndata: {dumps(err)}\n\n"
                    continue
                if data == "[DONE]":
                    yield "data: [DONE]\n\n"
                    continue
                chunk = loads(data)
                if not head:
                    head = '{"id":' + dumps(chunk.get("id")) + ',"object":"chat.completion.chunk","created":' + str(created) + \
                           ',"model":' + dumps(chunk.get("model")) + ',"choices":'
                delta = chunk.get("delta") or {}
                out: dict[str, Any] = {}
                if "role" in delta:
                    out["role"] = delta["role"]
                    out["content"] = ""
                    out["refusal"] = None
                if delta.get("content"):
                    out["content"] = delta["content"]
                if delta.get("tool_calls"):
                    calls = []
                    for tc in delta["tool_calls"]:
                        item = dict(tc)
                        if tc.get("id"):
                            item["type"] = "function"
                        calls.append(item)
                    out["tool_calls"] = calls
                finish = chunk.get("finish_reason")
                if not out and finish is None:
                    continue  # e.g. audio deltas: nothing chat completions carries
                tail = ',"usage":null}' if include_usage else "}"
                choice = {"index": 0, "delta": out, "logprobs": None, "finish_reason": finish}
                yield "data: " + head + "[" + dumps(choice) + "]" + tail + "\n\n"
                if finish is not None and include_usage:
                    yield "data: " + head + '[],"usage":' + dumps(usage(chunk.get("usage"))) + "}\n\n"
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()


# ---------------------------------------------------------------- embeddings


def embeddings_request(body: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    _unknown_fields(body, frozenset({"model", "input", "dimensions", "encoding_format", "user"}))
    model, data = body.get("model"), body.get("input")
    if not isinstance(model, str) or not model:
        raise invalid("you must provide a model parameter", "model")
    if isinstance(data, list) and data and not all(isinstance(x, str) for x in data):
        raise GatewayError("capability_not_supported", "input: token arrays are not supported; send strings.",
                           errors=[{"path": "input", "message": "strings only"}])
    native: dict[str, Any] = {"model": model, "input": data}
    if body.get("dimensions") is not None:
        native["dimensions"] = body["dimensions"]
    if body.get("encoding_format") is not None:
        native["encoding_format"] = body["encoding_format"]
    return native


def embeddings_response(native: Mapping[str, Any]) -> dict[str, Any]:
    prompt = int((native.get("usage") or {}).get("input_tokens") or 0)
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": d["index"], "embedding": d["embedding"]} for d in native.get("data") or ()],
        "model": native.get("model"),
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }


# ---------------------------------------------------------------- models


def model_object(m: Mapping[str, Any], created: int = 0) -> dict[str, Any]:
    return {"id": m["id"], "object": "model", "created": created, "owned_by": m.get("provider") or "llm-gateway"}


def models_response(native: Mapping[str, Any]) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(m) for m in native.get("data") or ()]}


# ---------------------------------------------------------------- images


_IMAGE_FIELDS = frozenset({"model", "prompt", "n", "size", "quality", "style", "response_format", "background",
                           "output_format", "output_compression", "moderation", "user", "partial_images", "stream",
                           *BODY_EXTENSIONS})


def images_request(body: Mapping[str, Any], headers: Mapping[str, str]) -> tuple[dict[str, Any], str]:
    """`images/generations` → (native request, response_format url | b64_json)."""
    _unknown_fields(body, _IMAGE_FIELDS)
    model, prompt = body.get("model"), body.get("prompt")
    if not isinstance(model, str) or not model:
        raise invalid("you must provide a model parameter", "model")
    if not isinstance(prompt, str) or not prompt.strip():
        raise invalid("prompt is required.", "prompt")
    if body.get("stream"):
        raise GatewayError("capability_not_supported", "Streamed image generation is not supported.", errors=[{"path": "stream", "message": "not supported"}])
    fmt = body.get("response_format") or "url"
    if fmt not in ("url", "b64_json"):
        raise invalid("response_format must be url or b64_json.", "response_format")
    media: dict[str, Any] = dict(body.get("media") or {})
    if body.get("n") is not None:
        media["n"] = body["n"]
    size = body.get("size")
    if size not in (None, "auto"):
        media["size"] = size
    for key in ("quality", "style", "background"):
        if body.get(key) not in (None, "auto"):
            media[key] = body[key]
    if body.get("output_format") is not None:
        media["format"] = body["output_format"]
    native: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}]}
    if media:
        native["media"] = media
    if body.get("user") is not None:
        native["metadata"] = {"user": body["user"]}
    for key in ("fallback", "timeout"):
        if body.get(key) is not None:
            native[key] = body[key]
    apply_extensions(native, headers)
    return native, fmt


def images_response(native: Mapping[str, Any], images: list[dict[str, Any]]) -> dict[str, Any]:
    """`images`: one `{"url"}` or `{"b64_json"}` per generated image, in order."""
    u = native.get("usage") or {}
    prompt, output = int(u.get("input_tokens") or 0), int(u.get("output_tokens") or 0)
    return {
        "created": native.get("created") or int(time.time()),
        "data": images,
        "usage": {"input_tokens": prompt, "output_tokens": output, "total_tokens": prompt + output,
                  "input_tokens_details": {"text_tokens": prompt, "image_tokens": 0}},
    }


# ---------------------------------------------------------------- audio


SPEECH_TYPES = {"mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac", "wav": "audio/wav",
                "pcm": "audio/pcm"}


def speech_request(body: Mapping[str, Any], headers: Mapping[str, str]) -> dict[str, Any]:
    _unknown_fields(body, frozenset({"model", "input", "voice", "response_format", "speed", "instructions", "stream_format",
                                     *BODY_EXTENSIONS}))
    model, text = body.get("model"), body.get("input")
    if not isinstance(model, str) or not model:
        raise invalid("you must provide a model parameter", "model")
    if not isinstance(text, str) or not text.strip():
        raise invalid("input is required.", "input")
    if body.get("stream_format") not in (None, "audio"):
        raise GatewayError("capability_not_supported", "stream_format 'sse' is not supported; the audio is returned as a file.",
                           errors=[{"path": "stream_format", "message": "only audio"}])
    media: dict[str, Any] = dict(body.get("media") or {})
    voice = body.get("voice")
    if isinstance(voice, dict):
        voice = voice.get("id")
    if voice is not None:
        media["voice"] = voice
    if body.get("response_format") is not None:
        media["format"] = body["response_format"]
    for key in ("speed", "instructions"):
        if body.get(key) is not None:
            media[key] = body[key]
    native: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}]}
    if media:
        native["media"] = media
    for key in ("fallback", "timeout"):
        if body.get(key) is not None:
            native[key] = body[key]
    apply_extensions(native, headers)
    return native


def speech_audio(frames: Iterator[str]) -> tuple[bytes, str | None, dict[str, Any] | None]:
    """Native streamed-speech frames → (the audio file, its format, the problem if it failed)."""
    pieces: list[bytes] = []
    fmt = None
    for frame in frames:
        for event, data in frame_events(frame):
            if event == "error":
                return b"", fmt, loads(data)
            if data == "[DONE]":
                continue
            audio = (loads(data).get("delta") or {}).get("audio")
            if audio and audio.get("data"):
                pieces.append(base64.b64decode(audio["data"]))
                fmt = audio.get("format") or fmt
    return b"".join(pieces), fmt, None


TRANSCRIPTION_FORMATS = frozenset({"json", "text", "srt", "verbose_json", "vtt"})


def transcription_request(fields: Mapping[str, str], audio_url: str, headers: Mapping[str, str]) -> dict[str, Any]:
    """Multipart fields (text ones) + the stored upload's `s3://` URL → the native request."""
    model = fields.get("model")
    if not model:
        raise invalid("you must provide a model parameter", "model")
    media: dict[str, Any] = {}
    if fields.get("language"):
        media["language"] = fields["language"]
    if fields.get("prompt"):
        media["prompt"] = fields["prompt"]
    if fields.get("temperature"):
        try:
            media["temperature"] = float(fields["temperature"])
        except ValueError:
            raise invalid("temperature must be a number.", "temperature") from None
    native: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": [{"type": "audio", "url": audio_url}]}]}
    if media:
        native["media"] = media
    apply_extensions(native, headers)
    return native


def _clock(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def transcription_response(native: Mapping[str, Any], fmt: str, language: str | None) -> tuple[str, Any]:
    """(content type, body) for a transcription in `response_format`."""
    text = "".join(p.get("text", "") for p in native.get("content") or () if p.get("type") == "text")
    u = native.get("usage") or {}
    seconds = float(u.get("seconds") or 0.0)
    if fmt == "text":
        return "text/plain; charset=utf-8", text
    if fmt in ("srt", "vtt"):
        end = seconds or 1.0
        if fmt == "srt":
            return "text/plain; charset=utf-8", f"1\n{_clock(0, ',')} --> {_clock(end, ',')}\n{text}\n\n"
        return "text/vtt; charset=utf-8", f"WEBVTT\n\n{_clock(0, '.')} --> {_clock(end, '.')}\n{text}\n\n"
    if seconds:
        usage_body: dict[str, Any] = {"type": "duration", "seconds": math.ceil(seconds)}
    else:
        inp, out = int(u.get("input_tokens") or 0), int(u.get("output_tokens") or 0)
        usage_body = {"type": "tokens", "input_tokens": inp, "output_tokens": out, "total_tokens": inp + out}
    if fmt == "verbose_json":
        segment = {"id": 0, "seek": 0, "start": 0.0, "end": round(seconds, 3), "text": text, "tokens": [], "temperature": 0.0,
                   "avg_logprob": 0.0, "compression_ratio": 0.0, "no_speech_prob": 0.0}
        return "application/json", {"task": "transcribe", "language": language or "unknown", "duration": round(seconds, 3),
                                    "text": text, "segments": [segment], "usage": usage_body}
    return "application/json", {"text": text, "usage": usage_body}


# ---------------------------------------------------------------- files and batches
#
# Files (`purpose: "batch"` only) are stored under the tenant's upload prefix; a file id is
# `file-` + the key below `tenants/<tenant>/` (base64url), so it only ever names a file of the
# caller's own tenant. A batch's results are served as two virtual files, `file-batchout-<batch
# id>` (the successful answers) and `file-batcherr-<batch id>` (the failed ones), built from the
# native batch when read. Batches run on the native batches service (`llm_gateway/jobs`); the
# input file id is kept in the native batch's metadata under `INPUT_FILE_KEY`.

BATCH_ENDPOINT = "/v1/chat/completions"
INPUT_FILE_KEY = "llmgw_openai_input_file_id"
OUTPUT_PREFIX, ERROR_PREFIX = "file-batchout-", "file-batcherr-"
_BATCH_STATUS = {"pending": "validating", "in_progress": "in_progress", "completed": "completed", "failed": "failed",
                 "cancelled": "cancelled"}


def file_id(relative_key: str) -> str:
    return "file-" + base64.urlsafe_b64encode(relative_key.encode("utf-8")).decode("ascii").rstrip("=")


def file_key(fid: str, tenant_id: str) -> str | None:
    """The S3 key a file id names for this tenant (None if it is not an upload id)."""
    if not fid.startswith("file-") or fid.startswith((OUTPUT_PREFIX, ERROR_PREFIX)):
        return None
    raw = fid[5:]
    try:
        rel = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if not rel or rel.startswith("/") or ".." in rel.split("/"):
        return None
    return f"tenants/{tenant_id}/{rel}"


def file_object(fid: str, size: int, filename: str, created_at: int, purpose: str = "batch") -> dict[str, Any]:
    return {"id": fid, "object": "file", "bytes": size, "created_at": created_at, "filename": filename, "purpose": purpose,
            "status": "processed", "expires_at": None, "status_details": None}


def batch_requests(data: bytes, headers: Mapping[str, str]) -> list[dict[str, Any]]:
    """A batch input file (JSONL of `{custom_id, method, url, body}`) → native batch items."""
    items = []
    for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"input_file line {n}"
        try:
            entry = loads(line)
        except ValueError:
            raise invalid(f"{where}: not valid JSON.", "input_file_id") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("custom_id"), str) or not isinstance(entry.get("body"), dict):
            raise invalid(f"{where}: each line needs custom_id, method, url and body.", "input_file_id")
        if entry.get("method", "POST") != "POST" or entry.get("url", BATCH_ENDPOINT) != BATCH_ENDPOINT:
            raise invalid(f"{where}: only POST {BATCH_ENDPOINT} requests are supported in a batch.", "input_file_id")
        try:
            native, stream, _ = chat_request(entry["body"], headers)
        except GatewayError as exc:
            exc.detail = f"{where}: {exc.detail}"
            raise
        if stream:
            raise invalid(f"{where}: batch requests cannot stream.", "input_file_id")
        items.append({"custom_id": entry["custom_id"], "request": native})
    if not items:
        raise invalid("The input file has no requests.", "input_file_id")
    return items


def _epoch(iso_time: Any) -> int | None:
    if not isinstance(iso_time, str):
        return None
    import datetime as dt

    try:
        return int(dt.datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return None


def batch_object(native: Mapping[str, Any]) -> dict[str, Any]:
    """A native Batch → an OpenAI `batch` object."""
    counts = native.get("request_counts") or {}
    metadata = dict(native.get("metadata") or {})
    input_file = metadata.pop(INPUT_FILE_KEY, None)
    status = _BATCH_STATUS.get(native.get("status") or "", "in_progress")
    if status == "cancelled" and counts.get("pending"):
        status = "cancelling"  # a provider batch still being collected
    final = status in ("completed", "failed", "cancelled")
    done, failed = int(counts.get("completed") or 0), int(counts.get("failed") or 0)
    created = _epoch(native.get("created_at"))
    error = native.get("error")
    return {
        "id": native.get("id"), "object": "batch", "endpoint": BATCH_ENDPOINT,
        "errors": {"object": "list", "data": [{"code": error.get("code"), "message": error.get("message"), "param": None, "line": None}]}
        if isinstance(error, dict) else None,
        "input_file_id": input_file, "completion_window": "24h", "status": status,
        "output_file_id": OUTPUT_PREFIX + str(native.get("id")) if final and done else None,
        "error_file_id": ERROR_PREFIX + str(native.get("id")) if final and failed else None,
        "created_at": created, "in_progress_at": created if status != "validating" else None,
        "expires_at": _epoch(native.get("expires_at")), "finalizing_at": None, "completed_at": None,
        "failed_at": None, "expired_at": None, "cancelling_at": None, "cancelled_at": None,
        "request_counts": {"total": int(counts.get("total") or 0), "completed": done, "failed": failed},
        "metadata": metadata or None,
    }


def batch_file(native: Mapping[str, Any], errors: bool) -> str:
    """The JSONL of a batch's answers (`errors`: of its failed requests), OpenAI's output format."""
    lines = []
    for i, entry in enumerate(native.get("requests") or ()):
        rid = f"batch_req_{i}"
        if errors and entry.get("error"):
            err = entry["error"]
            status, body = error_object({"code": err.get("code"), "detail": err.get("message")})
            lines.append(dumps({"id": rid, "custom_id": entry["custom_id"],
                                "response": {"status_code": status, "request_id": rid, "body": body}, "error": None}))
        elif not errors and entry.get("result"):
            lines.append(dumps({"id": rid, "custom_id": entry["custom_id"],
                                "response": {"status_code": 200, "request_id": rid, "body": chat_response(entry["result"])}, "error": None}))
    return "".join(line + "\n" for line in lines)
