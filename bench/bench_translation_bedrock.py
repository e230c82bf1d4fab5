"""Bedrock adapter translation cost, in-process (no network, no pipeline).

- **per request**: the normalized request → Converse parameters (`build_request`: system blocks,
  role merging, toolUse/toolResult blocks, toolConfig, inferenceConfig) plus the Converse answer
  → `ChatResult` (`parse_result`: text, tool calls, stop reason, cache-aware usage), for a
  realistic multi-turn tool conversation.
- **per stream event**: one binary event-stream frame → `StreamDelta` — the adapter's own frame
  decoder (prelude and message CRC32s, headers, JSON payload, `decode_events`) and `parse_stream`
  — timed per `next()` over a 200-delta answer: everything the gateway does per event.

For context, the same paths are also timed through botocore: request serialization to the wire
body and answer parsing from the JSON bytes, and botocore's own `EventStream` decoding and
parsing of the frames (what the adapter would cost with it; it decodes frames itself instead).
botocore's SigV4 signing and HTTP are not included.

Targets (issue 3): ≤ 100 µs per request and ≤ 10 µs per stream chunk, P99.
Run: `python -m bench.bench_translation_bedrock`.
"""

from __future__ import annotations

import json
from typing import Any

from bench._common import setup_env
from bench._translation import ITERATIONS, STREAM_DELTAS, STREAM_RUNS, TOOLS, WARMUP, Case, conversation, render_provider, time_case

MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
ANSWER = {
    "output": {"message": {"role": "assistant", "content": [{"text": "Rome is warmer: 24C against 18C in Paris."}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 120, "outputTokens": 14, "totalTokens": 2182, "cacheReadInputTokens": 2048,
              "cacheWriteInputTokens": 0},
    "metrics": {"latencyMs": 412},
}


def _stream_events() -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    for i in range(STREAM_DELTAS):
        events.append(("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": f"word{i} "}}))
    events += [
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"usage": {"inputTokens": 120, "outputTokens": STREAM_DELTAS, "totalTokens": 2368,
                                "cacheReadInputTokens": 2048}, "metrics": {"latencyMs": 900}}),
    ]
    return events


class _RawStream:
    """What botocore's EventStream reads: `.stream()` yielding the response body in chunks."""

    def __init__(self, frames: list[bytes]) -> None:
        self._frames = frames

    def stream(self) -> Any:
        return iter(self._frames)

    def close(self) -> None:
        pass


def _call() -> tuple[Any, Any]:
    setup_env()
    from llm_gateway.api.models import ChatRequest
    from llm_gateway.providers.base import Deadline, ProviderCall
    from llm_gateway.providers.bedrock import BedrockAdapter
    from llm_gateway.registry.catalog import ModelSpec, ProviderSpec

    provider = ProviderSpec(id="bedrock", kind="bedrock", base_url=None, credential={"aws": True}, region="us-east-1")
    model = ModelSpec(id=f"bedrock::{MODEL_ID}", provider=provider, provider_model=MODEL_ID,
                      capabilities=frozenset({"chat", "stream", "tools"}), lifecycle="production",
                      limits={"max_output_tokens": 8192})
    call = ProviderCall(request=ChatRequest.model_validate(conversation(model.id, "tooluse_0")), model=model,
                        deadline=Deadline(ttft_s=3600, total_s=3600), tools=TOOLS)
    adapter = BedrockAdapter(provider, None)
    adapter.check(call)
    return adapter, call


def _frames() -> list[bytes]:
    from tests.fakes.bedrock import event_frame

    return [event_frame(name, body) for name, body in _stream_events()]


DESCRIBE = f"6-message tool conversation, one tool; ConverseStream answers of {STREAM_DELTAS} text `contentBlockDelta` events"


def case() -> Case:
    """The gateway's own path: Converse parameters, the answer decoded and parsed, frames decoded
    by the adapter itself."""
    adapter, call = _call()
    answer_raw = json.dumps(ANSWER).encode()
    frames = _frames()

    def translate() -> Any:
        adapter.build_request(call)
        return adapter.parse_result(json.loads(answer_raw), call)  # the JSON decode counts too

    result = translate()
    assert result.finish_reason == "stop" and result.usage.input_tokens == 2168
    return Case(translate, lambda: adapter.parse_stream(adapter.decode_events(iter(frames)), call), STREAM_DELTAS + 1, DESCRIBE)


def sdk_case() -> Case:
    """For context: the same through botocore's serializer, parser and `EventStream`."""
    from botocore import parsers, serialize
    from botocore.eventstream import EventStream
    from botocore.parsers import EventStreamJSONParser
    from botocore.session import get_session

    adapter, call = _call()
    service = get_session().get_service_model("bedrock-runtime")
    serializer = serialize.create_serializer(service.metadata["protocol"], include_validation=False)
    parser = parsers.create_parser(service.metadata["protocol"])
    converse = service.operation_model("Converse")
    stream_member = service.operation_model("ConverseStream").output_shape.members["stream"]
    answer_raw = json.dumps(ANSWER).encode()
    frames = _frames()

    def translate() -> Any:
        serializer.serialize_to_request(adapter.build_request(call), converse)
        parsed = parser.parse({"status_code": 200, "headers": {}, "body": answer_raw}, converse.output_shape)
        return adapter.parse_result(parsed, call)

    def stream() -> Any:
        return adapter.parse_stream(EventStream(_RawStream(frames), stream_member, EventStreamJSONParser(), "ConverseStream"), call)

    return Case(translate, stream, STREAM_DELTAS + 1, DESCRIBE)


def measure(iterations: int = ITERATIONS, warmup: int = WARMUP, stream_runs: int = STREAM_RUNS) -> dict[str, Any]:
    own = time_case(case(), iterations, warmup, stream_runs)
    sdk = time_case(sdk_case(), iterations, warmup, stream_runs)
    return {**own, "request_sdk": sdk["request"], "chunk_sdk": sdk["chunk"]}


def main() -> str:
    r = measure()
    return render_provider("Bedrock", r, [("…request through botocore's serializer and parser", r["request_sdk"]),
                                          ("…event through botocore's EventStream", r["chunk_sdk"])],
                           " The botocore rows show what the SDK's own (de)serialization would cost, for context.")


if __name__ == "__main__":
    print(main())
