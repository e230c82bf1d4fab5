"""The batches service: `POST /batches`, `GET /batches/{id}`, `POST /batches/{id}/cancel`
(also `DELETE /batches/{id}`).

`POST /batches` body: `{"requests": [{"custom_id", "request": <contract Request>}, ...],
"metadata"?: {str: str}, "backend"?: "auto" | "provider" | "gateway"}` → 202 with the Batch.
Every request is validated and its model resolved up front (a bad one rejects the batch with
its path: `requests[3].request.model`); `custom_id`s must be unique; at most
`LLMGW_BATCH_MAX_REQUESTS` requests (and the provider's own limit on provider batches).

Backend (`auto`): the provider's batch API when every request goes to one `openai` or
`anthropic` provider on models with the `batch` capability (OpenAI: one model per batch);
otherwise the gateway runs the requests itself. `provider` insists on the provider's API
(`capability_not_supported` if it cannot), `gateway` never uses it.

Statuses: `pending` → `in_progress` → `completed` | `failed` | `cancelled`. Ids carry their
expiry (`LLMGW_BATCH_TTL_HOURS`): afterwards `batch_expired` (410); an unknown or another
tenant's id is `batch_not_found` (404); cancelling a finished batch is a `conflict` (409).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm_gateway import resets
from llm_gateway.api.errors import GatewayError, from_validation_error
from llm_gateway.api.models import ChatRequest
from llm_gateway.api.parse import check_body
from llm_gateway.config import settings
from llm_gateway.jobs import ids
from llm_gateway.jobs.batchrunner import PROVIDER_BACKENDS, BatchRunner, batch_runner, batch_timeout_info
from llm_gateway.jobs.common import ACTIVE_BATCH, TERMINAL_BATCH, dumps, iso, now, principal_fields
from llm_gateway.observability import logger
from llm_gateway.pipeline.auth import Authenticator, require_scope
from llm_gateway.pipeline.context import RequestContext, new_request_id
from llm_gateway.registry.capabilities import required_capabilities
from llm_gateway.registry.catalog import Catalog, get_catalog
from llm_gateway.service.http import HttpRequest, HttpResponse
from llm_gateway.stores.workflows import Workflows


class BatchCreateItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(min_length=1, max_length=256)
    request: ChatRequest


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[BatchCreateItem] = Field(min_length=1)
    metadata: dict[str, str] | None = Field(default=None, max_length=16)
    backend: Literal["auto", "provider", "gateway"] = "auto"


def choose_backend(models: list[Any], wanted: str) -> tuple[str, str | None]:
    """(backend, provider id): `openai` / `anthropic` (the provider's batch API) or `gateway`."""
    providers = {m.provider.id for m in models}
    eligible: str | None = None
    reason = "the requests go to more than one provider" if len(providers) > 1 else ""
    if len(providers) == 1:
        provider = models[0].provider
        if provider.kind not in PROVIDER_BACKENDS:
            reason = f"provider '{provider.id}' ({provider.kind}) has no batch API"
        elif provider.options.get("batch_api") is False:
            reason = f"provider '{provider.id}' has its batch API turned off (option batch_api)"
        elif any("batch" not in m.capabilities for m in models):
            reason = "some models lack the 'batch' capability: " + ", ".join(sorted({m.id for m in models if "batch" not in m.capabilities}))
        elif provider.kind == "openai" and len({m.id for m in models}) > 1:
            reason = "OpenAI's Batch API takes one model per batch"
        else:
            eligible = provider.kind
    if wanted == "gateway" or (wanted == "auto" and eligible is None):
        return "gateway", (next(iter(providers)) if len(providers) == 1 else None)
    if eligible is None:
        raise GatewayError("capability_not_supported", f"This batch cannot use a provider batch API: {reason}. "
                           "Use backend 'auto' or 'gateway' to have the gateway run it.",
                           errors=[{"path": "backend", "message": reason}])
    return eligible, models[0].provider.id


class BatchService:
    def __init__(self, runner: BatchRunner | None = None, workflows: Workflows | None = None,
                 auth: Authenticator | None = None) -> None:
        self._runner = runner
        self.workflows = workflows or Workflows()
        self.auth = auth or Authenticator()

    @property
    def runner(self) -> BatchRunner:
        return self._runner or batch_runner()

    @property
    def store(self) -> Any:
        return self.runner.store

    def _context(self, req: HttpRequest, rid: str) -> RequestContext:
        principal = self.auth.authenticate(req.headers, req.authorizer)
        require_scope(principal, "batches")
        return RequestContext(principal=principal, request_id=rid, route="batches")

    # ------------------------------------------------------------ HTTP
    def create(self, req: HttpRequest) -> HttpResponse:
        rid = req.request_id or new_request_id()
        try:
            ctx = self._context(req, rid)
            raw = check_body(req.body, req.headers.get("content-type"))
            try:
                batch = BatchCreate.model_validate_json(raw)
            except ValidationError as exc:
                raise from_validation_error(exc, "batch") from None
            models = self._validate(ctx, batch)
            backend, provider = choose_backend(models, batch.backend)
            if backend in PROVIDER_BACKENDS:
                self._check_provider_limits(batch, models[0].provider)
            meta = self._create(ctx, batch, backend, provider, models)
            return HttpResponse.json(202, self.runner.render(meta, results=False),
                                     {"Location": f"/batches/{meta['batch_id']}", "x-request-id": rid})
        except GatewayError as exc:
            return HttpResponse.problem(exc, rid)

    def get(self, req: HttpRequest, batch_id: str) -> HttpResponse:
        rid = req.request_id or new_request_id()
        try:
            ctx = self._context(req, rid)
            offset, limit = _slice(req.query)
            meta = self.load(ctx.tenant_id, batch_id)
            if offset and offset >= int(meta.get("count") or 0):
                raise GatewayError("validation_error", f"offset {offset} is past the batch's {meta.get('count')} requests.",
                                   errors=[{"path": "offset", "message": "past the last request"}])
            return HttpResponse.json(200, self.runner.render(meta, offset=offset, limit=limit), {"x-request-id": rid})
        except GatewayError as exc:
            return HttpResponse.problem(exc, rid)

    def cancel(self, req: HttpRequest, batch_id: str) -> HttpResponse:
        """Cancel a pending or in-progress batch (200 with the Batch); `conflict` if it finished.
        Requests already answered keep their results; the rest get the error `cancelled` (a
        provider batch keeps being followed until the provider confirms, to collect what ran)."""
        rid = req.request_id or new_request_id()
        try:
            ctx = self._context(req, rid)
            meta = self.load(ctx.tenant_id, batch_id)
            if meta["status"] in TERMINAL_BATCH:
                raise _conflict(meta)
            updated = self.store.update(batch_id, {"status": "cancelled", "cancelled_at": iso(now()), "updated_at": iso(now())},
                                        expect=ACTIVE_BATCH)
            if updated is None:
                raise _conflict(self.load(ctx.tenant_id, batch_id))
            if updated["backend"] in PROVIDER_BACKENDS:
                self.runner.cancel_at_provider(updated)  # the execution keeps polling to collect what ran
            else:
                self.workflows.stop(batch_id, "cancelled by the client")
            logger.info("batch cancelled", extra={"batch_id": batch_id, "tenant_id": ctx.tenant_id})
            return HttpResponse.json(200, self.runner.render(updated), {"x-request-id": rid})
        except GatewayError as exc:
            return HttpResponse.problem(exc, rid)

    # ------------------------------------------------------------ internals
    def load(self, tenant_id: str, batch_id: str) -> dict[str, Any]:
        parsed = ids.parse("batch", batch_id, tenant_id)
        if parsed is None:
            raise _not_found(batch_id)
        t = now()
        if parsed.expired(t):
            raise _expired(batch_id, parsed.expires_at)
        meta = self.store.get(batch_id)
        if meta is None or meta.get("tenant_id") != tenant_id:
            raise _not_found(batch_id)
        if float(meta.get("ttl") or 0) <= t:
            raise _expired(batch_id, int(meta["ttl"]))
        if meta["status"] in ACTIVE_BATCH and meta.get("deadline") and t >= float(meta["deadline"]):
            self.runner.fail_meta(batch_id, batch_timeout_info(settings().batch_max_run_s))
            self.runner.cancel_at_provider(meta)
            meta = self.store.get(batch_id) or meta
        return meta

    def _validate(self, ctx: RequestContext, batch: BatchCreate) -> list[Any]:
        s = settings()
        n = len(batch.requests)
        if n > s.batch_max_requests:
            raise GatewayError("validation_error", f"The batch has {n} requests; the gateway takes at most {s.batch_max_requests} per batch.",
                               errors=[{"path": "requests", "message": f"at most {s.batch_max_requests} requests"}],
                               limit=s.batch_max_requests)
        seen: dict[str, int] = {}
        dups = []
        for i, item in enumerate(batch.requests):
            if item.custom_id in seen:
                dups.append({"path": f"requests[{i}].custom_id",
                             "message": f"duplicate of requests[{seen[item.custom_id]}].custom_id ({item.custom_id[:64]!r})"})
            else:
                seen[item.custom_id] = i
        if dups:
            raise GatewayError("validation_error", f"custom_id must be unique within a batch: {dups[0]['path']}: {dups[0]['message']}"
                               + (f" (and {len(dups) - 1} more)" if len(dups) > 1 else ""), errors=dups)
        catalog = get_catalog()
        governance = self.runner.governance
        models = []
        for i, item in enumerate(batch.requests):
            request = item.request
            where = f"requests[{i}].request"
            if request.stream:
                raise GatewayError("validation_error", f"{where}.stream: batch requests are answered whole; stream must be false.",
                                   errors=[{"path": f"{where}.stream", "message": "must be false in a batch"}])
            try:
                model = catalog.resolve(request.model)
                Catalog.require(model, required_capabilities(request))
                if governance.enabled:
                    governance.check_model(ctx, model, where=f" ({where})")
            except GatewayError as exc:
                exc.detail = f"{where}: {exc.detail}"
                exc.errors = exc.errors or [{"path": f"{where}.model", "message": exc.detail}]
                raise
            models.append(model)
        return models

    @staticmethod
    def _check_provider_limits(batch: BatchCreate, provider: Any) -> None:
        from llm_gateway.jobs.backends import BACKENDS

        cls = BACKENDS[provider.kind]
        max_requests = int(provider.options.get("batch_max_requests") or cls.max_requests)
        if len(batch.requests) > max_requests:
            raise GatewayError("validation_error",
                               f"The batch has {len(batch.requests)} requests; provider '{provider.id}' takes at most {max_requests} "
                               "per batch. Split it, or send it with backend 'gateway'.",
                               errors=[{"path": "requests", "message": f"at most {max_requests} requests for provider '{provider.id}'"}],
                               provider=provider.id, limit=max_requests)

    def _create(self, ctx: RequestContext, batch: BatchCreate, backend: str, provider: str | None,
                models: list[Any]) -> dict[str, Any]:
        s = settings()
        t = now()
        expires = t + s.batch_ttl_hours * 3600
        batch_id = ids.mint("batch", ctx.tenant_id, expires)
        lines = [dumps({"custom_id": it.custom_id, "request": json.loads(it.request.model_dump_json(by_alias=True, exclude_none=True))})
                 for it in batch.requests]
        input_key = self.store.blobs.put(ctx.tenant_id, batch_id, "input.jsonl", ("\n".join(lines) + "\n").encode("utf-8"),
                                         content_type="application/jsonl")
        meta: dict[str, Any] = {
            "batch_id": batch_id, **principal_fields(ctx.principal), "status": "pending", "created_at": iso(t),
            "expires_at": iso(expires), "ttl": int(expires), "deadline": int(t + min(s.batch_max_run_s, s.batch_ttl_hours * 3600)),
            "backend": backend, "provider": provider, "count": len(batch.requests), "completed": 0, "failed": 0,
            "chunk_size": s.batch_chunk_size, "input_key": input_key, "request_id": ctx.request_id, "updated_at": iso(t),
            "models": ",".join(sorted({m.id for m in models}))[:1000],
        }
        if batch.metadata:
            meta["metadata"] = dumps(batch.metadata)
        self.store.create(meta)
        try:
            self.workflows.start("batch", batch_id)
        except Exception as exc:  # noqa: BLE001 - never leave a batch pending without a worker
            logger.error("batch start failed", extra={"batch_id": batch_id, "error_type": type(exc).__name__})
            self.runner.fail_meta(batch_id, {"code": "internal_error", "message": "The batch could not be started."})
            raise GatewayError("internal_error", "The batch could not be started; nothing was run.", batch_id=batch_id) from None
        logger.info("batch accepted", extra={"batch_id": batch_id, "tenant_id": ctx.tenant_id, "backend": backend,
                                             "requests": len(batch.requests)})
        return meta


def _slice(query: dict[str, str]) -> tuple[int, int | None]:
    """`?offset=&limit=` (extension): a page of `requests` for large batches."""
    out = []
    for name in ("offset", "limit"):
        raw = query.get(name)
        if raw is None or raw == "":
            out.append(None)
            continue
        if not raw.isdigit() or (name == "limit" and int(raw) == 0):
            raise GatewayError("validation_error", f"{name} must be a {'positive' if name == 'limit' else 'non-negative'} integer.",
                               errors=[{"path": name, "message": "integer expected"}])
        out.append(int(raw))
    return out[0] or 0, out[1]


def _not_found(batch_id: str) -> GatewayError:
    return GatewayError("batch_not_found", f"There is no batch '{batch_id[:80]}' for these credentials.")


def _expired(batch_id: str, expires_at: int) -> GatewayError:
    return GatewayError("batch_expired", f"Batch '{batch_id[:80]}' expired at {iso(expires_at)}; its results are no longer kept.",
                        expired_at=iso(expires_at))


def _conflict(meta: dict[str, Any]) -> GatewayError:
    return GatewayError("conflict", f"Batch '{meta['batch_id']}' is already {meta['status']}; only pending or in-progress batches "
                        "can be cancelled.", status_now=meta["status"])


_service: BatchService | None = None


def batch_service() -> BatchService:
    global _service
    if _service is None:
        _service = BatchService()
    return _service


@resets.register
def reset_batch_service() -> None:
    global _service
    _service = None
