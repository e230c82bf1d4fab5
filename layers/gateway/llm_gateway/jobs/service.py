"""The jobs service: `POST /jobs`, `GET /jobs/{id}`, `DELETE /jobs/{id}`, and the two ways a chat
request becomes a job (`"async": true`, or a model whose provider runs long tasks).

Statuses: `pending` (accepted) → `running` (the worker took it) → `completed` | `failed` |
`cancelled`. Ids carry their expiry (`jobs/ids.py`): after `expires_at` a job is `job_expired`
(410) — whether or not DynamoDB's lazy TTL deleted it yet — and an id never issued to this
tenant is `job_not_found` (404). Cancelling a finished job is a `conflict` (409).

A job still pending or running after its deadline (`LLMGW_JOB_MAX_RUN_S`: the worker crashed
and even the state machine's failure step could not record it) is marked failed on read
(`job_timeout`), so no job stays `running` forever.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

from llm_gateway import resets
from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.api.parse import check_body, parse_model
from llm_gateway.config import settings
from llm_gateway.jobs import ids
from llm_gateway.jobs.common import ACTIVE_JOB, TERMINAL_JOB, dumps, error_info, iso, now, principal_fields
from llm_gateway.jobs.jobrunner import JobRunner, job_runner, timeout_info
from llm_gateway.observability import logger
from llm_gateway.pipeline.auth import Authenticator, require_scope
from llm_gateway.pipeline.context import RequestContext, new_request_id
from llm_gateway.service.http import HttpRequest, HttpResponse
from llm_gateway.stores.workflows import Workflows


FINISHED_CACHE_SIZE = 512


def _request_json(request: ChatRequest) -> str:
    return request.model_dump_json(by_alias=True, exclude_none=True)


class JobService:
    def __init__(self, runner: JobRunner | None = None, workflows: Workflows | None = None,
                 auth: Authenticator | None = None) -> None:
        self._runner = runner
        self.workflows = workflows or Workflows()
        self.auth = auth or Authenticator()
        self._finished: OrderedDict[str, dict[str, Any]] = OrderedDict()  # job id -> item of a finished job
        self._lock = threading.Lock()

    @property
    def runner(self) -> JobRunner:
        return self._runner or job_runner()

    @property
    def store(self) -> Any:
        return self.runner.store

    # ------------------------------------------------------------ HTTP
    def _context(self, req: HttpRequest, rid: str) -> RequestContext:
        principal = self.auth.authenticate(req.headers, req.authorizer)
        require_scope(principal, "jobs")
        return RequestContext(principal=principal, request_id=rid, route="jobs")

    def submit(self, req: HttpRequest) -> HttpResponse:
        """`POST /jobs`: a contract Request, run asynchronously; 202 with the Job."""
        rid = req.request_id or new_request_id()
        try:
            ctx = self._context(req, rid)
            request = parse_model(ChatRequest, check_body(req.body, req.headers.get("content-type")))
            return self._accept(ctx, request)
        except GatewayError as exc:
            return HttpResponse.problem(exc, rid)

    def get(self, req: HttpRequest, job_id: str) -> HttpResponse:
        rid = req.request_id or new_request_id()
        try:
            ctx = self._context(req, rid)
            item = self.load(ctx.tenant_id, job_id)
            return HttpResponse.json(200, self.runner.render(item), {"x-request-id": rid})
        except GatewayError as exc:
            return HttpResponse.problem(exc, rid)

    def cancel(self, req: HttpRequest, job_id: str) -> HttpResponse:
        """`DELETE /jobs/{id}`: cancel a pending or running job (200 with the Job); `conflict` if it
        already finished. Stops the execution and cancels the provider task where it can."""
        rid = req.request_id or new_request_id()
        try:
            ctx = self._context(req, rid)
            item = self.load(ctx.tenant_id, job_id)
            if item["status"] in TERMINAL_JOB:
                raise _conflict(item)
            updated = self.store.update(job_id, {"status": "cancelled", "updated_at": iso(now()), "finished_at": iso(now()),
                                                 "error": {"code": "cancelled", "message": "The job was cancelled by the client."}},
                                        expect=ACTIVE_JOB)
            if updated is None:  # it finished in the meantime
                raise _conflict(self.load(ctx.tenant_id, job_id))
            self.workflows.stop(job_id, "cancelled by the client")
            self.runner.cancel_task(updated)
            logger.info("job cancelled", extra={"job_id": job_id, "tenant_id": ctx.tenant_id})
            return HttpResponse.json(200, self.runner.render(updated), {"x-request-id": rid})
        except GatewayError as exc:
            return HttpResponse.problem(exc, rid)

    # ------------------------------------------------------------ from the chat service
    def accept_chat(self, ctx: RequestContext, request: ChatRequest, req: HttpRequest) -> HttpResponse:
        """A chat request that runs as a job: `"async": true` (202 with the Job), or a model whose
        provider runs long tasks — polled here up to `LLMGW_SYNC_POLL_LIMIT_S` (200 with the
        Response when it finishes in time), else 202 with the Job the workflow keeps polling."""
        rid = ctx.request_id
        try:
            require_scope(ctx.principal, "jobs")
            if request.async_:
                return self._accept(ctx, request)
            return self._run_inline(ctx, request)
        except GatewayError as exc:
            return HttpResponse.problem(exc, rid)

    # ------------------------------------------------------------ internals
    def load(self, tenant_id: str, job_id: str) -> dict[str, Any]:
        """The tenant's job, or `job_not_found` / `job_expired`; a job past its deadline is failed here.

        A finished job never changes again, so its item is kept in a small in-process cache: clients
        that keep polling a finished job cost no DynamoDB read in a warm process (expiry and the
        tenant are still checked on every read)."""
        parsed = ids.parse("job", job_id, tenant_id)
        if parsed is None:
            raise _not_found(job_id)
        t = now()
        if parsed.expired(t):
            raise _expired(job_id, parsed.expires_at)
        with self._lock:
            cached = self._finished.get(job_id)
            if cached is not None:
                self._finished.move_to_end(job_id)
        if cached is not None and cached.get("tenant_id") == tenant_id:
            return cached
        item = self.store.get(job_id)
        if item is None or item.get("tenant_id") != tenant_id:
            raise _not_found(job_id)
        if float(item.get("ttl") or 0) <= t:
            raise _expired(job_id, int(item["ttl"]))
        if item["status"] in ACTIVE_JOB and item.get("deadline") and t >= float(item["deadline"]):
            if self.runner.fail_item(item, timeout_info(settings().job_max_run_s)):
                self.workflows.stop(job_id, "past its deadline")
                self.runner.cancel_task(item)
            item = self.store.get(job_id) or item
        if item["status"] in TERMINAL_JOB:
            with self._lock:
                self._finished[job_id] = item
                if len(self._finished) > FINISHED_CACHE_SIZE:
                    self._finished.popitem(last=False)
        return item

    def _validate(self, ctx: RequestContext, request: ChatRequest) -> Any:
        if request.stream:
            raise GatewayError("validation_error", "A job's result is buffered: 'stream' cannot be combined with async jobs or long-running (video) models.",
                               errors=[{"path": "stream", "message": "must be false for a job"}])
        model = self.runner.model_for(ctx, request)
        governance = self.runner.governance
        if governance.enabled:
            governance.check_model(ctx, model)  # not approved: refused now, not when the job runs
        return model

    def _new_item(self, ctx: RequestContext, request: ChatRequest, model: Any, status: str) -> dict[str, Any]:
        s = settings()
        t = now()
        expires = t + s.job_ttl_hours * 3600
        job_id = ids.mint("job", ctx.tenant_id, expires)
        raw = _request_json(request)
        item: dict[str, Any] = {
            "job_id": job_id, **principal_fields(ctx.principal), "status": status, "created_at": iso(t),
            "expires_at": iso(expires), "ttl": int(expires), "deadline": int(t + min(s.job_max_run_s, s.job_ttl_hours * 3600)),
            "request_id": ctx.request_id, "model": model.id, "provider": model.provider.id, "updated_at": iso(t),
        }
        if len(raw.encode("utf-8")) <= s.job_inline_bytes:
            item["request"] = raw
        else:
            item["request_key"] = self.store.blobs.put(ctx.tenant_id, job_id, "request.json", raw.encode("utf-8"))
        return item

    def _accept(self, ctx: RequestContext, request: ChatRequest) -> HttpResponse:
        """Write the job and start its execution side by side (one round trip of latency): the
        worker's first step waits (state machine Retry on `JobNotReady`) if it runs before the
        job's item is readable."""
        from llm_gateway.pipeline.parallel import run_all

        model = self._validate(ctx, request)
        item = self._new_item(ctx, request, model, "pending")
        created, started = run_all([lambda: self.store.create(item), lambda: self.workflows.start("job", item["job_id"])])
        if isinstance(created, Exception):
            logger.error("job write failed", extra={"job_id": item["job_id"], "error_type": type(created).__name__})
            if not isinstance(started, Exception):
                self.workflows.stop(item["job_id"], "the job could not be stored")
            raise GatewayError("internal_error", "The job could not be stored; nothing was run.") from None
        if isinstance(started, Exception):
            logger.error("job start failed", extra={"job_id": item["job_id"], "error_type": type(started).__name__})
            self.runner.fail_item(item, {"code": "internal_error", "message": "The job could not be started."})
            raise GatewayError("internal_error", "The job could not be started; nothing was run.", job_id=item["job_id"]) from None
        logger.info("job accepted", extra={"job_id": item["job_id"], "tenant_id": ctx.tenant_id, "model": model.id})
        return self._accepted(item, ctx.request_id)

    def _start(self, item: dict[str, Any]) -> None:
        try:
            self.workflows.start("job", item["job_id"])
        except Exception as exc:  # noqa: BLE001 - the job must not stay pending without a worker
            logger.error("job start failed", extra={"job_id": item["job_id"], "error_type": type(exc).__name__})
            self.runner.fail_item(item, {"code": "internal_error", "message": "The job could not be started."})
            raise GatewayError("internal_error", "The job could not be started; nothing was run.", job_id=item["job_id"]) from None

    def _accepted(self, item: dict[str, Any], rid: str) -> HttpResponse:
        body = {"id": item["job_id"], "status": item["status"], "request": self.runner.request_json(item),
                "created_at": item["created_at"], "expires_at": item["expires_at"]}
        headers = {"Location": f"/jobs/{item['job_id']}", "Retry-After": str(max(1, settings().job_poll_initial_s)),
                   "x-request-id": rid}
        return HttpResponse.json(202, body, headers)

    def _run_inline(self, ctx: RequestContext, request: ChatRequest) -> HttpResponse:
        """A sync request to an async provider: start the task and poll it here up to the limit."""
        s = settings()
        model = self._validate(ctx, request)
        runner = self.runner
        adapter = runner.adapter(model)
        request = runner.governance.before_call(ctx, request)  # limits, budget, hooks (as a sync call)
        ctx.request = request
        try:
            call = runner.call_for(ctx, request, model)
            adapter.check(call)
            started = time.monotonic()
            handle = adapter.start_async(call)  # a refusal here is the request's answer; no job was made
        except GatewayError as exc:
            ctx.outcome, ctx.error_code = "error", exc.code
            runner.usage.report(ctx)  # settles what governance admitted
            raise
        item = self._new_item(ctx, request, model, "running")
        item.update(async_task=True, handle=dumps(handle), attempt=0, started_at=item["created_at"])
        self.store.create(item)
        item["handle"] = handle
        ctx.attributes.setdefault("usage_record", {})["job_id"] = item["job_id"]
        limit = s.sync_poll_limit_s
        interval = max(0.01, s.sync_poll_interval_s)
        while True:
            try:
                done, result = adapter.poll_async(call, handle)
            except GatewayError as exc:
                runner.fail_item(item, error_info(exc))
                ctx.outcome, ctx.error_code = "error", exc.code
                runner.usage.report(ctx)
                raise
            if done and result is not None:
                body = runner.finish_async(item, ctx, model, result, presign=True)
                headers = {**ctx.response_headers, "x-request-id": ctx.request_id, "x-llmgw-job-id": item["job_id"],
                           "x-llmgw-provider": model.provider.id, "x-llmgw-model": model.id}
                return HttpResponse.json(200, body, headers)
            if time.monotonic() - started + interval > limit:
                break
            time.sleep(interval)
            interval = min(interval * 1.5, 5.0)
        updated = self.store.update(item["job_id"], {"handle": handle, "updated_at": iso(now())}, expect=("running",))
        if updated is not None:
            self._start(updated)
            item = updated
        logger.info("job continues asynchronously", extra={"job_id": item["job_id"], "tenant_id": ctx.tenant_id,
                                                          "model": model.id})
        return self._accepted(item, ctx.request_id)


def _not_found(job_id: str) -> GatewayError:
    return GatewayError("job_not_found", f"There is no job '{job_id[:80]}' for these credentials.")


def _expired(job_id: str, expires_at: int) -> GatewayError:
    return GatewayError("job_expired", f"Job '{job_id[:80]}' expired at {iso(expires_at)}; its result is no longer kept.",
                        expired_at=iso(expires_at))


def _conflict(item: dict[str, Any]) -> GatewayError:
    return GatewayError("conflict", f"Job '{item['job_id']}' is already {item['status']}; only pending or running jobs can be cancelled.",
                        status_now=item["status"])


_service: JobService | None = None


def job_service() -> JobService:
    global _service
    if _service is None:
        _service = JobService()
    return _service


@resets.register
def reset_job_service() -> None:
    global _service
    _service = None
