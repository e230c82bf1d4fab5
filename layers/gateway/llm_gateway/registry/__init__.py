"""Model Registry: the catalog of providers and models, resolution and pricing."""

from llm_gateway.registry.catalog import Catalog, ModelSpec, ProviderSpec, get_catalog

__all__ = ["Catalog", "ModelSpec", "ProviderSpec", "get_catalog"]
