"""Which capabilities a request needs, derived once from its shape."""

from __future__ import annotations

from llm_gateway.api.models import ChatRequest

_PART_CAPABILITY = {"image": "vision", "audio": "audio_in", "video": "video_in", "document": "documents"}


def required_capabilities(request: ChatRequest) -> frozenset[str]:
    needed = {"chat"}
    if request.stream:
        needed.add("stream")
    if request.tools:
        needed.add("tools")
    if request.response_schema is not None:
        needed.add("structured_output")
    for message in request.messages:
        for part in message.content:
            cap = _PART_CAPABILITY.get(part.type)
            if cap:
                needed.add(cap)
    return frozenset(needed)
