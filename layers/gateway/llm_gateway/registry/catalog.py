"""The catalog file: providers (kind, base URL, credential source) and models.

The path comes from `LLMGW_CATALOG` (default: the packaged `catalog/default.json`). It is read
once per process and indexed by canonical id and alias, so resolution is one dict lookup.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm_gateway.api.errors import GatewayError

LIFECYCLES = ("production", "preview", "deprecated")
DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "catalog" / "default.json"

# Capability flags a model may declare (README: "Model Registry").
CAPABILITIES = frozenset(
    {
        "chat", "stream", "tools", "structured_output", "vision", "audio_in", "video_in",
        "documents", "reasoning", "embeddings", "image_generation", "tts", "stt",
        "video_generation", "realtime", "batch",
    }
)


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    id: str
    kind: str
    base_url: str | None
    credential: dict[str, Any] | None
    region: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    id: str  # canonical provider::model
    provider: ProviderSpec
    provider_model: str  # the name the provider knows
    capabilities: frozenset[str]
    lifecycle: str
    aliases: tuple[str, ...] = ()
    limits: dict[str, Any] = field(default_factory=dict)
    pricing: dict[str, float] = field(default_factory=dict)
    timeouts: dict[str, int] = field(default_factory=dict)
    replacement: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        """The `GET /models` view: no provider URLs or credential sources."""
        return {
            "id": self.id,
            "provider": self.provider.id,
            "aliases": list(self.aliases),
            "lifecycle": self.lifecycle,
            "capabilities": sorted(self.capabilities),
            "limits": self.limits,
            "pricing": self.pricing,
            **({"replacement": self.replacement} if self.replacement else {}),
        }


class CatalogError(ValueError):
    """The catalog file itself is wrong (a deployment error, reported at start-up)."""


class Catalog:
    def __init__(self, data: dict[str, Any]) -> None:
        self.providers: dict[str, ProviderSpec] = {}
        for p in data.get("providers", []):
            spec = ProviderSpec(
                id=p["id"], kind=p["kind"], base_url=p.get("base_url"), credential=p.get("credential"),
                region=p.get("region"), options=p.get("options", {}),
            )
            self.providers[spec.id] = spec
        self.models: dict[str, ModelSpec] = {}
        self._index: dict[str, ModelSpec] = {}
        for m in data.get("models", []):
            model = self._model(m)
            self.models[model.id] = model
        for model in self.models.values():
            for name in (model.id, *model.aliases):
                if name in self._index and self._index[name] is not model:
                    raise CatalogError(f"model name {name!r} is used twice")
                self._index[name] = model

    def _model(self, m: dict[str, Any]) -> ModelSpec:
        mid = m["id"]
        provider_id, sep, provider_model = mid.partition("::")
        if not sep or not provider_model:
            raise CatalogError(f"model id {mid!r} is not of the form provider::model")
        provider = self.providers.get(provider_id)
        if provider is None:
            raise CatalogError(f"model {mid!r} names unknown provider {provider_id!r}")
        caps = frozenset(m.get("capabilities", ["chat"]))
        if unknown := caps - CAPABILITIES:
            raise CatalogError(f"model {mid!r} has unknown capabilities {sorted(unknown)}")
        lifecycle = m.get("lifecycle", "production")
        if lifecycle not in LIFECYCLES:
            raise CatalogError(f"model {mid!r} has lifecycle {lifecycle!r}; use one of {LIFECYCLES}")
        return ModelSpec(
            id=mid, provider=provider, provider_model=m.get("provider_model", provider_model),
            capabilities=caps, lifecycle=lifecycle, aliases=tuple(m.get("aliases", ())),
            limits=m.get("limits", {}), pricing=m.get("pricing", {}), timeouts=m.get("timeouts", {}),
            replacement=m.get("replacement"), options=m.get("options", {}),
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "Catalog":
        try:
            with open(path, encoding="utf-8") as fh:
                return cls(json.load(fh))
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CatalogError(f"cannot load catalog {path}: {exc}") from exc

    def lookup(self, name: str) -> ModelSpec | None:
        return self._index.get(name)

    def resolve(self, name: str) -> ModelSpec:
        """The model for a canonical id or alias; `model_not_found` / `model_deprecated` otherwise."""
        model = self._index.get(name)
        if model is None:
            raise GatewayError(
                "model_not_found",
                f"Model '{name[:200]}' is not in the Model Registry. GET /models lists the available ids and aliases.",
            )
        if model.lifecycle == "deprecated":
            hint = f" Use '{model.replacement}' instead." if model.replacement else ""
            raise GatewayError("model_deprecated", f"Model '{model.id}' is deprecated.{hint}", model=model.id)
        return model

    @staticmethod
    def require(model: ModelSpec, needed: frozenset[str] | set[str]) -> None:
        missing = needed - model.capabilities
        if missing:
            raise GatewayError(
                "capability_not_supported",
                f"Model '{model.id}' does not support: {', '.join(sorted(missing))}.",
                model=model.id,
                missing_capabilities=sorted(missing),
            )

    def cost(self, model: ModelSpec, usage: Any) -> float:
        return cost_of(model.pricing, usage)


def cost_of(pricing: dict[str, float], usage: Any) -> float:
    """USD estimate. `input_tokens` includes cached reads and cache writes, each priced on its own."""
    cached = usage.cached_input_tokens or 0
    written = usage.cache_write_tokens or 0
    fresh = max(0, usage.input_tokens - cached - written)
    p_in = pricing.get("input_per_mtok", 0.0)
    total = (
        fresh * p_in
        + cached * pricing.get("cached_input_per_mtok", p_in)
        + written * pricing.get("cache_write_per_mtok", p_in)
        + usage.output_tokens * pricing.get("output_per_mtok", 0.0)
    ) / 1_000_000
    for unit, count_attr in (("per_image", "images"), ("per_second", "seconds"), ("per_character", "characters")):
        if unit in pricing:
            total += pricing[unit] * (getattr(usage, count_attr, 0) or 0)
    if "batch_discount" in pricing and getattr(usage, "batch", False):
        total *= 1 - pricing["batch_discount"]
    return round(total, 10)


_CATALOG: tuple[str, Catalog] | None = None


def get_catalog() -> Catalog:
    """The process-wide catalog (re-read only when `LLMGW_CATALOG` changes)."""
    global _CATALOG
    path = os.environ.get("LLMGW_CATALOG") or str(DEFAULT_CATALOG)
    if _CATALOG is None or _CATALOG[0] != path:
        _CATALOG = (path, Catalog.from_file(path))
    return _CATALOG[1]
