"""The provider adapter interface.

An adapter translates a normalized `ChatRequest` into one provider's wire format, calls it
through the outbound client, and translates the answer back into `ChatResult` (buffered) or a
sequence of `StreamDelta` (streamed). Adapters never import the pipeline; they get everything
they need in a `ProviderCall`.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from llm_gateway.api.errors import GatewayError

if TYPE_CHECKING:
    from llm_gateway.api.models import ChatRequest
    from llm_gateway.outbound.client import OutboundClient
    from llm_gateway.registry.catalog import ModelSpec, ProviderSpec


@dataclass(slots=True)
class TokenUsage:
    """Normalized token counts. `input_tokens` includes cached reads and cache writes."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    # media units, for models priced per image / second / character
    images: int = 0
    seconds: float = 0.0
    characters: int = 0
    batch: bool = False

    def add(self, other: "TokenUsage") -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.images += other.images
        self.seconds += other.seconds
        self.characters += other.characters


@dataclass(slots=True)
class ChatResult:
    """A buffered answer. `content` holds contract content parts as plain dicts."""

    content: list[dict[str, Any]]
    tool_calls: list[dict[str, Any]]
    finish_reason: str
    usage: TokenUsage
    provider_response_id: str | None = None


@dataclass(slots=True)
class StreamDelta:
    """One normalized streaming event.

    `tool_calls` items follow the contract's `delta.tool_calls` shape:
    `{"index": i, "id"?: str, "function": {"name"?: str, "arguments"?: str-fragment}}`.
    The last delta of a stream carries `finish_reason` and `usage` (exact, as the provider
    reported it).
    """

    text: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    finish_reason: str | None = None
    usage: TokenUsage | None = None


@dataclass(slots=True)
class Deadline:
    """Time-to-first-token and total budgets for one provider call (monotonic seconds)."""

    ttft_s: float
    total_s: float
    started: float = field(default_factory=time.monotonic)

    def remaining(self) -> float:
        return self.total_s - (time.monotonic() - self.started)

    def first_token_remaining(self) -> float:
        return min(self.ttft_s - (time.monotonic() - self.started), self.remaining())


@dataclass(slots=True)
class ProviderCall:
    request: "ChatRequest"
    model: "ModelSpec"
    deadline: Deadline
    # tools resolved to one shape: {"name", "description", "parameters": <JSON Schema>}
    tools: list[dict[str, Any]] = field(default_factory=list)
    tenant_id: str = ""
    request_id: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def response_schema(self) -> dict[str, Any] | None:
        """The structured-output schema, GTS references already resolved by the pipeline."""
        if "response_schema" in self.extra:
            return self.extra["response_schema"]
        rs = self.request.response_schema
        return rs.json_schema if rs is not None else None

    @property
    def provider(self) -> "ProviderSpec":
        return self.model.provider


@dataclass(slots=True)
class EmbedCall:
    """One provider-sized batch of embedding inputs (the pipeline splits and rejoins)."""

    model: "ModelSpec"
    inputs: list[str]
    deadline: Deadline
    dimensions: int | None = None
    tenant_id: str = ""
    request_id: str = ""


@dataclass(slots=True)
class EmbedResult:
    vectors: list[list[float]]  # one per input, same order (may be empty when `raw` is given)
    usage: TokenUsage
    # the same vectors as little-endian float32 — bytes, or the provider's own base64 text (OpenAI):
    # the pipeline answers `encoding_format: base64` from these without a float round trip
    raw: list[bytes | str] | None = None

    def floats(self) -> list[list[float]]:
        if self.vectors or not self.raw:
            return self.vectors
        from array import array
        import sys

        import base64

        out = []
        for blob in self.raw:
            values = array("f", base64.b64decode(blob) if isinstance(blob, str) else blob)
            if sys.byteorder != "little":
                values.byteswap()
            out.append(values.tolist())
        return out

    def count(self) -> int:
        return len(self.raw) if self.raw is not None and not self.vectors else len(self.vectors)


@dataclass(slots=True)
class AudioChunk:
    """One piece of streamed speech (`ProviderAdapter.speak_stream`): encoded audio bytes in
    `format` (wav, mp3, pcm16…); the last chunk carries the `usage`."""

    data: bytes = b""
    format: str = ""
    usage: TokenUsage | None = None


