"""Provider adapters, one module per provider kind, imported lazily by kind.

Adding a provider: write `providers/<kind>.py` with a `ProviderAdapter` subclass and list it
in `ADAPTERS`. Adapters are independent of each other and never import the pipeline.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llm_gateway.providers.base import ProviderAdapter
    from llm_gateway.registry.catalog import ProviderSpec

# kind -> "module:Class"
ADAPTERS: dict[str, str] = {
    "mock": "llm_gateway.providers.mock:MockAdapter",
    "openai": "llm_gateway.providers.openai:OpenAIAdapter",
    "openai_compatible": "llm_gateway.providers.openai_compatible:OpenAICompatibleAdapter",
    "anthropic": "llm_gateway.providers.anthropic:AnthropicAdapter",
    "gemini": "llm_gateway.providers.gemini:GeminiAdapter",
    "bedrock": "llm_gateway.providers.bedrock:BedrockAdapter",
}

_instances: dict[tuple[str, int], "ProviderAdapter"] = {}
_lock = threading.Lock()


def adapter_for(provider: "ProviderSpec") -> "ProviderAdapter":
    """The adapter instance for a provider (one per provider spec and process)."""
    key = (provider.id, id(provider))
    inst = _instances.get(key)
    if inst is not None:
        return inst
    with _lock:
        inst = _instances.get(key)
        if inst is None:
            target = ADAPTERS.get(provider.kind)
            if target is None:
                from llm_gateway.api.errors import GatewayError

                raise GatewayError("provider_error", f"Provider kind '{provider.kind}' has no adapter.", provider=provider.id)
            module_name, _, cls_name = target.partition(":")
            cls = getattr(importlib.import_module(module_name), cls_name)
            from llm_gateway.outbound.client import get_outbound

            inst = cls(provider, get_outbound())
            _instances[key] = inst
    return inst


def reset_adapters() -> None:
    """Forget adapter instances (tests that swap the outbound client or the catalog)."""
    _instances.clear()
