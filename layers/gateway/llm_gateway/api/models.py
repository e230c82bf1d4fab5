"""Contract models (pydantic v2) for the native API, v1.

They mirror `api/schemas/` (the wire contract) one to one; fields the contract lacks are
documented extensions (see the README's API reference) and are marked `# extension`.
Requests forbid unknown fields, so a typo is a `validation_error`, not silently ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


class _Strict(BaseModel):
    """Request-side base: unknown fields are errors, as `additionalProperties: false` says."""

    model_config = ConfigDict(extra="forbid", frozen=False)


def _check_uri(value: str) -> str:
    # `format: uri` — an absolute URI needs a scheme. Where it points is checked later.
    scheme, sep, rest = value.partition(":")
    if not sep or not scheme or not rest or not scheme[0].isalpha():
        raise ValueError("must be an absolute URI (for example https://… or s3://…)")
    return value


# ---------------------------------------------------------------- content parts


class TextContent(_Strict):
    type: Literal["text"]
    text: str


class _MediaContent(_Strict):
    url: str

    _uri = field_validator("url")(classmethod(lambda cls, v: _check_uri(v)))


class ImageContent(_MediaContent):
    type: Literal["image"]


class AudioContent(_MediaContent):
    type: Literal["audio"]


class VideoContent(_MediaContent):
    type: Literal["video"]


class DocumentContent(_MediaContent):
    type: Literal["document"]


class ToolCall(_Strict):
    id: str
    name: str
    arguments: dict[str, Any]


class ToolCallContent(_Strict):
    type: Literal["tool_call"]
    tool_call: ToolCall


class ToolResult(_Strict):
    tool_call_id: str
    content: str


class ToolResultContent(_Strict):
    type: Literal["tool_result"]
    tool_result: ToolResult


ContentPart = Annotated[
    Union[
        TextContent,
        ImageContent,
        AudioContent,
        VideoContent,
        DocumentContent,
        ToolCallContent,
        ToolResultContent,
    ],
    Field(discriminator="type"),
]

MEDIA_PART_TYPES = frozenset({"image", "audio", "video", "document"})


class Message(_Strict):
    role: Role
    content: list[ContentPart] = Field(min_length=1)


# ---------------------------------------------------------------- tools


class Schema(_Strict):
    json_schema: dict[str, Any]


class ToolReference(_Strict):
    type: Literal["reference"]
    schema_id: str


class ToolInlineGTS(_Strict):
    type: Literal["inline_gts"]
    schema_: Schema = Field(alias="schema")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ToolUnified(_Strict):
    type: Literal["unified"]
    name: str
    description: str
    parameters: Schema


Tool = Annotated[Union[ToolReference, ToolInlineGTS, ToolUnified], Field(discriminator="type")]


# ---------------------------------------------------------------- request


class FallbackConfig(_Strict):
    models: list[str] = Field(min_length=1)
    strategy: Literal["sequential", "parallel"]


class TimeoutConfig(_Strict):  # extension
    ttft_ms: int | None = Field(default=None, ge=1, le=900_000)
    total_ms: int | None = Field(default=None, ge=1, le=900_000)


class RequestMetadata(BaseModel):  # extension: attribution, free-form string values
    model_config = ConfigDict(extra="allow")

    conversation_id: str | None = Field(default=None, max_length=256)


class NamedToolChoice(_Strict):  # extension
    type: Literal["tool"]
    name: str


ToolChoice = Union[Literal["auto", "none", "required"], NamedToolChoice]


class ChatRequest(_Strict):
    """`core/request.v1` plus the documented extensions."""

    model: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    tools: list[Tool] | None = None
    stream: StrictBool = False
    async_: StrictBool = Field(default=False, alias="async")
    response_schema: Schema | None = None
    fallback: FallbackConfig | None = None
    # ---- extensions
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: list[str] | str | None = None
    seed: int | None = None
    tool_choice: ToolChoice | None = None
    timeout: TimeoutConfig | None = None
    metadata: RequestMetadata | None = None
    # media output options (voice, format, size, duration…), read by media-capable adapters
    media: dict[str, Any] | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("stop")
    @classmethod
    def _stop_list(cls, v: list[str] | str | None) -> list[str] | None:
        if isinstance(v, str):
            return [v]
        if v is not None and len(v) > 16:
            raise ValueError("at most 16 stop sequences")
        return v


# ---------------------------------------------------------------- response side


class Usage(BaseModel):
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cost_estimate: float | None = Field(default=None, ge=0)
    # ---- extensions (detail; input_tokens already includes the cached and cache-write ones)
    cached_input_tokens: int | None = Field(default=None, ge=0)
    cache_write_tokens: int | None = Field(default=None, ge=0)
    reasoning_tokens: int | None = Field(default=None, ge=0)


class Response(BaseModel):
    """`core/response.v1` plus `id`, `created`, `provider`, `finish_reason` (extensions)."""

    id: str | None = None  # extension
    created: int | None = None  # extension
    content: list[ContentPart] | None = None
    tool_calls: list[ToolCall] | None = None
    usage: Usage
    fallback_used: bool | None = None
    model_used: str
    provider: str | None = None  # extension
    finish_reason: FinishReason | None = None  # extension
    parsed: Any = None  # extension: structured output, parsed and validated


class ToolCallFunctionDelta(BaseModel):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(BaseModel):
    index: int
    id: str | None = None
    function: ToolCallFunctionDelta | None = None


class Delta(BaseModel):
    role: Role | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class StreamChunk(BaseModel):
    id: str
    model: str
    delta: Delta
    usage: Usage | None = None
    finish_reason: FinishReason | None = None


# ---------------------------------------------------------------- embeddings


class EmbeddingRequest(_Strict):
    model: str = Field(min_length=1)
    input: str | list[str]
    dimensions: int | None = Field(default=None, ge=1)
    encoding_format: Literal["float", "base64"] = "float"

    @field_validator("input")
    @classmethod
    def _non_empty(cls, v: str | list[str]) -> str | list[str]:
        if isinstance(v, list) and not v:
            raise ValueError("List should have at least 1 item after validation, not 0")
        return v


class EmbeddingItem(BaseModel):
    index: int
    embedding: list[float] | str


class EmbeddingResponse(BaseModel):
    model: str
    data: list[EmbeddingItem]
    usage: Usage


# ---------------------------------------------------------------- async


class ErrorInfo(BaseModel):
    code: str
    message: str


JobStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
BatchStatus = Literal["pending", "in_progress", "completed", "failed", "cancelled"]


class Job(BaseModel):
    id: str
    status: JobStatus
    request: ChatRequest
    result: Response | None = None
    error: ErrorInfo | None = None
    created_at: str
    expires_at: str


class BatchRequestItem(_Strict):
    custom_id: str = Field(min_length=1)
    request: ChatRequest
    result: Response | None = None
    error: ErrorInfo | None = None


class Batch(BaseModel):
    id: str
    status: BatchStatus
    requests: list[BatchRequestItem] = Field(min_length=1)
    created_at: str
