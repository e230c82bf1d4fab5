"""OpenAI-compatible servers (vLLM, Ollama, Mistral, Groq, Together, DeepSeek…), configured by base URL.

Same wire format as OpenAI Chat Completions (see `providers/openai.py`); the differences:
- `max_tokens` (not `max_completion_tokens`) and no 4-sequence limit on `stop`;
- the base URL is required; the credential may be optional (`"optional": true` in the catalog);
- what content the server takes differs per server, so the provider option `accepted_parts`
  lists it (default: text, image, tool_call, tool_result — audio and document parts are refused
  with `capability_not_supported` unless listed);
- servers without `response_format: json_schema` set the option `structured_output:
  "json_object"` (schema sent as an instruction); extra static headers go in `headers`.
"""

from __future__ import annotations

from llm_gateway.providers.openai import OpenAIAdapter

DEFAULT_PARTS = frozenset({"text", "image", "tool_call", "tool_result"})
KNOWN_PARTS = frozenset({"text", "image", "audio", "document", "tool_call", "tool_result"})


class OpenAICompatibleAdapter(OpenAIAdapter):
    kind = "openai_compatible"
    max_tokens_field = "max_tokens"
    max_stop = None
    default_base_url = None
    accepted_parts = DEFAULT_PARTS

    def __init__(self, provider, http) -> None:  # type: ignore[no-untyped-def]
        super().__init__(provider, http)
        listed = provider.options.get("accepted_parts")
        if listed:
            self.accepted_parts = frozenset(listed) & KNOWN_PARTS | {"text"}  # type: ignore[misc]
