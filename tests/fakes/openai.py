"""A fake OpenAI Chat Completions API (`POST /v1/chat/completions`) speaking OpenAI's wire format.

It answers a provider-neutral `Script`:
  - buffered: a `chat.completion` object (`choices[0].message` with `content` / `tool_calls`,
    `finish_reason`, `usage` with `prompt_tokens_details.cached_tokens` and
    `completion_tokens_details.reasoning_tokens`);
  - streamed: `chat.completion.chunk` SSE events — a role chunk, content fragments, tool-call
    fragments (id + name first, then argument pieces), a finish chunk, then (the request must
    set `stream_options.include_usage`) a usage chunk with empty `choices`, then `data: [DONE]`.
    Every chunk before the usage one carries `"usage": null`, as OpenAI sends it;
  - each error class of `ERROR_CLASSES` with OpenAI's status and `{"error": {message, type,
    param, code}}` body (429s with `retry-after` and `x-ratelimit-*` headers).

Every request is checked the way the real API checks it — path, `Authorization: Bearer`,
JSON body, known top-level fields, message roles and content-part shapes (image_url,
input_audio wav/mp3 base64, file with file_data data URL + filename), tool messages answering a
preceding assistant tool call, tools / tool_choice / response_format shapes, ≤ 4 stop
sequences, parameter ranges. A bad request gets OpenAI's 400 `invalid_request_error` and is
listed in `violations`, so tests can assert there were none.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

from tests.fakes.script import Script
from tests.fakes.server import FakeRequest, FakeServer, Reply

API_KEY = "sk-proj-fake-openai-key-0123456789abcdef"
KEY_ENV = "FAKE_OPENAI_API_KEY"
MODEL = "gpt-fake-4o"
CREATED = 1767225600

FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "content_filter": "content_filter"}

# error class -> (HTTP status, type, code, param, message)
ERRORS: dict[str, tuple[int, str, str | None, str | None, str]] = {
    "auth": (401, "invalid_request_error", "invalid_api_key", None,
             "Incorrect API key provided: sk-proj-****cdef. You can find your API key at https://platform.openai.com/account/api-keys."),
    "rate_limit": (429, "requests", "rate_limit_exceeded", None,
                   "Rate limit reached for gpt-fake-4o in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1. "
                   "Please try again in 20s."),
    "server": (500, "server_error", None, None, "The server had an error while processing your request. Sorry about that!"),
    "overloaded": (503, "server_error", None, None, "The engine is currently overloaded, please try again later."),
    "context_length": (400, "invalid_request_error", "context_length_exceeded", "messages",
                       "This model's maximum context length is 128000 tokens. However, your messages resulted in 130417 tokens. "
                       "Please reduce the length of the messages."),
    "bad_request": (400, "invalid_request_error", None, None, "Unrecognized request argument supplied: frobnicate"),
}

TOP_LEVEL = frozenset({
    "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "metadata", "modalities", "n", "parallel_tool_calls", "prediction",
    "presence_penalty", "prompt_cache_key", "reasoning_effort", "response_format", "safety_identifier", "seed",
    "service_tier", "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
    "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
})
ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
USER_PARTS = frozenset({"text", "image_url", "input_audio", "file"})


def error_body(kind: str) -> tuple[int, dict[str, Any]]:
    status, etype, code, param, message = ERRORS[kind]
    return status, {"error": {"message": message, "type": etype, "param": param, "code": code}}


def invalid(message: str, param: str | None = None) -> Reply:
    return Reply(400, json={"error": {"message": message, "type": "invalid_request_error", "param": param, "code": None}})


def _usage(s: Script) -> dict[str, Any]:
    return {
        "prompt_tokens": s.input_tokens,
        "completion_tokens": s.output_tokens,
        "total_tokens": s.input_tokens + s.output_tokens,
        "prompt_tokens_details": {"cached_tokens": s.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": s.reasoning_tokens, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def _wire_tool_calls(s: Script) -> list[dict[str, Any]]:
    return [{"id": tc["id"], "type": "function",
             "function": {"name": tc["name"], "arguments": json.dumps(tc["arguments"])}} for tc in s.tool_calls]


def render_completion(s: Script, model: str = MODEL) -> dict[str, Any]:
    """The buffered `chat.completion` object for a script."""
    message: dict[str, Any] = {"role": "assistant", "content": s.text, "refusal": None, "annotations": []}
    if s.tool_calls:
        message["tool_calls"] = _wire_tool_calls(s)
    return {
        "id": "chatcmpl-fake0001", "object": "chat.completion", "created": CREATED, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": FINISH[s.finish]}],
        "usage": _usage(s), "service_tier": "default", "system_fingerprint": "fp_fake",
    }


def _split(text: str, size: int = 3) -> list[str]:
    """Word-ish fragments, the way the API streams tokens (always rejoin to the exact text)."""
    words = text.split(" ")
    out = []
    for i in range(0, len(words), size):
        piece = " ".join(words[i : i + size])
        out.append(piece if i + size >= len(words) else piece + " ")
    return [p for p in out if p]


def render_chunks(s: Script, model: str = MODEL, *, include_usage: bool = True) -> list[dict[str, Any]]:
    """The `chat.completion.chunk` objects for a script (before `[DONE]`)."""
    base = {"id": "chatcmpl-fake0001", "object": "chat.completion.chunk", "created": CREATED, "model": model,
            "service_tier": "default", "system_fingerprint": "fp_fake"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        out = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if include_usage:
            out["usage"] = None
        return out

    chunks = [chunk({"role": "assistant", "content": "" if s.text is not None else None, "refusal": None})]
    for piece in _split(s.text or ""):
        chunks.append(chunk({"content": piece}))
    for i, tc in enumerate(s.tool_calls):
        chunks.append(chunk({"tool_calls": [{"index": i, "id": tc["id"], "type": "function",
                                             "function": {"name": tc["name"], "arguments": ""}}]}))
        args = json.dumps(tc["arguments"])
        for j in range(0, len(args), 8):
            chunks.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": args[j : j + 8]}}]}))
    chunks.append(chunk({}, FINISH[s.finish]))
    if include_usage:
        chunks.append({**base, "choices": [], "usage": _usage(s)})
    return chunks


def render_stream(s: Script, model: str = MODEL, *, include_usage: bool = True) -> list[bytes]:
    """The SSE byte frames (`data: {...}` … `data: [DONE]`) for a script."""
    frames = [f"data: {json.dumps(c, separators=(',', ':'))}\n\n".encode() for c in render_chunks(s, model, include_usage=include_usage)]
    frames.append(b"data: [DONE]\n\n")
    return frames


def _b64(value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


class FakeOpenAI(FakeServer):
    provider_id = "openai"
    kind = "openai"
    model = MODEL
    key_env = KEY_ENV
    api_key: str | None = API_KEY
    max_tokens_field = "max_completion_tokens"
    supports = frozenset({
        "text", "multi_turn", "system", "image", "audio", "document", "tools", "tool_choice", "tool_round_trip",
        "structured_output", "stop", "max_tokens", "stream", "stream_tools", "usage_cache", "usage_reasoning", "errors",
    })

    def __init__(self, script: Script | None = None) -> None:
        super().__init__()
        self._script = script or Script()
        self.violations: list[str] = []
        self.route("POST", "/v1/chat/completions", self._completions)

    # ---------------------------------------------------------------- suite interface
    def script(self, s: Script) -> "FakeOpenAI":
        self._script = s
        return self

    def catalog(self, caps: list[str] | None = None, *, options: dict[str, Any] | None = None,
                provider_options: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        credential: dict[str, Any] = {"env": self.key_env}
        if self.api_key:
            os.environ[self.key_env] = self.api_key
        else:
            os.environ.pop(self.key_env, None)
            credential["optional"] = True
        provider = {"id": self.provider_id, "kind": self.kind, "base_url": self.url + "/v1", "credential": credential}
        if provider_options:
            provider["options"] = provider_options
        model = {
            "id": f"{self.provider_id}::{self.model}",
            "capabilities": list(caps or ["chat", "stream", "tools", "structured_output", "vision", "audio_in", "documents"]),
            "limits": {"context_window": 128000, "max_output_tokens": 16384},
            "pricing": {"input_per_mtok": 2.5, "output_per_mtok": 10.0, "cached_input_per_mtok": 1.25},
        }
        if options:
            model["options"] = options
        return provider, [model]

    @property
    def calls(self) -> list[FakeRequest]:
        return [r for r in self.requests if r.path == "/v1/chat/completions"]

    def last_body(self) -> dict[str, Any]:
        return self.calls[-1].json()

    @staticmethod
    def received(req: FakeRequest) -> dict[str, Any]:
        """The provider-neutral view of a recorded request (see tests/conformance/scenarios.py)."""
        body = req.json()
        system: list[str] = []
        parts: list[str] = []
        texts: list[str] = []
        kinds = {"text": "text", "image_url": "image", "input_audio": "audio", "file": "document"}
        for m in body.get("messages", []):
            role, content = m["role"], m.get("content")
            if role in ("system", "developer"):
                system.append(content if isinstance(content, str) else "".join(p.get("text", "") for p in content))
                continue
            if role == "tool":
                parts.append("tool:tool_result")
                continue
            if isinstance(content, str):
                if content:
                    parts.append(f"{role}:text")
                    texts.append(content)
            elif isinstance(content, list):
                for p in content:
                    parts.append(f"{role}:{kinds.get(p.get('type'), p.get('type'))}")
                    if p.get("type") == "text":
                        texts.append(p["text"])
            for _ in m.get("tool_calls") or ():
                parts.append(f"{role}:tool_call")
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            choice = (choice.get("function") or {}).get("name")
        stop = body.get("stop")
        return {
            "system": "\n".join(system) if system else None,
            "parts": parts,
            "texts": texts,
            "tools": [t["function"]["name"] for t in body.get("tools") or []],
            "tool_choice": choice,
            "schema": (body.get("response_format") or {}).get("type") in ("json_schema", "json_object"),
            "stream": bool(body.get("stream")),
            "max_tokens": body.get("max_completion_tokens", body.get("max_tokens")),
            "stop": [stop] if isinstance(stop, str) else stop,
            "temperature": body.get("temperature"),
        }

    # ---------------------------------------------------------------- request checks
    def check(self, req: FakeRequest) -> str | None:
        """The first thing the API would reject in this request, or None ("auth" for a bad key)."""
        if self.api_key and req.headers.get("authorization") != f"Bearer {self.api_key}":
            return "auth"
        if not (req.headers.get("content-type") or "").startswith("application/json"):
            return "Content-Type must be application/json"
        try:
            body = req.json()
        except ValueError:
            return "We could not parse the JSON body of your request."
        if not isinstance(body, dict):
            return "The request body must be a JSON object."
        unknown = set(body) - TOP_LEVEL
        if unknown:
            return f"Unrecognized request argument supplied: {sorted(unknown)[0]}"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "you must provide a model parameter"
        if self.max_tokens_field == "max_completion_tokens" and "max_tokens" in body:
            return "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
        for name, lo, hi in (("temperature", 0, 2), ("top_p", 0, 1)):
            v = body.get(name)
            if v is not None and not (isinstance(v, (int, float)) and lo <= v <= hi):
                return f"Invalid '{name}': must be between {lo} and {hi}."
        stop = body.get("stop")
        if stop is not None:
            if isinstance(stop, str):
                stop = [stop]
            if not isinstance(stop, list) or not all(isinstance(x, str) for x in stop) or len(stop) > 4:
                return "Invalid 'stop': expected a string or an array of at most 4 strings."
        if body.get("stream"):
            if (body.get("stream_options") or {}).get("include_usage") is not True:
                return "stream_options.include_usage must be set (the gateway always asks for usage)"
        elif "stream_options" in body:
            return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
        tool_names: set[str] = set()
        for i, tool in enumerate(body.get("tools") or []):
            fn = tool.get("function") if isinstance(tool, dict) else None
            if tool.get("type") != "function" or not isinstance(fn, dict) or not fn.get("name"):
                return f"Invalid 'tools[{i}]': expected a function tool with a name."
            if not isinstance(fn.get("parameters", {}), dict):
                return f"Invalid 'tools[{i}].function.parameters': expected an object."
            tool_names.add(fn["name"])
        choice = body.get("tool_choice")
        if choice is not None:
            if not tool_names:
                return "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified."
            if isinstance(choice, str):
                if choice not in ("auto", "none", "required"):
                    return f"Invalid 'tool_choice': {choice!r}"
            elif not (isinstance(choice, dict) and choice.get("type") == "function"
                      and (choice.get("function") or {}).get("name") in tool_names):
                return "Invalid 'tool_choice': the named function is not in 'tools'."
        rf = body.get("response_format")
        if rf is not None:
            if rf.get("type") == "json_schema":
                js = rf.get("json_schema") or {}
                if not js.get("name") or not isinstance(js.get("schema"), dict):
                    return "Missing required parameter: 'response_format.json_schema.name' / 'schema'."
                if js.get("strict") and not _strict_ok(js["schema"]):
                    return "Invalid schema for response_format: In context=(), 'additionalProperties' is required to be supplied and to be false."
            elif rf.get("type") not in ("text", "json_object"):
                return "Invalid 'response_format.type'."
        return self._check_messages(body.get("messages"))

    def _check_messages(self, messages: Any) -> str | None:
        if not isinstance(messages, list) or not messages:
            return "Invalid 'messages': empty array. Expected an array with minimum length 1."
        pending: set[str] = set()
        for i, m in enumerate(messages):
            where = f"messages[{i}]"
            role = m.get("role") if isinstance(m, dict) else None
            if role not in ROLES:
                return f"Invalid value for '{where}.role'."
            content = m.get("content")
            if role == "tool":
                if m.get("tool_call_id") not in pending:
                    return (f"Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                            f"with 'tool_calls' ({where}).")
                pending.discard(m["tool_call_id"])
                if not isinstance(content, str):
                    return f"Invalid type for '{where}.content': expected a string."
                continue
            if pending:
                return ("An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                        f"'tool_call_id'. The following tool_call_ids did not have response messages: {sorted(pending)[0]}")
            if role == "assistant":
                for j, tc in enumerate(m.get("tool_calls") or []):
                    fn = tc.get("function") or {}
                    if not tc.get("id") or tc.get("type") != "function" or not fn.get("name") or not isinstance(fn.get("arguments"), str):
                        return f"Invalid '{where}.tool_calls[{j}]'."
                    pending.add(tc["id"])
                if content is None and not m.get("tool_calls"):
                    return f"Invalid '{where}': assistant content is required unless tool_calls are given."
                if content is not None and not isinstance(content, str):
                    return f"Invalid type for '{where}.content': the fake expects a string."
                continue
            if role in ("system", "developer"):
                if not isinstance(content, str) and not (isinstance(content, list) and all(p.get("type") == "text" for p in content)):
                    return f"Invalid '{where}.content': system messages take text only."
                continue
            # user
            if isinstance(content, str):
                continue
            if not isinstance(content, list) or not content:
                return f"Invalid '{where}.content': expected a string or a non-empty array of parts."
            for j, p in enumerate(content):
                problem = _check_user_part(p, f"{where}.content[{j}]")
                if problem:
                    return problem
        if pending:
            return f"Missing tool messages for tool_call_ids: {sorted(pending)}"
        return None

    # ---------------------------------------------------------------- answers
    def _completions(self, req: FakeRequest) -> Reply:
        problem = self.check(req)
        if problem == "auth":
            self.violations.append("Authorization: Bearer key missing or wrong")
            return self.error_reply("auth", self._script)
        if problem:
            self.violations.append(problem)
            return invalid(problem)
        s = self._script
        if s.error:
            return self.error_reply(s.error, s)
        body = req.json()
        model = body["model"]
        if not body.get("stream"):
            return Reply(200, json=render_completion(s, model), delay_s=s.delay_s,
                         headers={"x-request-id": "req_fake", "openai-processing-ms": "12"})
        return Reply(200, chunks=render_stream(s, model), headers={"Content-Type": "text/event-stream; charset=utf-8"},
                     delay_s=s.delay_s, chunk_delay_s=s.chunk_delay_s, stall_after=s.stall_after_chunks,
                     cut_after=s.cut_after_chunks)

    def error_reply(self, kind: str, s: Script) -> Reply:
        status, body = error_body(kind)
        headers = {"x-request-id": "req_fake"}
        if kind == "rate_limit":
            headers.update({"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "0",
                            "x-ratelimit-reset-requests": "20s"})
            if s.retry_after is not None:
                headers["retry-after"] = str(s.retry_after)
        return Reply(status, json=body, headers=headers)


class FakeOpenAICompatible(FakeOpenAI):
    """An OpenAI-compatible server (vLLM-like): `max_tokens`, no key, text/image/tools only."""

    provider_id = "local-compat"
    kind = "openai_compatible"
    model = "meta-llama/Llama-fake-8B-Instruct"
    key_env = "FAKE_COMPAT_API_KEY"
    api_key = None
    max_tokens_field = "max_tokens"
    supports = frozenset({
        "text", "multi_turn", "system", "image", "tools", "tool_choice", "tool_round_trip", "structured_output",
        "stop", "max_tokens", "stream", "stream_tools", "usage_cache", "errors",
    })

    def check(self, req: FakeRequest) -> str | None:
        body = req.json() if req.body else {}
        if isinstance(body, dict) and "max_completion_tokens" in body:
            return "Unrecognized request argument supplied: max_completion_tokens"
        return super().check(req)


def _check_user_part(p: Any, where: str) -> str | None:
    if not isinstance(p, dict) or p.get("type") not in USER_PARTS:
        return f"Invalid '{where}.type'."
    kind = p["type"]
    if kind == "text":
        return None if isinstance(p.get("text"), str) else f"Missing required parameter: '{where}.text'."
    if kind == "image_url":
        url = (p.get("image_url") or {}).get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://", "data:image/")):
            return f"Invalid '{where}.image_url.url': expected a URL or a base64 data URL of an image."
        if url.startswith("data:"):
            head, _, data = url.partition(",")
            if not head.endswith(";base64") or not _b64(data):
                return f"Invalid '{where}.image_url.url': invalid base64 image data."
        return None
    if kind == "input_audio":
        audio = p.get("input_audio") or {}
        if audio.get("format") not in ("wav", "mp3"):
            return f"Invalid value: '{where}.input_audio.format'. Supported values are: 'wav' and 'mp3'."
        if not _b64(audio.get("data")):
            return f"Invalid '{where}.input_audio.data': expected base64-encoded audio."
        return None
    f = p.get("file") or {}
    if "file_id" in f:
        return None
    data = f.get("file_data")
    if not isinstance(data, str) or not data.startswith("data:application/pdf;base64,") or not _b64(data.split(",", 1)[1]):
        return f"Invalid '{where}.file.file_data': expected a base64 PDF data URL."
    if not f.get("filename"):
        return f"Missing required parameter: '{where}.file.filename'."
    return None


def _strict_ok(schema: Any) -> bool:
    if not isinstance(schema, dict):
        return False
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False or set(schema.get("required") or ()) != set(props):
            return False
        if not all(_strict_ok(v) for v in props.values()):
            return False
    if "items" in schema and not _strict_ok(schema["items"]):
        return False
    return all(_strict_ok(v) for v in schema.get("anyOf", []))
