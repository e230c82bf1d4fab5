"""The conformance scenarios — the ONE place that says what every provider must produce.

Each scenario is a normalized gateway request, the provider-neutral answer the fake provider is
scripted to give (`tests.fakes.script.Script`), and the normalized result the gateway must return
for it. Every provider registered in `tests/fakes/registry.py` is run through the same scenarios,
so all adapters are held to exactly the same expectation; `test_conformance.py` runs them and
`matrix.py` prints the provider × feature matrix from the same data.

Feature kinds:
  - "request": the feature is something the *request* asks for. A provider whose fake lists it in
    `supports` must give the expected result; one that does not must answer 422
    `capability_not_supported` before any provider call — even though its catalog entry claims
    every capability, so the adapter itself (not only the registry) has to refuse.
  - "report": something the provider may or may not report (usage detail). Supported: the exact
    value must come through; unsupported: the cell is skipped (nothing to refuse).
  - "always": every provider must pass (error mapping, stream faults).

The fake interface (see `tests/fakes/registry.py`): `supports`, `script(s)`, `catalog(caps)`, plus
these optional members the suite uses when present:
  - `received(req: FakeRequest) -> dict`: the provider-neutral view of one recorded provider
    request — `{"system": str | None, "parts": ["user:text", "user:image", "assistant:tool_call",
    "tool:tool_result", ...] (in order; tool results are "tool:" whatever role carries them),
    "texts": [user/assistant text, in order], "tools": [names], "tool_choice": "auto" | "none" |
    "required" | "<tool name>" | None, "schema": bool (response schema sent natively),
    "stream": bool, "max_tokens": int | None, "stop": [str] | None, "temperature": float | None}`.
    Scenarios compare only the keys they name, and only the keys the fake returns.
  - `violations: list[str]`: requests the fake rejected as malformed; must stay empty.
  - `provider_id: str`: defaults to the provider part of the catalog model id.
"""

from __future__ import annotations

import base64
import io
import struct
import wave
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

from tests.fakes.script import ERROR_CLASSES, Script

# ---------------------------------------------------------------- features


@dataclass(frozen=True)
class Feature:
    name: str
    title: str
    kind: str = "request"  # request | report | always
    capability: str | None = None  # catalog capability the request needs


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in (
        Feature("text", "Text in, text out"),
        Feature("multi_turn", "Multi-turn history"),
        Feature("system", "System prompt"),
        Feature("image", "Image input", capability="vision"),
        Feature("audio", "Audio input", capability="audio_in"),
        Feature("video", "Video input", capability="video_in"),
        Feature("document", "Document (PDF) input", capability="documents"),
        Feature("tools", "Tool call", capability="tools"),
        Feature("tool_choice", "Forced tool choice", capability="tools"),
        Feature("tool_round_trip", "Tool call → tool result → answer", capability="tools"),
        Feature("structured_output", "Structured output (response_schema)", capability="structured_output"),
        Feature("stop", "Stop sequences"),
        Feature("max_tokens", "max_tokens → finish `length`"),
        Feature("stream", "Streaming text", capability="stream"),
        Feature("stream_tools", "Streaming tool calls", capability="stream"),
        Feature("usage_cache", "Usage: cached input tokens", kind="report"),
        Feature("usage_cache_write", "Usage: cache-write tokens", kind="report"),
        Feature("usage_reasoning", "Usage: reasoning tokens", kind="report"),
        Feature("errors", "Error classes → gateway codes", kind="always"),
    )
}

# Every capability a request feature can need: unsupported cells are run against a catalog
# entry that claims all of them, so the adapter must refuse on its own.
ALL_CAPABILITIES = ["chat", "stream", "tools", "structured_output", "vision", "audio_in", "video_in", "documents"]

# The price list every fake's model is given, so cost is checked the same way everywhere.
PRICING = {"input_per_mtok": 2.0, "output_per_mtok": 8.0, "cached_input_per_mtok": 0.5, "cache_write_per_mtok": 2.5}

