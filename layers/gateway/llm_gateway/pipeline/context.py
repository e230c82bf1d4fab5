"""Per-request state carried through the pipeline steps."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm_gateway.api.models import ChatRequest
    from llm_gateway.providers.base import TokenUsage
    from llm_gateway.registry.catalog import ModelSpec
    from llm_gateway.stores.keys import Principal


def new_request_id() -> str:
    return "req_" + uuid.uuid4().hex


@dataclass(slots=True)
class RequestContext:
    principal: "Principal"
    request_id: str = field(default_factory=new_request_id)
    route: str = "chat"
    started: float = field(default_factory=time.perf_counter)
    request: "ChatRequest | None" = None
    model: "ModelSpec | None" = None
    needs: frozenset[str] = frozenset()
    tools: list[dict[str, Any]] = field(default_factory=list)
    model_used: "ModelSpec | None" = None
    fallback_used: bool = False
    usage: "TokenUsage | None" = None
    cost: float = 0.0
    finish_reason: str | None = None
    outcome: str = "ok"  # ok | error | cancelled
    error_code: str | None = None
    ttft_ms: float | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def tenant_id(self) -> str:
        return self.principal.tenant_id

    @property
    def user_id(self) -> str:
        return self.principal.user_id

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000
