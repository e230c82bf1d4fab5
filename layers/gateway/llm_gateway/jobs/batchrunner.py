"""Running a batch: the workflow's batch steps, per-request results, and the Batch body.

Backends (chosen when the batch is created, `batch_service.py`):
- `openai` / `anthropic` — the provider's batch API (`backends.py`): `start` translates every
  request with the provider's adapter and submits them, `poll` follows the provider batch with
  backoff and, once it ended, stores each request's result (or error) and reports its usage,
  priced with the model's `batch_discount`;
- `gateway` — providers without a batch API: `start` plans chunks of `LLMGW_BATCH_CHUNK_SIZE`
  requests, the state machine's Map runs up to `LLMGW_BATCH_MAX_CONCURRENCY` chunks at once,
  each chunk runs its requests through the ordinary chat pipeline (`LLMGW_BATCH_ITEM_CONCURRENCY`
  at a time; usage recorded per request), `finish` marks the batch completed.

Results are written per request as they are known (one item each), so `GET /batches/{id}`
shows partial results of gateway-run batches chunk by chunk, and progress counts
(`request_counts`) of provider batches while the provider works. A request that did not run
(cancelled batch, provider window expired) gets an error (`cancelled`, `batch_expired`); one
that failed gets its own error; the rest of the batch is unaffected.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llm_gateway import resets
from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.api.render import response_body
from llm_gateway.config import settings
from llm_gateway.jobs.backends import CANCELLED, EXPIRED, BatchBackend, BatchProgress, backend_for
from llm_gateway.jobs.collaborators import PipelineCollaborators
from llm_gateway.jobs.common import ACTIVE_BATCH, TERMINAL_BATCH, backoff, dumps, error_info, iso, now, principal_of, step_result
from llm_gateway.jobs.jobrunner import charge_budgets_on_report
from llm_gateway.observability import logger
from llm_gateway.pipeline.context import RequestContext
from llm_gateway.providers.base import ProviderCall
from llm_gateway.stores.batches import BatchStore

PROVIDER_BACKENDS = ("openai", "anthropic")
RATE_LIMIT_RETRIES = 3  # gateway-run requests refused by a rate limit wait and retry (inside the chunk)
RATE_LIMIT_WAIT_S = 20.0


def provider_item_id(index: int) -> str:
    return f"r{index}"


def batch_timeout_info(limit_s: int) -> dict[str, str]:
    return {"code": "batch_timeout", "message": f"The batch did not finish within its time limit ({limit_s} s); it was stopped."}


class BatchRunner(PipelineCollaborators):
    def __init__(self, store: BatchStore | None = None, pipeline: Any = None, usage: Any = None) -> None:
        self.store = store or BatchStore()
        self._pipeline = pipeline
        self._usage = usage
        self._inputs: dict[str, list[dict[str, Any]]] = {}

    # ------------------------------------------------------------ pieces
    def items(self, meta: dict[str, Any]) -> list[dict[str, Any]]:
        """The batch's requests (`{"custom_id", "request"}`, in order) from its JSONL in S3."""
        key = meta["input_key"]
        cached = self._inputs.get(key)
        if cached is None:
            text = self.store.blobs.get(key).decode("utf-8")
            cached = [json.loads(line) for line in text.splitlines() if line.strip()]
            if len(self._inputs) > 16:
                self._inputs.clear()
            self._inputs[key] = cached
        return cached

    def context(self, meta: dict[str, Any], index: int, request: ChatRequest) -> RequestContext:
        ctx = RequestContext(principal=principal_of(meta), request_id=f"req_{meta['batch_id']}_{index}", route="batches")
        ctx.request = request
        ctx.attributes["usage_record"] = {"batch_id": meta["batch_id"], "batch_index": index}
        return ctx

    @staticmethod
    def call_for(ctx: RequestContext, request: ChatRequest, *, media: bool) -> ProviderCall:
        from llm_gateway.pipeline.chat import ModelResolver
        from llm_gateway.pipeline.invoke import deadline_for
        from llm_gateway.pipeline.structured import prepare_response_schema
        from llm_gateway.pipeline.tools import resolve_tools

        ModelResolver().resolve(ctx, request)
        model = ctx.model
        call = ProviderCall(request=request, model=model, deadline=deadline_for(request, model), tools=resolve_tools(request),
                            tenant_id=ctx.tenant_id, request_id=ctx.request_id)
        schema = prepare_response_schema(request)
        if schema is not None:
            call.extra["response_schema"] = schema
        if media and any(p.type in ("image", "audio", "video", "document") for m in request.messages for p in m.content):
            from llm_gateway.pipeline.media import MediaResolver

            call.extra["media"] = MediaResolver().resolve(request, model, ctx.tenant_id)
        return call

    def _row(self, meta: dict[str, Any], index: int, *, result: dict[str, Any] | None = None,
             error: dict[str, str] | None = None) -> dict[str, Any]:
        row: dict[str, Any] = {"index": index}
        if error is not None:
            row["error"] = error
            return row
        data = dumps(result).encode("utf-8")
        if len(data) <= settings().job_inline_bytes:
            row["result"] = data.decode("utf-8")
        else:
            row["result_key"] = self.store.blobs.put(meta["tenant_id"], meta["batch_id"], f"r{index}.json", data)
        return row

    # ------------------------------------------------------------ workflow steps
    def start(self, batch_id: str) -> dict[str, Any]:
        s = settings()
        meta = self.store.get(batch_id)
        if meta is None or meta["status"] != "pending":
            return step_result()
        if meta["backend"] not in PROVIDER_BACKENDS:
            chunks = list(range(math.ceil(int(meta["count"]) / max(1, int(meta.get("chunk_size") or s.batch_chunk_size)))))
            if self.store.update(batch_id, {"status": "in_progress", "updated_at": iso(now())}, expect=("pending",)) is None:
                return step_result()
            return step_result("map", chunks=chunks, max_concurrency=s.batch_max_concurrency)
        return self._submit(meta)

    def _submit(self, meta: dict[str, Any]) -> dict[str, Any]:
        s = settings()
        batch_id = meta["batch_id"]
        items = self.items(meta)
        from llm_gateway.registry.catalog import get_catalog

        backend = backend_for(get_catalog().providers[meta["provider"]])
        entries: list[tuple[str, dict[str, Any]]] = []
        calls: list[ProviderCall] = []
        refused: list[dict[str, Any]] = []
        for i, it in enumerate(items):
            request = ChatRequest.model_validate(it["request"])
            ctx = self.context(meta, i, request)
            try:
                call = self.call_for(ctx, request, media=True)
                entries.append((provider_item_id(i), backend.body(call)))
                calls.append(call)
            except GatewayError as exc:  # this request cannot be sent; the others can
                refused.append(self._row(meta, i, error=error_info(exc)))
        if refused:
            self.store.put_results(batch_id, refused, int(meta["ttl"]))
        if not entries:
            self.store.update(batch_id, {"status": "completed", "failed": len(refused), "updated_at": iso(now()),
                                         "finished_at": iso(now())}, expect=("pending",))
            return step_result()
        max_requests, max_bytes = backend.limits()
        size = sum(len(dumps(body)) + 96 for _, body in entries)
        if len(entries) > max_requests or size > max_bytes:
            info = {"code": "validation_error",
                    "message": f"The batch is over provider '{backend.provider.id}''s batch limits "
                               f"({len(entries)} requests / {size} bytes; at most {max_requests} / {max_bytes})."}
            self.store.update(batch_id, {"status": "failed", "error": info, "updated_at": iso(now())}, expect=("pending",))
            return step_result()
        try:
            state = backend.submit(batch_id, entries, calls)
        except GatewayError as exc:
            self.store.update(batch_id, {"status": "failed", "error": error_info(exc), "updated_at": iso(now())},
                              expect=("pending",))
            return step_result()
        values = {"provider_batch_id": state["provider_batch_id"], "provider_state": state, "submitted": len(entries),
                  "failed": len(refused), "updated_at": iso(now())}
        updated = self.store.update(batch_id, {**values, "status": "in_progress"}, expect=("pending",))
        if updated is None:  # cancelled while submitting: cancel there too, then collect what ran
            self.store.update(batch_id, values)
            self._cancel_at_provider(backend, state, batch_id)
        logger.info("batch submitted", extra={"batch_id": batch_id, "backend": backend.name,
                                              "provider_batch_id": state["provider_batch_id"], "requests": len(entries)})
        return step_result("poll", wait_s=backoff(0, s.batch_poll_initial_s, s.batch_poll_max_s), attempt=0)

    def poll(self, batch_id: str, attempt: int) -> dict[str, Any]:
        s = settings()
        meta = self.store.get(batch_id)
        if meta is None or meta["backend"] not in PROVIDER_BACKENDS or not meta.get("provider_state"):
            return step_result()
        if meta["status"] not in ("in_progress", "cancelled"):
            return step_result()
        from llm_gateway.registry.catalog import get_catalog

        backend = backend_for(get_catalog().providers[meta["provider"]])
        state = json.loads(meta["provider_state"])
        if meta.get("deadline") and now() >= float(meta["deadline"]):
            self._cancel_at_provider(backend, state, batch_id)
            if meta["status"] == "in_progress":
                self.fail_meta(batch_id, batch_timeout_info(s.batch_max_run_s))
            return step_result()
        try:
            progress = backend.poll(state)
        except GatewayError as exc:
            if exc.code in ("rate_limited", "provider_timeout") or (exc.code == "provider_error" and exc.retry_after_s):
                return step_result("poll", wait_s=backoff(attempt + 1, s.batch_poll_initial_s, s.batch_poll_max_s), attempt=attempt + 1)
            raise
        if not progress.ended:
            self.store.update(batch_id, {"provider_status": progress.provider_status, "completed": progress.completed,
                                         "failed": progress.failed + _refused(meta),
                                         "updated_at": iso(now())})
            return step_result("poll", wait_s=backoff(attempt + 1, s.batch_poll_initial_s, s.batch_poll_max_s), attempt=attempt + 1)
        self._collect(meta, backend, state, progress)
        return step_result()

    def _collect(self, meta: dict[str, Any], backend: BatchBackend, state: dict[str, Any], progress: BatchProgress) -> None:
        batch_id = meta["batch_id"]
        items = self.items(meta)
        existing = self.store.results(batch_id)
        index_of = {provider_item_id(i): i for i in range(len(items)) if i not in existing}
        rows: dict[int, dict[str, Any]] = {}
        for cid, wire, err in backend.results(state, progress):
            i = index_of.get(cid)
            if i is None or i in rows:
                continue
            if err is not None:
                rows[i] = self._row(meta, i, error=err)
                continue
            request = ChatRequest.model_validate(items[i]["request"])
            ctx = self.context(meta, i, request)
            try:
                call = self.call_for(ctx, request, media=False)
                result = backend.parse(call, wire)
                rows[i] = self._row(meta, i, result=self._response(ctx, call, result))
            except GatewayError as exc:
                rows[i] = self._row(meta, i, error=error_info(exc))
        missing = {"expired": EXPIRED, "cancelled": CANCELLED}.get(progress.outcome or "")
        for cid, i in index_of.items():
            if i not in rows:
                rows[i] = self._row(meta, i, error=dict(missing) if missing else {
                    "code": "provider_error", "message": f"Provider '{backend.provider.id}' returned no result for this request."})
        self.store.put_results(batch_id, list(rows.values()), int(meta["ttl"]))
        all_rows = {**existing, **rows}
        ok = sum(1 for r in all_rows.values() if "error" not in r)
        values: dict[str, Any] = {"completed": ok, "failed": len(all_rows) - ok, "provider_status": progress.provider_status,
                                  "updated_at": iso(now()), "finished_at": iso(now())}
        if meta["status"] == "in_progress":
            if progress.outcome == "failed":
                values.update(status="failed", error=progress.error or {"code": "provider_error", "message": "The provider failed the batch."})
            elif progress.outcome == "expired":
                values.update(status="failed", error={"code": "batch_expired", "message":
                              f"Provider '{backend.provider.id}''s batch window ended before every request ran; "
                              "the requests that ran have results."})
            elif progress.outcome == "cancelled":
                values.update(status="cancelled")
            else:
                values.update(status="completed")
        self.store.update(batch_id, values, expect=("in_progress", "cancelled"))
        logger.info("batch finished", extra={"batch_id": batch_id, "backend": backend.name, "outcome": progress.outcome,
                                             "completed": ok, "failed": len(all_rows) - ok})

    def _response(self, ctx: RequestContext, call: ProviderCall, result: Any) -> dict[str, Any]:
        """A provider-batch answer as a Response: structured output checked, usage priced with the
        batch discount and reported."""
        model = call.model
        parsed = None
        if call.response_schema is not None and request_wants_schema(ctx.request):
            from llm_gateway.pipeline.structured import text_of_parts, validate_answer

            parsed = validate_answer(call.response_schema, text_of_parts(result.content))
        result.usage.batch = True
        ctx.model = ctx.model_used = model
        ctx.usage = result.usage
        ctx.finish_reason = result.finish_reason
        cost = self.usage.price(ctx)
        body = response_body(response_id=f"gen_{ctx.request_id.removeprefix('req_')}", model_used=model.id,
                             provider=model.provider.id, content=result.content, tool_calls=result.tool_calls,
                             finish_reason=result.finish_reason, usage=result.usage, cost=cost, fallback_used=False,
                             parsed=parsed)
        body["usage"]["batch"] = True
        charge_budgets_on_report(ctx)
        self.usage.report(ctx)
        return body

    def chunk(self, batch_id: str, chunk: int) -> dict[str, Any]:
        """Gateway-run batches: run one chunk's requests through the chat pipeline."""
        s = settings()
        meta = self.store.get(batch_id)
        if meta is None or meta["status"] != "in_progress":
            return {"done": 0}
        items = self.items(meta)
        size = max(1, int(meta.get("chunk_size") or s.batch_chunk_size))
        first, last = chunk * size, min(len(items), (chunk + 1) * size) - 1
        if first > last:
            return {"done": 0}
        done = self.store.results(batch_id, first, last)  # a retried chunk skips what already ran
        todo = [i for i in range(first, last + 1) if i not in done]

        def run(i: int) -> dict[str, Any]:
            request = ChatRequest.model_validate(items[i]["request"])
            for attempt in range(RATE_LIMIT_RETRIES + 1):
                ctx = self.context(meta, i, request)
                try:
                    return self._row(meta, i, result=self.pipeline.complete(ctx, request))
                except GatewayError as exc:
                    if exc.code != "rate_limited" or attempt == RATE_LIMIT_RETRIES:
                        return self._row(meta, i, error=error_info(exc))
                    time.sleep(min(RATE_LIMIT_WAIT_S, max(0.5, float(exc.retry_after_s or 1.0))))
                except Exception as exc:  # noqa: BLE001 - one broken request must not fail the others
                    logger.error("batch request failed", extra={"batch_id": batch_id, "index": i, "error_type": type(exc).__name__})
                    return self._row(meta, i, error={"code": "internal_error", "message": "The gateway failed on this request."})
            return self._row(meta, i, error={"code": "internal_error", "message": "The gateway failed on this request."})

        width = max(1, min(s.batch_item_concurrency, len(todo)))
        if width == 1:
            rows = [run(i) for i in todo]
        else:
            with ThreadPoolExecutor(max_workers=width, thread_name_prefix="batch") as pool:
                rows = list(pool.map(run, todo))
        if rows:
            self.store.put_results(batch_id, rows, int(meta["ttl"]))
            ok = sum(1 for r in rows if "error" not in r)
            self.store.update(batch_id, {"updated_at": iso(now())}, add={"completed": ok, "failed": len(rows) - ok})
        return {"done": len(rows)}

    def finish(self, batch_id: str) -> dict[str, Any]:
        self.store.update(batch_id, {"status": "completed", "updated_at": iso(now()), "finished_at": iso(now())},
                          expect=("in_progress",))
        return step_result()

    def fail(self, batch_id: str, error: dict[str, Any] | None) -> dict[str, Any]:
        kind = (error or {}).get("Error") or "unknown"
        logger.warning("batch step failed", extra={"batch_id": batch_id, "error_type": kind})
        self.fail_meta(batch_id, {"code": "internal_error", "message": f"The batch's worker failed ({kind[:100]}); the batch was stopped."})
        return step_result()

    def fail_meta(self, batch_id: str, info: dict[str, str]) -> bool:
        return self.store.update(batch_id, {"status": "failed", "error": info, "updated_at": iso(now()),
                                            "finished_at": iso(now())}, expect=ACTIVE_BATCH) is not None

    def _cancel_at_provider(self, backend: BatchBackend, state: dict[str, Any], batch_id: str) -> None:
        try:
            backend.cancel(state)
        except Exception as exc:  # noqa: BLE001 - best effort; polling collects whatever ran
            logger.warning("provider batch cancel failed", extra={"batch_id": batch_id, "error_type": type(exc).__name__})

    def cancel_at_provider(self, meta: dict[str, Any]) -> None:
        if meta.get("backend") not in PROVIDER_BACKENDS or not meta.get("provider_state"):
            return
        from llm_gateway.registry.catalog import get_catalog

        backend = backend_for(get_catalog().providers[meta["provider"]])
        self._cancel_at_provider(backend, json.loads(meta["provider_state"]), meta["batch_id"])

    # ------------------------------------------------------------ the Batch body
    def render(self, meta: dict[str, Any], *, results: bool = True, offset: int = 0, limit: int | None = None) -> dict[str, Any]:
        """The Batch. `offset` / `limit` (the `GET` query extension) return a slice of `requests`
        — for batches whose full answer would be too large — while `request_counts` and `usage`
        cover the slice's results and the whole batch's progress."""
        all_items = self.items(meta)
        end = len(all_items) if limit is None else min(len(all_items), offset + limit)
        items = all_items[offset:end]
        if results and items:
            rows = self.store.results(meta["batch_id"], offset, end - 1) if (offset or end < len(all_items)) else self.store.results(meta["batch_id"])
        else:
            rows = {}
        status = meta["status"]
        # a cancelled provider batch is still followed until the provider ends it (to collect what
        # ran): until then its unanswered requests are pending, not cancelled
        final = status in TERMINAL_BATCH and not (status == "cancelled" and meta.get("backend") in PROVIDER_BACKENDS
                                                  and meta.get("provider_state") and not meta.get("finished_at"))
        batch_error = json.loads(meta["error"]) if meta.get("error") else None
        requests = []
        ok = failed = 0
        usage = {"input_tokens": 0, "output_tokens": 0, "cost_estimate": 0.0}
        for i, it in enumerate(items, start=offset):
            entry: dict[str, Any] = {"custom_id": it["custom_id"], "request": it["request"]}
            row = rows.get(i)
            if row is not None:
                if row.get("error"):
                    entry["error"] = json.loads(row["error"])
                    failed += 1
                else:
                    raw = row.get("result") or self.store.blobs.get(row["result_key"])
                    result = json.loads(raw)
                    entry["result"] = result
                    ok += 1
                    u = result.get("usage") or {}
                    usage["input_tokens"] += int(u.get("input_tokens") or 0)
                    usage["output_tokens"] += int(u.get("output_tokens") or 0)
                    usage["cost_estimate"] += float(u.get("cost_estimate") or 0.0)
            elif final:
                entry["error"] = dict(CANCELLED) if status == "cancelled" else (dict(batch_error) if batch_error else {
                    "code": "provider_error", "message": "No result was returned for this request."})
                failed += 1
            requests.append(entry)
        total = len(all_items)
        if len(items) < total:  # a slice: the counts are the batch's (from its meta item)
            ok = int(meta.get("completed") or 0)
            failed = int(meta.get("failed") or 0)
        elif not final:  # provider progress counts while the provider works
            ok = max(ok, int(meta.get("completed") or 0))
            failed = max(failed, int(meta.get("failed") or 0))
        usage["cost_estimate"] = round(usage["cost_estimate"], 10)
        body: dict[str, Any] = {
            "id": meta["batch_id"], "status": status, "requests": requests, "created_at": meta["created_at"],
            "expires_at": meta["expires_at"], "backend": meta["backend"], "provider": meta.get("provider"),
            "request_counts": {"total": total, "completed": ok, "failed": failed, "pending": max(0, total - ok - failed)},
            "usage": usage,
        }
        if len(items) < total:
            body["slice"] = {"offset": offset, "limit": len(items), "total": total}
        if batch_error:
            body["error"] = batch_error
        if meta.get("metadata"):
            body["metadata"] = json.loads(meta["metadata"])
        return body


def request_wants_schema(request: ChatRequest | None) -> bool:
    return request is not None and request.response_schema is not None


def _refused(meta: dict[str, Any]) -> int:
    """Requests refused before submission (counted as failed from the start)."""
    submitted = meta.get("submitted")
    return max(0, int(meta.get("count") or 0) - int(submitted)) if submitted is not None else 0


_runner: BatchRunner | None = None


def batch_runner() -> BatchRunner:
    global _runner
    if _runner is None:
        _runner = BatchRunner()
    return _runner


@resets.register
def reset_batch_runner() -> None:
    global _runner
    _runner = None
