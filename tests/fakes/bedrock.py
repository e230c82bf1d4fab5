"""A fake AWS Bedrock Runtime endpoint speaking the Converse wire format.

Routes (botocore builds them from the `bedrock-runtime` service model; the model id is
URL-encoded in the path, e.g. `anthropic.claude-3-5-haiku-20241022-v1%3A0`):
  - `POST /model/{modelId}/converse`        -> a JSON `ConverseResponse`
  - `POST /model/{modelId}/converse-stream` -> `application/vnd.amazon.eventstream` frames

Event-stream frames (AWS event stream encoding): a 12-byte prelude (total length, headers
length, CRC32 of those 8 bytes), headers (`name length`, `name`, value type 7 = string,
`value length` (2 bytes), `value`), the JSON payload, and the CRC32 of everything before it.
Events carry `:event-type`, `:content-type`, `:message-type: event`; a mid-stream failure is
`:message-type: exception` with `:exception-type` (e.g. `throttlingException`).

Errors are what the service sends: a JSON body `{"message": ...}` with the `x-amzn-ErrorType`
header and the operation's status (429 ThrottlingException, 400 ValidationException,
403 AccessDeniedException, 500 InternalServerException, 503 ServiceUnavailableException).

Every request is checked for a SigV4 `Authorization` header and a JSON body; anything else is
answered with the error Bedrock would give (403 / 400), so a broken request fails loudly.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from typing import Any
from urllib.parse import unquote

from tests.fakes.script import Script
from tests.fakes.server import FakeRequest, FakeServer, Reply

MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"

FINISH_TO_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "content_filtered"}

# Script error class -> (HTTP status, x-amzn-ErrorType, message)
ERRORS = {
    "auth": (403, "AccessDeniedException", "You don't have access to the model with the specified model ID."),
    "rate_limit": (429, "ThrottlingException", "Too many requests, please wait before trying again."),
    "server": (500, "InternalServerException", "The server encountered an internal error."),
    "overloaded": (503, "ServiceUnavailableException", "The service is temporarily unable to handle the request."),
    "context_length": (400, "ValidationException", "Input is too long for requested model."),
    "bad_request": (400, "ValidationException", "1 validation error detected: Value at 'inferenceConfig.temperature' failed to satisfy constraint."),
}


# ---------------------------------------------------------------- event stream encoding


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return struct.pack(">B", len(n)) + n + struct.pack(">BH", 7, len(v)) + v


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message."""
    hdrs = b"".join(_header(k, v) for k, v in headers.items())
    total = 12 + len(hdrs) + len(payload) + 4
    prelude = struct.pack(">II", total, len(hdrs))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    message = prelude + hdrs + payload
    return message + struct.pack(">I", zlib.crc32(message) & 0xFFFFFFFF)


