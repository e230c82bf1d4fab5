"""Running a job: the workflow's job steps, the outcome writes, and the Job body.

- A sync provider behind a job runs the ordinary `ChatPipeline.complete` inside the worker
  (usage recorded with `route: jobs` and the `job_id`). Provider rate limits and transient
  provider errors with a retry hint are retried by the workflow (`LLMGW_JOB_MAX_RETRIES`).
- An async provider (long-running task, e.g. video generation) is started (`start_async`),
  then polled by the workflow with backoff (`poll_async`) until done; its media (`data:` URLs)
  is stored under the tenant's `generated/` prefix.
- Every outcome is a conditional write (`status` must still be pending/running), so a job
  cancelled meanwhile keeps `cancelled` and its late result is dropped.

Results: the Response JSON is kept inline in the job item up to `LLMGW_JOB_INLINE_BYTES`, else
in S3; `GET /jobs/{id}` returns it inline up to `LLMGW_JOB_RESULT_URL_BYTES`, beyond that as a
presigned `result_url` (extension). Generated media is stored as `s3://` URIs and presigned on
each read, so a job's media links never expire before the job does.
"""

from __future__ import annotations

import json
from typing import Any

from llm_gateway import resets
from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.api.render import response_body
from llm_gateway.config import settings
from llm_gateway.jobs.collaborators import PipelineCollaborators
from llm_gateway.jobs.common import (
    ACTIVE_JOB,
    TERMINAL_JOB,
    backoff,
    dumps,
    error_info,
    iso,
    now,
    principal_of,
    retryable,
    step_result,
)
from llm_gateway.observability import logger
from llm_gateway.pipeline.context import RequestContext
from llm_gateway.providers.base import ChatResult, ProviderCall
from llm_gateway.stores.jobs import JobStore

PRESIGN_S = 3600