# Error class -> (gateway code, HTTP status): the same for every provider.
ERROR_EXPECT: dict[str, tuple[str, int]] = {
    "auth": ("provider_error", 502),
    "rate_limit": ("rate_limited", 429),
    "server": ("provider_error", 502),
    "overloaded": ("provider_error", 502),
    "context_length": ("validation_error", 400),
    "bad_request": ("provider_error", 502),
}
assert set(ERROR_EXPECT) == set(ERROR_CLASSES)
RETRY_AFTER_S = 7

# ---------------------------------------------------------------- sample media (tiny, real files)


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b"")


def _wav() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)
    return buf.getvalue()


_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)
_MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00\x00\x00\x08free"


def data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


# Media travel as data: URLs, so every provider can take the bytes without the media-fetch step.
MEDIA = {
    "image": ("image/png", _png()),
    "audio": ("audio/wav", _wav()),
    "video": ("video/mp4", _MP4),
    "document": ("application/pdf", _PDF),
}

# ---------------------------------------------------------------- request helpers


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


def msg(role: str, *parts: dict[str, Any] | str) -> dict[str, Any]:
    return {"role": role, "content": [text(p) if isinstance(p, str) else p for p in parts]}


WEATHER_TOOL = {
    "type": "unified",
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {"json_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city", "unit"],
        "additionalProperties": False,
    }},
}
TIME_TOOL = {
    "type": "unified",
    "name": "get_time",
    "description": "Current local time in a city.",
    "parameters": {"json_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False,
    }},
}
WEATHER_CALL = {"id": "call_weather_1", "name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}
TIME_CALL = {"id": "call_time_2", "name": "get_time", "arguments": {"city": "Paris"}}

CITY_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "temp_c": {"type": "number"}, "sunny": {"type": "boolean"}},
    "required": ["city", "temp_c", "sunny"],
    "additionalProperties": False,
}
CITY_ANSWER = {"city": "Paris", "temp_c": 18.5, "sunny": True}

LONG_TEXT = "The quick brown fox jumps over the lazy dog, then naps in the warm afternoon sun."

# ---------------------------------------------------------------- expectations


@dataclass(frozen=True)
class Expect:
    """The normalized result. `text` is the concatenated text content; `json` (when set) is that
    text parsed; `tool_calls` compare name and arguments (ids must be non-empty strings)."""

    text: str | None = ""
    json: Any = None
    tool_calls: tuple[dict[str, Any], ...] = ()
    finish: str = "stop"


@dataclass(frozen=True)
class Step:
    """One request/answer exchange. `request(prev)` builds the request body (no model) from the
    previous step's normalized result (`{"text", "tool_calls"}`) — the tool round trip needs it."""

    request: Callable[[dict[str, Any] | None], dict[str, Any]]
    script: Script
    expect: Expect
    received: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    feature: str
    steps: tuple[Step, ...]
    stream: bool = False


def _script(**kw: Any) -> Script:
    return Script(**kw)


def usage_expect(s: Script, reports: set[str]) -> dict[str, int]:
    """The usage body (cost aside) a script must produce, given the usage details a provider reports."""
    out = {"input_tokens": s.input_tokens, "output_tokens": s.output_tokens}
    if "usage_cache" in reports and s.cached_tokens:
        out["cached_input_tokens"] = s.cached_tokens
    if "usage_cache_write" in reports and s.cache_write_tokens:
        out["cache_write_tokens"] = s.cache_write_tokens
    if "usage_reasoning" in reports and s.reasoning_tokens:
        out["reasoning_tokens"] = s.reasoning_tokens
    return out


HELLO = "Hello! Nice to meet you, traveller."


def _one(request: dict[str, Any], script: Script, expect: Expect, received: dict[str, Any] | None = None,
         *, feature: str, stream: bool = False) -> Scenario:
    body = {**request, **({"stream": True} if stream else {})}
    return Scenario(feature, (Step(lambda _prev, b=body: b, script, expect, received or {}),), stream=stream)


