"""OpenAI-compatible servers (vLLM, Ollama, Mistral, Groq, Together…), configured by base URL.

Same wire format as OpenAI Chat Completions; differences are options in the catalog entry:
`max_tokens` (not `max_completion_tokens`), and the credential may be optional.
"""

from __future__ import annotations

from llm_gateway.providers.openai import OpenAIAdapter


class OpenAICompatibleAdapter(OpenAIAdapter):
    kind = "openai_compatible"
    max_tokens_field = "max_tokens"

    def _url(self) -> str:
        if not self.provider.base_url:
            from llm_gateway.api.errors import GatewayError

            raise GatewayError("provider_error", f"Provider '{self.provider.id}' has no base_url in the catalog.", provider=self.provider.id)
        return self.http.url(self.provider.base_url, "/chat/completions")
