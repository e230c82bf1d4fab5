"""Anthropic adapter translation cost, in-process (no network, no pipeline).

- **per request**: the normalized request → Messages API body (`build_body`: system placement,
  role merging, tool_use/tool_result blocks, tools, tool_choice, max_tokens) plus the Messages
  answer → `ChatResult` (`parse_result`: text, tool calls, stop reason, cache-aware usage), for a
  realistic multi-turn tool conversation.
- **per stream chunk**: one Anthropic SSE event (`event:` + `data:` lines + blank line) → one
  `StreamDelta` (`parse_stream`), timed per `next()` over a 200-delta answer with pings.

Targets (issue 3): ≤ 100 µs per request and ≤ 10 µs per stream chunk, P99.
Run: `python -m bench.bench_translation_anthropic`.
"""

from __future__ import annotations

import json
from typing import Any

from bench._common import setup_env
from bench._translation import ITERATIONS, STREAM_DELTAS, STREAM_RUNS, TOOLS, WARMUP, Case, conversation, render_provider, time_case

ANSWER = {
    "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "Rome is warmer: 24C against 18C in Paris."}],
    "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 120, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 2048, "output_tokens": 14},
}


def _stream_lines() -> list[str]:
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": {"id": "msg_01", "type": "message", "role": "assistant", "content": [],
                                              "model": "claude-sonnet-4-5", "stop_reason": None, "stop_sequence": None,
                                              "usage": {"input_tokens": 120, "cache_read_input_tokens": 2048,
                                                        "cache_creation_input_tokens": 0, "output_tokens": 1}}},
        {"type": "ping"},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    for i in range(STREAM_DELTAS):
        events.append({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"word{i} "}})
        if i % 50 == 25:
            events.append({"type": "ping"})
    events += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": STREAM_DELTAS}},
        {"type": "message_stop"},
    ]
    lines: list[str] = []
    for e in events:
        lines += [f"event: {e['type']}", "data: " + json.dumps(e), ""]
    return lines


def case() -> Case:
    setup_env()
    import httpx

    from llm_gateway.api.models import ChatRequest
    from llm_gateway.outbound.client import OutboundClient
    from llm_gateway.providers.anthropic import AnthropicAdapter
    from llm_gateway.providers.base import Deadline, ProviderCall
    from llm_gateway.registry.catalog import ModelSpec, ProviderSpec

    provider = ProviderSpec(id="anthropic", kind="anthropic", base_url="https://api.anthropic.com", credential=None)
    model = ModelSpec(id="anthropic::claude-sonnet-4-5", provider=provider, provider_model="claude-sonnet-4-5",
                      capabilities=frozenset({"chat", "stream", "tools"}), lifecycle="production",
                      limits={"max_output_tokens": 64000})
    call = ProviderCall(request=ChatRequest.model_validate(conversation(model.id, "toolu_0")), model=model,
                        deadline=Deadline(ttft_s=30, total_s=60), tools=TOOLS)
    adapter = AnthropicAdapter(provider, OutboundClient(httpx.Client()))
    adapter.check(call)
    answer_raw = json.dumps(ANSWER)
    lines = _stream_lines()

    def translate() -> Any:
        adapter.build_body(call, stream=False)
        return adapter.parse_result(json.loads(answer_raw), call)  # the JSON decode of the answer counts too

    result = translate()
    assert result.finish_reason == "stop" and result.usage.cached_input_tokens == 2048
    return Case(translate, lambda: adapter.parse_stream(lines, call), STREAM_DELTAS + 1,
                f"6-message tool conversation, one tool; {STREAM_DELTAS} `text_delta` events with pings")


def measure(iterations: int = ITERATIONS, warmup: int = WARMUP, stream_runs: int = STREAM_RUNS) -> dict[str, Any]:
    return time_case(case(), iterations, warmup, stream_runs)


def main() -> str:
    return render_provider("Anthropic", measure())


if __name__ == "__main__":
    print(main())
