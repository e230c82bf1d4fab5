"""The built-in `mock` provider: deterministic, offline, with real token counts.

It is the local default, so it behaves like a real model on every feature the gateway
normalizes: it answers text, calls the first offered tool (arguments built from the tool's
schema), answers after tool results, emits JSON matching `response_schema`, honours
`max_tokens` (finish `length`) and `stop`, and streams word by word. Token counts come from a
simple word/punctuation tokenizer applied to the actual text, so they change with the input.
Set `LLMGW_MOCK_LATENCY_MS` (or the model option `latency_ms`) to add a fixed delay.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any

from llm_gateway.providers.base import (
    AudioChunk,
    ChatResult,
    EmbedCall,
    EmbedResult,
    ProviderAdapter,
    ProviderCall,
    StreamDelta,
    TokenUsage,
    text_of,
)

_TOKEN = re.compile(r"\w+|[^\w\s]")
MESSAGE_OVERHEAD_TOKENS = 3
MEDIA_PART_TOKENS = {"image": 85, "audio": 50, "video": 250, "document": 120}


def count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def _input_tokens(call: ProviderCall) -> int:
    total = 0
    for message in call.request.messages:
        total += MESSAGE_OVERHEAD_TOKENS
        for part in message.content:
            kind = part.type
            if kind == "text":
                total += count_tokens(part.text)
            elif kind == "tool_result":
                total += count_tokens(part.tool_result.content)
            elif kind == "tool_call":
                total += count_tokens(part.tool_call.name) + count_tokens(json.dumps(part.tool_call.arguments))
            else:
                total += MEDIA_PART_TOKENS.get(kind, 0)
    for tool in call.tools:
        total += count_tokens(tool["name"]) + count_tokens(json.dumps(tool.get("parameters", {})))
    if call.response_schema is not None:
        total += count_tokens(json.dumps(call.response_schema))
    return total


def example_for(schema: dict[str, Any], depth: int = 0) -> Any:
    """A deterministic instance of a JSON Schema (the subset tools and structured output use)."""
    if depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return example_for(schema[key][0], depth + 1)
    if schema.get("allOf"):
        merged: dict[str, Any] = {}
        for sub in schema["allOf"]:
            merged.update(sub)
        return example_for(merged, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or (kind is None and "properties" in schema):
        props = schema.get("properties", {})
        return {name: example_for(sub, depth + 1) for name, sub in props.items()}
    if kind == "array":
        n = max(1, schema.get("minItems", 1))
        return [example_for(schema.get("items", {}), depth + 1) for _ in range(n)]
    if kind == "string":
        fmt = schema.get("format")
        value = {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "email": "user@example.com", "uri": "https://example.com"}.get(fmt, "mock")
        return value.ljust(schema.get("minLength", 0), "x")
    if kind == "integer":
        return int(schema.get("minimum", 0))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return "mock"


def _reply_text(call: ProviderCall) -> str:
    last = call.request.messages[-1]
    results = [p.tool_result for p in last.content if p.type == "tool_result"]
    if results:
        joined = "; ".join(f"{r.tool_call_id} -> {r.content}" for r in results)
        return f"Based on the tool results ({joined}), here is the answer."
    said = text_of(last.content).strip()
    media = [p.type for p in last.content if p.type in MEDIA_PART_TOKENS]
    seen = f" I received {len(media)} attachment(s): {', '.join(media)}." if media else ""
    if not said:
        return f"Hello from {call.model.id}.{seen}"
    return f"You said: {said}{seen}"


def _tool_call_for(call: ProviderCall) -> dict[str, Any] | None:
    choice = call.request.tool_choice
    if not call.tools or choice == "none":
        return None
    last = call.request.messages[-1]
    if any(p.type == "tool_result" for p in last.content) and choice != "required" and not hasattr(choice, "name"):
        return None
    tool = call.tools[0]
    if hasattr(choice, "name"):
        tool = next((t for t in call.tools if t["name"] == choice.name), tool)
    args = example_for(tool.get("parameters") or {"type": "object"})
    digest = hashlib.sha256(f"{call.request_id}:{tool['name']}".encode()).hexdigest()[:24]
    return {"id": f"call_{digest}", "name": tool["name"], "arguments": args if isinstance(args, dict) else {}}


class MockAdapter(ProviderAdapter):
    kind = "mock"
    accepted_parts = frozenset({"text", "image", "audio", "video", "document", "tool_call", "tool_result"})

    def _sleep(self, call: ProviderCall) -> None:
        self._sleep_ms(call.model.options.get("latency_ms"))

    def _answer(self, call: ProviderCall) -> tuple[str, dict[str, Any] | None, str]:
        tool_call = _tool_call_for(call)
        if tool_call is not None:
            return "", tool_call, "tool_calls"
        if call.response_schema is not None:
            text = json.dumps(example_for(call.response_schema), separators=(",", ":"))
        else:
            text = _reply_text(call)
        finish = "stop"
        for stop in call.request.stop or ():
            if stop and stop in text:
                text = text[: text.index(stop)]
        limit = call.request.max_tokens
        if limit is not None and count_tokens(text) > limit:
            pieces = list(_TOKEN.finditer(text))
            text = text[: pieces[limit - 1].end()]
            finish = "length"
        return text, None, finish

    def chat(self, call: ProviderCall) -> ChatResult:
        self._sleep(call)
        text, tool_call, finish = self._answer(call)
        usage = TokenUsage(input_tokens=_input_tokens(call))
        if tool_call is not None:
            usage.output_tokens = count_tokens(tool_call["name"]) + count_tokens(json.dumps(tool_call["arguments"]))
            return ChatResult(content=[], tool_calls=[tool_call], finish_reason=finish, usage=usage)
        usage.output_tokens = count_tokens(text)
        return ChatResult(content=[{"type": "text", "text": text}], tool_calls=[], finish_reason=finish, usage=usage)

    def stream(self, call: ProviderCall) -> Iterator[StreamDelta]:
        self._sleep(call)
        text, tool_call, finish = self._answer(call)
        usage = TokenUsage(input_tokens=_input_tokens(call))
        if tool_call is not None:
            args = json.dumps(tool_call["arguments"], separators=(",", ":"))
            yield StreamDelta(tool_calls=[{"index": 0, "id": tool_call["id"], "function": {"name": tool_call["name"], "arguments": ""}}])
            for i in range(0, len(args), 16):
                yield StreamDelta(tool_calls=[{"index": 0, "function": {"arguments": args[i : i + 16]}}])
            usage.output_tokens = count_tokens(tool_call["name"]) + count_tokens(json.dumps(tool_call["arguments"]))
        else:
            for piece in re.findall(r"\S+\s*|\s+", text):
                yield StreamDelta(text=piece)
            usage.output_tokens = count_tokens(text)
        yield StreamDelta(finish_reason=finish, usage=usage)

    def embed(self, call: EmbedCall) -> EmbedResult:
        """Deterministic unit vectors seeded by each text (same text, same vector)."""
        self._sleep_ms(call.model.options.get("latency_ms"))
        dims = call.dimensions or int(call.model.limits.get("dimensions", 256))
        vectors = [_unit_vector(text, dims) for text in call.inputs]
        return EmbedResult(vectors=vectors, usage=TokenUsage(input_tokens=sum(count_tokens(t) for t in call.inputs)))

    # ------------------------------------------------------------ long-running tasks (`mock::video-gen`)
    # A video generation "task": ready `generation_s` seconds (model option, default 3) after it
    # starts; the result is a tiny MP4 container as a `data:` URL (the gateway stores it and
    # answers a presigned URL), billed per second of video (`media.duration`, default 4).

    def start_async(self, call: ProviderCall) -> dict[str, Any]:
        seconds = float(call.model.options.get("generation_s", 3))
        digest = hashlib.sha256(f"{call.request_id}:{time.time()}".encode()).hexdigest()[:16]
        return {"task_id": f"mockvid_{digest}", "ready_at": time.time() + seconds, "polls": 0}

    def poll_async(self, call: ProviderCall, handle: dict[str, Any]) -> tuple[bool, ChatResult | None]:
        handle["polls"] = int(handle.get("polls", 0)) + 1
        if time.time() < float(handle["ready_at"]):
            return False, None
        duration = float((call.request.media or {}).get("duration", 4))
        data = base64.b64encode(_tiny_mp4(handle["task_id"], duration)).decode("ascii")
        usage = TokenUsage(input_tokens=_input_tokens(call), seconds=duration)
        return True, ChatResult(content=[{"type": "video", "url": f"data:video/mp4;base64,{data}"}], tool_calls=[],
                                finish_reason="stop", usage=usage, provider_response_id=handle["task_id"])

    def cancel_async(self, call: ProviderCall, handle: dict[str, Any]) -> None:
        handle["cancelled"] = True

    # ------------------------------------------------------------ output modalities (`mock::image`, `mock::tts`, `mock::stt`)
    # Real files: a PNG (the prompt in its tEXt "Description"), a WAV of one tone per word (the text
    # in its LIST/INFO chunk), and transcripts: the text embedded in a mock TTS WAV, read back
    # exactly, or for other audio "Mock transcript: N.N seconds of <type> audio." Options: `media.n`,
    # `media.size` (16-1024 px), `media.seed` for images.

    def generate_image(self, call: ProviderCall) -> ChatResult:
        from llm_gateway.media import samples
        from llm_gateway.media.generation import data_url, option, parse_size, prompt_of

        self._sleep(call)
        prompt = prompt_of(call.request)
        if option(call.request, "format", "png") != "png":
            raise self._no_modality("image formats other than png")
        width, height = parse_size(option(call.request, "size"), (256, 256))
        if not (16 <= width <= 1024 and 16 <= height <= 1024):
            from llm_gateway.api.errors import GatewayError

            raise GatewayError("validation_error", f"media.size {width}x{height}: '{call.model.id}' draws 16 to 1024 pixels a side.",
                               errors=[{"path": "media.size", "message": "16 to 1024 pixels a side"}])
        n = int(option(call.request, "n", 1))
        seed = int(option(call.request, "seed", int(hashlib.sha256(prompt.encode()).hexdigest()[:6], 16)))
        parts = [{"type": "image", "url": data_url("image/png", samples.png(width, height, (seed + i) % 256, text=prompt))}
                 for i in range(n)]
        usage = TokenUsage(input_tokens=count_tokens(prompt), images=n)
        return ChatResult(content=parts, tool_calls=[], finish_reason="stop", usage=usage,
                          provider_response_id="mockimg_" + hashlib.sha256(f"{call.request_id}:{prompt}".encode()).hexdigest()[:16])

    def _speech(self, call: ProviderCall) -> tuple[bytes, TokenUsage]:
        from llm_gateway.media import samples
        from llm_gateway.media.generation import option, prompt_of

        text = prompt_of(call.request)
        if option(call.request, "format", "wav") != "wav":
            raise self._no_modality("speech formats other than wav")
        audio = samples.speech_wav(text)
        return audio, TokenUsage(input_tokens=count_tokens(text), characters=len(text), seconds=samples.wav_duration(audio) or 0.0)

    def speak(self, call: ProviderCall) -> ChatResult:
        from llm_gateway.media.generation import data_url

        self._sleep(call)
        audio, usage = self._speech(call)
        return ChatResult(content=[{"type": "audio", "url": data_url("audio/wav", audio)}], tool_calls=[], finish_reason="stop", usage=usage)

    def speak_stream(self, call: ProviderCall) -> Iterator[AudioChunk]:
        self._sleep(call)
        audio, usage = self._speech(call)
        size = int(call.model.options.get("stream_chunk_bytes", 8192))
        for i in range(0, len(audio), size):
            yield AudioChunk(data=audio[i:i + size], format="wav")
        yield AudioChunk(usage=usage)

    def transcribe(self, call: ProviderCall) -> ChatResult:
        from llm_gateway.media import samples
        from llm_gateway.media.generation import input_media

        self._sleep(call)
        texts = []
        seconds = 0.0
        for item in input_media(call, ("audio",)):
            duration = samples.wav_duration(item.data) if item.media_type == "audio/wav" else None
            if duration is None:
                duration = len(item.data) / 16000  # about 128 kbit/s for compressed audio
            seconds += duration
            spoken = samples.wav_text(item.data)
            texts.append(spoken if spoken is not None else f"Mock transcript: {duration:.1f} seconds of {item.media_type or 'unknown'} audio.")
        text = " ".join(texts)
        usage = TokenUsage(input_tokens=MEDIA_PART_TOKENS["audio"] * len(texts), output_tokens=count_tokens(text), seconds=seconds)
        return ChatResult(content=[{"type": "text", "text": text}], tool_calls=[], finish_reason="stop", usage=usage)

    def _sleep_ms(self, latency: object) -> None:
        latency = latency or os.environ.get("LLMGW_MOCK_LATENCY_MS")
        if latency:
            time.sleep(float(latency) / 1000)


def _tiny_mp4(tag: str, seconds: float = 4.0) -> bytes:
    """A small, valid MP4 (one Motion-JPEG video track: `media/samples.mp4`) of `seconds`, seeded by
    the task id."""
    from llm_gateway.media import samples

    return samples.mp4(seconds=max(0.25, min(float(seconds), 20.0)), fps=4, seed=int(hashlib.sha256(tag.encode()).hexdigest()[:4], 16))


def _unit_vector(text: str, dims: int) -> list[float]:
    import random

    rng = random.Random(hashlib.sha256(text.encode("utf-8")).digest())
    raw = [rng.gauss(0.0, 1.0) for _ in range(dims)]
    norm = sum(v * v for v in raw) ** 0.5 or 1.0
    return [v / norm for v in raw]