def _round_trip_second(prev: dict[str, Any] | None) -> dict[str, Any]:
    assert prev is not None and prev["tool_calls"], "the first step must have produced a tool call"
    call = prev["tool_calls"][0]
    return {
        "messages": [
            msg("user", "What's the weather in Paris?"),
            {"role": "assistant", "content": [{"type": "tool_call", "tool_call": call}]},
            {"role": "tool", "content": [{"type": "tool_result", "tool_result": {"tool_call_id": call["id"], "content": '{"temp_c": 18.5, "sky": "clear"}'}}]},
        ],
        "tools": [WEATHER_TOOL],
    }


def scenarios() -> dict[str, Scenario]:
    """Feature name -> its scenario (request features and report features)."""
    s: dict[str, Scenario] = {}
    s["text"] = _one({"messages": [msg("user", "Say hello.")]}, _script(text=HELLO), Expect(text=HELLO),
                     {"system": None, "parts": ["user:text"], "texts": ["Say hello."]}, feature="text")
    s["multi_turn"] = _one(
        {"messages": [msg("user", "My name is Ada."), msg("assistant", "Nice to meet you, Ada."), msg("user", "What is my name?")]},
        _script(text="Your name is Ada."), Expect(text="Your name is Ada."),
        {"parts": ["user:text", "assistant:text", "user:text"],
         "texts": ["My name is Ada.", "Nice to meet you, Ada.", "What is my name?"]},
        feature="multi_turn")
    s["system"] = _one(
        {"messages": [msg("system", "You answer in one word."), msg("user", "Capital of France?")]},
        _script(text="Paris."), Expect(text="Paris."),
        {"system": "You answer in one word.", "parts": ["user:text"], "texts": ["Capital of France?"]}, feature="system")
    for kind, (mt, data) in MEDIA.items():
        s[kind] = _one(
            {"messages": [msg("user", f"Describe this {kind}.", {"type": kind, "url": data_url(mt, data)})]},
            _script(text=f"A tiny test {kind}."), Expect(text=f"A tiny test {kind}."),
            {"parts": ["user:text", f"user:{kind}"]}, feature=kind)
    s["tools"] = _one(
        {"messages": [msg("user", "What's the weather in Paris?")], "tools": [WEATHER_TOOL, TIME_TOOL]},
        _script(text=None, tool_calls=[WEATHER_CALL], finish="tool_calls", output_tokens=18),
        Expect(text="", tool_calls=({"name": "get_weather", "arguments": WEATHER_CALL["arguments"]},), finish="tool_calls"),
        {"tools": ["get_weather", "get_time"], "parts": ["user:text"]}, feature="tools")
    s["tool_choice"] = _one(
        {"messages": [msg("user", "Weather and time in Paris?")], "tools": [WEATHER_TOOL, TIME_TOOL],
         "tool_choice": {"type": "tool", "name": "get_time"}},
        _script(text=None, tool_calls=[TIME_CALL], finish="tool_calls", output_tokens=12),
        Expect(text="", tool_calls=({"name": "get_time", "arguments": TIME_CALL["arguments"]},), finish="tool_calls"),
        {"tools": ["get_weather", "get_time"], "tool_choice": "get_time"}, feature="tool_choice")
    first = s["tools"].steps[0]
    first = Step(lambda _p: {"messages": [msg("user", "What's the weather in Paris?")], "tools": [WEATHER_TOOL]},
                 first.script, Expect(text="", tool_calls=first.expect.tool_calls[:1], finish="tool_calls"),
                 {"tools": ["get_weather"]})
    s["tool_round_trip"] = Scenario("tool_round_trip", (
        first,
        Step(_round_trip_second, _script(text="It is 18.5 °C and clear in Paris.", input_tokens=42, output_tokens=12),
             Expect(text="It is 18.5 °C and clear in Paris."),
             {"parts": ["user:text", "assistant:tool_call", "tool:tool_result"], "tools": ["get_weather"]}),
    ))
    s["structured_output"] = _one(
        {"messages": [msg("user", "Weather in Paris as JSON.")], "response_schema": {"json_schema": CITY_SCHEMA}},
        _script(text='{"city": "Paris", "temp_c": 18.5, "sunny": true}'), Expect(text=None, json=CITY_ANSWER),
        {"schema": True}, feature="structured_output")
    s["stop"] = _one(
        {"messages": [msg("user", "Count to five.")], "stop": ["6", "six"], "temperature": 0.2},
        _script(text="1 2 3 4 5"), Expect(text="1 2 3 4 5"),
        {"stop": ["6", "six"], "temperature": 0.2}, feature="stop")
    s["max_tokens"] = _one(
        {"messages": [msg("user", "Tell me a story.")], "max_tokens": 5},
        _script(text="Once upon a time", finish="length", output_tokens=5), Expect(text="Once upon a time", finish="length"),
        {"max_tokens": 5}, feature="max_tokens")
    s["stream"] = _one({"messages": [msg("user", "Tell me about foxes.")]}, _script(text=LONG_TEXT, output_tokens=19),
                       Expect(text=LONG_TEXT), {"stream": True, "parts": ["user:text"]}, feature="stream", stream=True)
    s["stream_tools"] = _one(
        {"messages": [msg("user", "Weather and time in Paris?")], "tools": [WEATHER_TOOL, TIME_TOOL]},
        _script(text=None, tool_calls=[WEATHER_CALL, TIME_CALL], finish="tool_calls", output_tokens=30),
        Expect(text="", tool_calls=({"name": "get_weather", "arguments": WEATHER_CALL["arguments"]},
                                    {"name": "get_time", "arguments": TIME_CALL["arguments"]}), finish="tool_calls"),
        {"stream": True, "tools": ["get_weather", "get_time"]}, feature="stream_tools", stream=True)
    s["usage_cache"] = _one({"messages": [msg("user", "Say hello.")]},
                            _script(text=HELLO, input_tokens=2048, cached_tokens=1536, output_tokens=9),
                            Expect(text=HELLO), feature="usage_cache")
    s["usage_cache_write"] = _one({"messages": [msg("user", "Say hello.")]},
                                  _script(text=HELLO, input_tokens=2048, cache_write_tokens=1024, output_tokens=9),
                                  Expect(text=HELLO), feature="usage_cache_write")
    s["usage_reasoning"] = _one({"messages": [msg("user", "Think, then say hello.")]},
                                _script(text=HELLO, output_tokens=120, reasoning_tokens=100),
                                Expect(text=HELLO), feature="usage_reasoning")
    return s


# Requests whose buffered and streamed answers must be identical (text, tool calls, finish, usage).
PARITY: dict[str, tuple[dict[str, Any], Script]] = {
    "text": ({"messages": [msg("user", "Tell me about foxes.")]}, Script(text=LONG_TEXT, input_tokens=30, output_tokens=19)),
    "tools": ({"messages": [msg("user", "Weather and time in Paris?")], "tools": [WEATHER_TOOL, TIME_TOOL]},
              Script(text=None, tool_calls=[WEATHER_CALL, TIME_CALL], finish="tool_calls", input_tokens=120, output_tokens=30)),
    "text_and_cache": ({"messages": [msg("user", "Tell me about foxes.")]},
                       Script(text=LONG_TEXT, input_tokens=2048, cached_tokens=1024, output_tokens=19)),
}
PARITY_NEEDS = {"text": "stream", "tools": "stream_tools", "text_and_cache": "stream"}

# A stream the provider cuts after a few chunks: the gateway must end it with `event: error`.
CUT_STREAM = ({"messages": [msg("user", "Tell me about foxes.")], "stream": True}, Script(text=LONG_TEXT, cut_after_chunks=2))