class JobRunner(PipelineCollaborators):
    def __init__(self, store: JobStore | None = None, pipeline: Any = None, usage: Any = None, files: Any = None) -> None:
        self.store = store or JobStore()
        self._pipeline = pipeline
        self._usage = usage
        self._files = files

    # ------------------------------------------------------------ collaborators (built on first use)
    @property
    def files(self) -> Any:
        if self._files is None:
            from llm_gateway.stores.files import FileStorage

            self._files = FileStorage()
        return self._files

    # ------------------------------------------------------------ a job's pieces
    def request_of(self, item: dict[str, Any]) -> ChatRequest:
        raw = item.get("request")
        if raw is None:
            raw = self.store.blobs.get(item["request_key"]).decode("utf-8")
        return ChatRequest.model_validate_json(raw)

    def request_json(self, item: dict[str, Any]) -> Any:
        raw = item.get("request")
        if raw is None:
            raw = self.store.blobs.get(item["request_key"])
        return json.loads(raw)

    def context(self, item: dict[str, Any], request: ChatRequest | None = None) -> RequestContext:
        ctx = RequestContext(principal=principal_of(item), request_id=item.get("request_id") or "req_" + item["job_id"],
                             route="jobs")
        ctx.request = request
        ctx.attributes["usage_record"] = {"job_id": item["job_id"]}
        return ctx

    @staticmethod
    def model_for(ctx: RequestContext, request: ChatRequest) -> Any:
        from llm_gateway.pipeline.chat import ModelResolver

        ModelResolver().resolve(ctx, request)
        return ctx.model

    @staticmethod
    def call_for(ctx: RequestContext, request: ChatRequest, model: Any) -> ProviderCall:
        from llm_gateway.pipeline.invoke import deadline_for
        from llm_gateway.pipeline.tools import resolve_tools

        tools = resolve_tools(request)
        return ProviderCall(request=request, model=model, deadline=deadline_for(request, model), tools=tools,
                            tenant_id=ctx.tenant_id, request_id=ctx.request_id)

    @staticmethod
    def adapter(model: Any) -> Any:
        from llm_gateway.providers import adapter_for

        return adapter_for(model.provider)

    # ------------------------------------------------------------ workflow steps
    def start(self, job_id: str) -> dict[str, Any]:
        item = self.store.get(job_id)
        if item is None:
            # the API writes the job and starts its execution side by side: wait for the write
            # (the state machine retries `JobNotReady`, then marks the job failed)
            raise JobNotReady(f"job {job_id} is not readable yet")
        if item["status"] in TERMINAL_JOB:
            return step_result()
        s = settings()
        if item.get("async_task") and item.get("handle"):  # started inline by a sync request: keep polling
            attempt = int(item.get("attempt") or 0)
            return step_result("poll", wait_s=backoff(attempt, s.job_poll_initial_s, s.job_poll_max_s), attempt=attempt)
        if item["status"] == "pending":
            item = self.store.update(job_id, {"status": "running", "started_at": iso(now()), "updated_at": iso(now())},
                                     expect=("pending",))
            if item is None:
                return step_result()
        return self._run(item, 0)

    def poll(self, job_id: str, attempt: int) -> dict[str, Any]:
        item = self.store.get(job_id)
        if item is None or item["status"] != "running":
            return step_result()
        if now() >= float(item.get("deadline") or 0) and item.get("deadline"):
            if self.fail_item(item, timeout_info(settings().job_max_run_s)):
                self.cancel_task(item)
            return step_result()
        if not item.get("async_task"):
            return self._run(item, attempt)  # a retry after a retryable error
        s = settings()
        request = self.request_of(item)
        ctx = self.context(item, request)
        try:
            model = self.model_for(ctx, request)
            call = self.call_for(ctx, request, model)
            handle = json.loads(item["handle"])
            done, result = self.adapter(model).poll_async(call, handle)
        except GatewayError as exc:
            self.fail_item(item, error_info(exc))
            return step_result()
        if not done or result is None:
            updated = self.store.update(job_id, {"handle": handle, "attempt": attempt + 1, "updated_at": iso(now())},
                                        expect=("running",))
            if updated is None:
                return step_result()
            return step_result("poll", wait_s=backoff(attempt + 1, s.job_poll_initial_s, s.job_poll_max_s), attempt=attempt + 1)
        self.finish_async(item, ctx, model, result)
        return step_result()

    def fail(self, job_id: str, error: dict[str, Any] | None) -> dict[str, Any]:
        """The state machine caught a failed step: the job must not stay pending/running."""
        item = self.store.get(job_id)
        if item is not None and item["status"] not in TERMINAL_JOB:
            kind = (error or {}).get("Error") or "unknown"
            logger.warning("job step failed", extra={"job_id": job_id, "error_type": kind})
            self.fail_item(item, {"code": "internal_error", "message": f"The job's worker failed ({kind[:100]}); the job was stopped."})
        return step_result()

    def _run(self, item: dict[str, Any], attempt: int) -> dict[str, Any]:
        s = settings()
        request = self.request_of(item)
        ctx = self.context(item, request)
        try:
            model = self.model_for(ctx, request)
            adapter = self.adapter(model)
            if adapter.is_async(model):
                request = self.governance.before_call(ctx, request)  # approval, limits, budget, hooks
                call = self.call_for(ctx, request, model)
                adapter.check(call)
                handle = adapter.start_async(call)
                updated = self.store.update(item["job_id"], {"handle": handle, "async_task": True, "attempt": 0,
                                                             "updated_at": iso(now())}, expect=("running",))
                if updated is None:  # cancelled while starting
                    adapter.cancel_async(call, handle)
                    return step_result()
                return step_result("poll", wait_s=backoff(0, s.job_poll_initial_s, s.job_poll_max_s), attempt=0)
            ctx = self.context(item, request)  # a fresh context: the pipeline fills it
            body = self.pipeline.complete(ctx, request)
        except GatewayError as exc:
            if retryable(exc) and attempt < s.job_max_retries:
                wait = max(s.job_poll_initial_s, int(-(-float(exc.retry_after_s or 0) // 1)))
                updated = self.store.update(item["job_id"], {"attempt": attempt + 1, "updated_at": iso(now()),
                                                             "last_error": error_info(exc)}, expect=("running",))
                if updated is None:
                    return step_result()
                return step_result("poll", wait_s=min(wait, max(s.job_poll_max_s, s.job_poll_initial_s)), attempt=attempt + 1)
            self.fail_item(item, error_info(exc))
            return step_result()
        self.complete_item(item, body)
        return step_result()

    def cancel_task(self, item: dict[str, Any]) -> None:
        """Cancel the job's provider task, where there is one (best effort)."""
        if not item.get("async_task") or not item.get("handle"):
            return
        try:
            request = self.request_of(item)
            ctx = self.context(item, request)
            model = self.model_for(ctx, request)
            handle = item["handle"] if isinstance(item["handle"], dict) else json.loads(item["handle"])
            self.adapter(model).cancel_async(self.call_for(ctx, request, model), handle)
        except Exception as exc:  # noqa: BLE001 - best effort: the job is finished either way
            logger.warning("provider task cancel failed", extra={"job_id": item["job_id"], "error_type": type(exc).__name__})

    # ------------------------------------------------------------ outcomes
    def finish_async(self, item: dict[str, Any], ctx: RequestContext, model: Any, result: ChatResult,
                     *, presign: bool = False) -> dict[str, Any]:
        """A finished provider task: store its media (checked and kept under `generated/<tenant>/`
        by the media-output step), price and report usage, complete the job. Returns the Response
        body — media as presigned URLs when `presign`, else as `s3://` URIs (presigned on read)."""
        from llm_gateway.pipeline.modalities import media_outputs

        content, media = media_outputs().store(ctx.tenant_id, result.content, provider=model.provider.id)
        ctx.model = ctx.model_used = model
        ctx.usage = result.usage
        ctx.finish_reason = result.finish_reason
        record = ctx.attributes.setdefault("usage_record", {})
        record["modality"] = "video" if any(p.get("type") == "video" for p in content) else "async_task"
        if result.usage.seconds:
            record["media_seconds"] = round(result.usage.seconds, 3)
        if media:
            record["media_bytes"] = sum(int(m.get("bytes") or 0) for m in media)
        cost = self.usage.price(ctx)
        body = response_body(
            response_id="gen_" + ctx.request_id.removeprefix("req_"), model_used=model.id, provider=model.provider.id,
            content=content, tool_calls=result.tool_calls, finish_reason=result.finish_reason, usage=result.usage,
            cost=cost, fallback_used=False,
        )
        if media:
            body["media"] = media
        charge_budgets_on_report(ctx)
        self.usage.report(ctx)
        self.complete_item(item, self.unsign_media(body))
        return body if presign else self.unsign_media(body)

    def complete_item(self, item: dict[str, Any], body: dict[str, Any]) -> bool:
        s = settings()
        data = dumps(body).encode("utf-8")
        values: dict[str, Any] = {"status": "completed", "updated_at": iso(now()), "finished_at": iso(now()),
                                  "result_bytes": len(data)}
        if len(data) <= s.job_inline_bytes:
            values["result"] = data.decode("utf-8")
        else:
            values["result_key"] = self.store.blobs.put(item["tenant_id"], item["job_id"], "result.json", data)
        done = self.store.update(item["job_id"], values, expect=ACTIVE_JOB) is not None
        logger.info("job finished", extra={"job_id": item["job_id"], "status": "completed" if done else "dropped",
                                           "result_bytes": len(data)})
        return done

    def fail_item(self, item: dict[str, Any], info: dict[str, str]) -> bool:
        done = self.store.update(item["job_id"], {"status": "failed", "error": info, "updated_at": iso(now()),
                                                  "finished_at": iso(now())}, expect=ACTIVE_JOB) is not None
        logger.info("job finished", extra={"job_id": item["job_id"], "status": "failed" if done else "dropped",
                                           "code": info.get("code")})
        return done

    # ------------------------------------------------------------ media
    # A job outlives a presigned URL: results are stored with `s3://` URIs for the tenant's
    # generated media and presigned again on every read (content parts and the `media` extension).

    def unsign_media(self, body: dict[str, Any]) -> dict[str, Any]:
        """Presigned URLs of this gateway's bucket → `s3://bucket/key` (for storage)."""
        from llm_gateway.stores.files import parse_gateway_url

        def plain(url: Any) -> Any:
            if isinstance(url, str) and url.startswith(("http://", "https://")):
                located = parse_gateway_url(url)
                if located is not None:
                    return f"s3://{located[0]}/{located[1]}"
            return url

        out = dict(body)
        if body.get("content"):
            out["content"] = [{**p, "url": plain(p["url"])} if isinstance(p, dict) and "url" in p else p for p in body["content"]]
        if body.get("media"):
            out["media"] = [{k: v for k, v in {**m, "url": plain(m.get("url"))}.items() if k != "expires_at"} for m in body["media"]]
        return out

    def presign_media(self, body: dict[str, Any], tenant_id: str) -> dict[str, Any]:
        """`s3://` media of this tenant's `generated/` prefix → presigned GET URLs (fresh per read)."""
        if not body.get("content") and not body.get("media"):
            return body
        from llm_gateway.pipeline.modalities import url_ttl_s

        bucket = self.files.bucket
        prefix = f"s3://{bucket}/generated/{tenant_id}/"
        signed: dict[str, Any] = {}
        ttl = url_ttl_s()

        def sign(url: Any) -> Any:
            if isinstance(url, str) and url.startswith(prefix):
                if url not in signed:
                    signed[url] = self.files.presign(url[len(f"s3://{bucket}/"):], ttl)
                return signed[url].url
            return url

        out = dict(body)
        if body.get("content"):
            out["content"] = [{**p, "url": sign(p["url"])} if isinstance(p, dict) and "url" in p else p for p in body["content"]]
        if body.get("media"):
            media = []
            for m in body["media"]:
                url = sign(m.get("url"))
                entry = {**m, "url": url}
                if m.get("url") in signed:
                    entry["expires_at"] = signed[m["url"]].expires_at
                media.append(entry)
            out["media"] = media
        return out

    # ------------------------------------------------------------ the Job body
    def render(self, item: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"id": item["job_id"], "status": item["status"], "request": self.request_json(item),
                                "created_at": item["created_at"], "expires_at": item["expires_at"]}
        if item.get("error"):
            body["error"] = json.loads(item["error"])
        if item["status"] == "completed":
            s = settings()
            if item.get("result") is not None:
                body["result"] = self.presign_media(json.loads(item["result"]), item["tenant_id"])
            elif item.get("result_key"):
                if int(item.get("result_bytes") or 0) <= s.job_result_url_bytes:
                    body["result"] = self.presign_media(json.loads(self.store.blobs.get(item["result_key"])), item["tenant_id"])
                else:
                    body["result_url"] = self.store.blobs.presign(item["result_key"], PRESIGN_S)
                    body["result_url_expires_at"] = iso(now() + PRESIGN_S)
        return body


class JobNotReady(Exception):
    """The job's item is not readable yet (its write raced the execution's start)."""


def charge_budgets_on_report(ctx: RequestContext) -> None:
    """Work that finishes in another invocation than it was admitted in (a provider task polled
    by the workflow, a provider batch's results) still counts against the tenant's budgets: give
    its context the budget part of an admission, so `UsageReporter.report` charges the cost
    (rate limits were counted when the work was admitted, or — provider batches — not at all)."""
    if "admission" in ctx.attributes:
        return
    from llm_gateway.pipeline.governance import Admission, BudgetRef, get_governance
    from llm_gateway.stores.budgets import budget_key, period_window

    governance = get_governance()
    if not governance.enabled:
        return
    try:
        config = governance.tenant_for(ctx)
    except GatewayError:
        return
    t = now()
    refs = []
    for b in config.budgets_for(ctx.user_id):
        period_key, resets_at = period_window(b.period, t)
        refs.append(BudgetRef(b, budget_key(ctx.tenant_id, period_key, None if b.scope == "tenant" else ctx.user_id), resets_at))
    if refs:
        usage = ctx.usage
        tokens = (usage.input_tokens + usage.output_tokens) if usage is not None else 0
        ctx.attributes["admission"] = Admission(0, [], tokens, refs)
        ctx.attributes.setdefault("post_call", []).append(lambda: governance.settle_tasks(ctx))


def timeout_info(limit_s: int) -> dict[str, str]:
    return {"code": "job_timeout", "message": f"The job did not finish within its time limit ({limit_s} s); it was stopped."}


_runner: JobRunner | None = None


def job_runner() -> JobRunner:
    global _runner
    if _runner is None:
        _runner = JobRunner()
    return _runner


@resets.register
def reset_job_runner() -> None:
    global _runner
    _runner = None
