"""What a fake provider answers next, in provider-neutral terms.

Every fake provider (`tests/fakes/<provider>.py`) renders a `Script` in its own exact wire
format — buffered JSON or its streaming events — so the conformance suite can run the same
scenario against every adapter and expect the same normalized result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# error classes every fake can produce, in its own provider's shape
ERROR_CLASSES = ("auth", "rate_limit", "server", "overloaded", "context_length", "bad_request")


@dataclass
class Script:
    text: str | None = "Hello from the fake provider."
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # [{"id", "name", "arguments": {...}}]
    finish: str = "stop"  # normalized: stop | length | tool_calls | content_filter
    input_tokens: int = 11  # total input, cached and cache-write included
    output_tokens: int = 7
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    error: str | None = None  # one of ERROR_CLASSES
    retry_after: int | None = None
    # streaming faults
    chunk_delay_s: float = 0.0
    stall_after_chunks: int | None = None
    cut_after_chunks: int | None = None
    delay_s: float = 0.0