class ProviderAdapter(ABC):
    """Base class of every provider adapter (one module per provider under `providers/`)."""

    kind: ClassVar[str]
    # Content part types this provider accepts at all (per model, the registry narrows further).
    accepted_parts: ClassVar[frozenset[str]] = frozenset({"text", "tool_call", "tool_result"})

    def __init__(self, provider: "ProviderSpec", http: "OutboundClient") -> None:
        self.provider = provider
        self.http = http

    def check(self, call: ProviderCall) -> None:
        """Reject, before any network call, what this provider cannot take."""
        for message in call.request.messages:
            for part in message.content:
                if part.type not in self.accepted_parts:
                    raise GatewayError(
                        "capability_not_supported",
                        f"Provider '{self.provider.id}' ({self.kind}) does not accept '{part.type}' content parts.",
                        provider=self.provider.id,
                    )

    @abstractmethod
    def chat(self, call: ProviderCall) -> ChatResult:
        """One buffered completion."""

    def embed(self, call: EmbedCall) -> EmbedResult:
        """Embeddings for one batch; providers with an embeddings API override this."""
        raise GatewayError(
            "capability_not_supported",
            f"Provider '{self.provider.id}' ({self.kind}) has no embeddings support in the gateway.",
            provider=self.provider.id,
        )

    # ------------------------------------------------------------ long-running tasks (video generation)
    # A provider that runs a generation as a task (start it, then poll until it is done) gets
    # `start_async` / `poll_async` (and `cancel_async` where it can cancel). The gateway runs such
    # models as jobs (`llm_gateway/jobs`): a sync request is polled inside the invocation up to
    # `LLMGW_SYNC_POLL_LIMIT_S`, then answered 202 with the job; the workflow polls the rest.

    def is_async(self, model: "ModelSpec") -> bool:
        """True when this model's generations are long-running provider tasks. Default: video
        generation models of adapters that implement `start_async`; the model option
        `async_task` (true/false) overrides it."""
        explicit = model.options.get("async_task")
        if explicit is not None:
            return bool(explicit)
        return "video_generation" in model.capabilities and type(self).start_async is not ProviderAdapter.start_async

    def start_async(self, call: ProviderCall) -> dict[str, Any]:
        """Start the task; a JSON-serializable handle (stored with the job, given to poll/cancel)."""
        raise GatewayError(
            "capability_not_supported",
            f"Provider '{self.provider.id}' ({self.kind}) has no long-running task support in the gateway.",
            provider=self.provider.id,
        )

    def poll_async(self, call: ProviderCall, handle: dict[str, Any]) -> tuple[bool, ChatResult | None]:
        """`(False, None)` while the task runs, `(True, result)` when it is done; a failed task
        raises `GatewayError`. Media may come back as `data:` URLs: the gateway stores them under
        the tenant's prefix and answers presigned URLs. The handle may be updated in place."""
        raise GatewayError(
            "capability_not_supported",
            f"Provider '{self.provider.id}' ({self.kind}) has no long-running task support in the gateway.",
            provider=self.provider.id,
        )

    def cancel_async(self, call: ProviderCall, handle: dict[str, Any]) -> None:
        """Cancel the task at the provider, where it can be cancelled (best effort)."""
        return None

    # ------------------------------------------------------------ output modalities (pipeline/modalities.py)
    # A model's capability picks the method: `image_generation` -> generate_image, `tts` -> speak
    # (speak_stream for `stream: true`), `stt` -> transcribe, `video_generation` -> the long-running
    # task methods above. Generated media come back as content parts with `data:` URLs (the gateway
    # stores them under the tenant's prefix and answers presigned URLs); usage counts the media units
    # (`images`, `seconds`, `characters`) the model is priced by. Options: `call.request.media`.

    def _no_modality(self, what: str) -> GatewayError:
        return GatewayError("capability_not_supported",
                            f"Provider '{self.provider.id}' ({self.kind}) has no {what} support in the gateway.",
                            provider=self.provider.id)

    def generate_image(self, call: ProviderCall) -> ChatResult:
        """Images from the prompt (the text of the last user message)."""
        raise self._no_modality("image generation")

    def speak(self, call: ProviderCall) -> ChatResult:
        """Text to speech: one `audio` part."""
        raise self._no_modality("text-to-speech")

    def speak_stream(self, call: ProviderCall) -> Iterator[AudioChunk]:
        """Text to speech in chunks; the default sends `speak()`'s audio as one chunk."""
        import base64

        result = self.speak(call)
        for part in result.content:
            url = part.get("url") or ""
            if part.get("type") == "audio" and url.startswith("data:"):
                head, _, payload = url.partition(",")
                fmt = head[5:].split(";")[0].rsplit("/", 1)[-1]
                yield AudioChunk(data=base64.b64decode(payload), format={"mpeg": "mp3", "x-wav": "wav"}.get(fmt, fmt))
        yield AudioChunk(usage=result.usage)

    def transcribe(self, call: ProviderCall) -> ChatResult:
        """Speech to text: the `audio` part(s) of the request as one text part."""
        raise self._no_modality("speech-to-text")

    def stream(self, call: ProviderCall) -> Iterator[StreamDelta]:
        """A streamed completion; the default replays the buffered answer as one delta."""
        result = self.chat(call)
        text = "".join(p.get("text", "") for p in result.content if p.get("type") == "text")
        if text:
            yield StreamDelta(text=text)
        if result.tool_calls:
            yield StreamDelta(
                tool_calls=[
                    {"index": i, "id": tc["id"], "function": {"name": tc["name"], "arguments": _json(tc["arguments"])}}
                    for i, tc in enumerate(result.tool_calls)
                ]
            )
        yield StreamDelta(finish_reason=result.finish_reason, usage=result.usage)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"))


def text_of(parts: list[Any]) -> str:
    """Concatenated text of a message's text parts (pydantic parts or dicts)."""
    out = []
    for p in parts:
        if getattr(p, "type", None) == "text":
            out.append(p.text)
        elif isinstance(p, dict) and p.get("type") == "text":
            out.append(p["text"])
    return "".join(out)