def event_frame(event_type: str, body: dict[str, Any]) -> bytes:
    body = {**body, "p": "abcdefghijklmnopqrstuvwxyz"[: 1 + len(event_type) % 20]}  # Bedrock pads events
    return encode_frame(
        {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
        json.dumps(body).encode(),
    )


def exception_frame(exception_type: str, message: str, **extra: Any) -> bytes:
    return encode_frame(
        {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"},
        json.dumps({"message": message, **extra}).encode(),
    )


def decode_frames(data: bytes) -> list[tuple[dict[str, str], bytes]]:
    """The inverse of `encode_frame` (for tests of the encoder itself), CRCs checked."""
    out = []
    pos = 0
    while pos < len(data):
        total, hlen, pcrc = struct.unpack(">III", data[pos : pos + 12])
        assert zlib.crc32(data[pos : pos + 8]) & 0xFFFFFFFF == pcrc
        msg = data[pos : pos + total]
        assert zlib.crc32(msg[:-4]) & 0xFFFFFFFF == struct.unpack(">I", msg[-4:])[0]
        headers: dict[str, str] = {}
        h = 12
        while h < 12 + hlen:
            nlen = msg[h]
            name = msg[h + 1 : h + 1 + nlen].decode()
            h += 1 + nlen
            vtype, vlen = struct.unpack(">BH", msg[h : h + 3])
            assert vtype == 7
            headers[name] = msg[h + 3 : h + 3 + vlen].decode()
            h += 3 + vlen
        out.append((headers, msg[12 + hlen : -4]))
        pos += total
    return out


# ---------------------------------------------------------------- the fake


class FakeBedrock(FakeServer):
    """Serves a `Script` as Bedrock Converse / ConverseStream answers."""

    # conformance features (tests/conformance/scenarios.py); Bedrock reports no reasoning-token detail
    supports = frozenset({
        "text", "multi_turn", "system", "image", "audio", "video", "document", "tools", "tool_choice",
        "tool_round_trip", "structured_output", "stop", "max_tokens", "stream", "stream_tools",
        "usage_cache", "usage_cache_write", "errors",
    })
    model_id = MODEL_ID

    def __init__(self) -> None:
        super().__init__()
        self._script = Script()
        self.violations: list[str] = []  # requests answered with a 4xx because they were malformed
        # a mid-stream exception event: (exception type, message, after N events) or None
        self.stream_exception: tuple[str, str, int] | None = None
        self.route("POST", r"/model/(?P<model>[^/]+)/converse", self._converse)
        self.route("POST", r"/model/(?P<model>[^/]+)/converse-stream", self._converse_stream)

    # ---------------------------------------------------------------- scripting
    def script(self, s: Script) -> None:
        self._script = s

    def catalog(self, caps: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        provider = {"id": "bedrock", "kind": "bedrock", "base_url": self.url, "region": "us-east-1",
                    "credential": {"aws": True}}
        model = {
            "id": f"bedrock::{self.model_id}", "lifecycle": "production", "capabilities": list(caps),
            "limits": {"context_window": 200000, "max_output_tokens": 8192},
            "pricing": {"input_per_mtok": 0.80, "output_per_mtok": 4.00, "cached_input_per_mtok": 0.08,
                        "cache_write_per_mtok": 1.00},
        }
        return provider, [model]

    # ---------------------------------------------------------------- request checks
    @property
    def calls(self) -> list[FakeRequest]:
        return [r for r in self.requests if r.path.startswith("/model/")]

    def last_body(self) -> dict[str, Any]:
        return self.calls[-1].json()

    @staticmethod
    def model_in_path(req: FakeRequest) -> str:
        m = re.match(r"/model/([^/]+)/", req.path)
        return unquote(m.group(1)) if m else ""

    def received(self, req: FakeRequest) -> dict[str, Any]:
        """The provider-neutral view of one recorded request (see tests/conformance/scenarios.py)."""
        from llm_gateway.providers.bedrock import ANSWER_TOOL

        body = req.json()
        system = [b["text"] for b in body.get("system") or () if "text" in b]
        parts: list[str] = []
        texts: list[str] = []
        for m in body["messages"]:
            for block in m["content"]:
                kind = next(iter(block))
                if kind == "toolResult":
                    parts.append("tool:tool_result")
                elif kind == "toolUse":
                    parts.append(f"{m['role']}:tool_call")
                else:
                    parts.append(f"{m['role']}:{kind}")
                    if kind == "text":
                        texts.append(block["text"])
        cfg = body.get("toolConfig") or {}
        names = [t["toolSpec"]["name"] for t in cfg.get("tools", []) if "toolSpec" in t]
        answer = [n for n in names if n.rstrip("_") == ANSWER_TOOL]
        choice = cfg.get("toolChoice") or {}
        tool_choice = ("auto" if "auto" in choice else "required" if "any" in choice
                       else choice["tool"]["name"] if "tool" in choice else None)
        if answer and tool_choice == answer[0]:
            tool_choice = None  # the structured-output answer tool, not the caller's choice
        inference = body.get("inferenceConfig") or {}
        return {
            "system": "\n".join(system) if system else None,
            "parts": parts,
            "texts": texts,
            "tools": [n for n in names if n not in answer],
            "tool_choice": tool_choice,
            "schema": bool(answer) or "outputConfig" in body,
            "stream": req.path.endswith("/converse-stream"),
            "max_tokens": inference.get("maxTokens"),
            "stop": inference.get("stopSequences"),
            "temperature": inference.get("temperature"),
        }

    def _check(self, req: FakeRequest) -> Reply | None:
        reply = self._check_request(req)
        if reply is not None:
            self.violations.append(f"{req.method} {req.path}: {reply.json['message']}")
        return reply

    def _check_request(self, req: FakeRequest) -> Reply | None:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 Credential=") or "/bedrock/aws4_request" not in auth or "x-amz-date" not in req.headers:
            return _error(403, "UnrecognizedClientException", "The security token included in the request is invalid.")
        if ":" in req.path:  # botocore URL-encodes the model id (':' -> %3A)
            return _error(400, "ValidationException", "The model id in the path is not URL-encoded.")
        try:
            body = req.json()
        except ValueError:
            return _error(400, "SerializationException", "The body is not JSON.")
        if not isinstance(body, dict) or not body.get("messages"):
            return _error(400, "ValidationException", "1 validation error detected: 'messages' must not be null.")
        if "modelId" in body:
            return _error(400, "ValidationException", "modelId belongs in the path, not the body.")
        return None

    def _script_error(self, s: Script) -> Reply | None:
        if s.error is None:
            return None
        status, code, message = ERRORS[s.error]
        reply = _error(status, code, message)
        if s.retry_after is not None:
            reply.headers["Retry-After"] = str(s.retry_after)
        reply.delay_s = s.delay_s
        return reply

    # ---------------------------------------------------------------- answers
    def _answer_tool(self, body: dict[str, Any]) -> str | None:
        """The forced answer tool of a structured-output request, when the script answers in text."""
        from llm_gateway.providers.bedrock import ANSWER_TOOL

        tools = [t["toolSpec"]["name"] for t in (body.get("toolConfig") or {}).get("tools", []) if "toolSpec" in t]
        names = [n for n in tools if n.rstrip("_") == ANSWER_TOOL]
        return names[0] if names else None

    def _blocks(self, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
        """Content blocks and the stop reason the script gives for this request."""
        s = self._script
        blocks: list[dict[str, Any]] = []
        answer = self._answer_tool(body)
        stop = FINISH_TO_STOP.get(s.finish, "end_turn")
        if answer and not s.tool_calls and s.text is not None:
            value = json.loads(s.text)
            spec = next(t["toolSpec"] for t in body["toolConfig"]["tools"] if t.get("toolSpec", {}).get("name") == answer)
            schema = spec["inputSchema"]["json"]
            if list(schema.get("properties") or {}) == ["value"] and schema.get("required") == ["value"]:
                value = {"value": value}  # the adapter wraps non-object schemas
            blocks.append({"toolUse": {"toolUseId": "tooluse_answer0001", "name": answer, "input": value}})
            return blocks, "tool_use"
        if s.text:
            blocks.append({"text": s.text})
        for tc in s.tool_calls:
            blocks.append({"toolUse": {"toolUseId": tc["id"], "name": tc["name"], "input": tc.get("arguments", {})}})
        return blocks, stop

    def _usage(self) -> dict[str, int]:
        s = self._script
        fresh = s.input_tokens - s.cached_tokens - s.cache_write_tokens  # Bedrock's inputTokens excludes the cache
        usage = {"inputTokens": fresh, "outputTokens": s.output_tokens, "totalTokens": s.input_tokens + s.output_tokens}
        if s.cached_tokens or s.cache_write_tokens:
            usage["cacheReadInputTokens"] = s.cached_tokens
            usage["cacheWriteInputTokens"] = s.cache_write_tokens
        return usage

    def _converse(self, req: FakeRequest) -> Reply:
        bad = self._check(req) or self._script_error(self._script)
        if bad:
            return bad
        blocks, stop = self._blocks(req.json())
        return Reply(
            200,
            json={"output": {"message": {"role": "assistant", "content": blocks}}, "stopReason": stop,
                  "usage": self._usage(), "metrics": {"latencyMs": 42}},
            headers={"x-amzn-RequestId": "fake-request-0001"},
            delay_s=self._script.delay_s,
        )

    def stream_frames(self, body: dict[str, Any]) -> list[bytes]:
        blocks, stop = self._blocks(body)
        frames = [event_frame("messageStart", {"role": "assistant"})]
        for i, block in enumerate(blocks):
            if "text" in block:
                text = block["text"]
                pieces = re.findall(r"\S+\s*|\s+", text) or [text]
                for piece in pieces:
                    frames.append(event_frame("contentBlockDelta", {"contentBlockIndex": i, "delta": {"text": piece}}))
            else:
                tu = block["toolUse"]
                frames.append(event_frame("contentBlockStart", {"contentBlockIndex": i, "start": {
                    "toolUse": {"toolUseId": tu["toolUseId"], "name": tu["name"]}}}))
                args = json.dumps(tu["input"])
                for j in range(0, len(args), 12):
                    frames.append(event_frame("contentBlockDelta", {"contentBlockIndex": i,
                                                                   "delta": {"toolUse": {"input": args[j : j + 12]}}}))
            frames.append(event_frame("contentBlockStop", {"contentBlockIndex": i}))
        frames.append(event_frame("messageStop", {"stopReason": stop}))
        frames.append(event_frame("metadata", {"usage": self._usage(), "metrics": {"latencyMs": 42}}))
        if self.stream_exception is not None:
            kind, message, after = self.stream_exception
            frames = frames[:after] + [exception_frame(kind, message)]
        return frames

    def _converse_stream(self, req: FakeRequest) -> Reply:
        bad = self._check(req) or self._script_error(self._script)
        if bad:
            return bad
        s = self._script
        return Reply(
            200,
            chunks=self.stream_frames(req.json()),
            headers={"Content-Type": "application/vnd.amazon.eventstream", "x-amzn-RequestId": "fake-request-0002"},
            delay_s=s.delay_s,
            chunk_delay_s=s.chunk_delay_s,
            stall_after=s.stall_after_chunks,
            cut_after=s.cut_after_chunks,
            stall_s=30.0,  # released at once when the fake stops
        )


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(
        status,
        json={"message": message},
        headers={"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                 "x-amzn-RequestId": "fake-request-err"},
    )
