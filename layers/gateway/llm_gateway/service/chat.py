"""The chat service: authenticate, parse, run the pipeline, shape the HTTP answer."""

from __future__ import annotations

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.api.parse import check_body, parse_model
from llm_gateway.jobs import runs_as_job
from llm_gateway.pipeline.auth import Authenticator, require_scope
from llm_gateway.pipeline.chat import ChatPipeline
from llm_gateway.pipeline.context import RequestContext, new_request_id
from llm_gateway.registry.catalog import get_catalog
from llm_gateway.service.http import HttpRequest, HttpResponse

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class ChatService:
    def __init__(self, pipeline: ChatPipeline | None = None, auth: Authenticator | None = None) -> None:
        self.pipeline = pipeline or ChatPipeline()
        self.auth = auth or Authenticator()

    def _context(self, req: HttpRequest, route: str) -> RequestContext:
        principal = self.auth.authenticate(req.headers, req.authorizer)
        require_scope(principal, route)
        return RequestContext(principal=principal, request_id=req.request_id or new_request_id(), route=route)

    def _failed_early(self, ctx: RequestContext | None, exc: GatewayError) -> None:
        """An authenticated request that failed before the pipeline reported it (body, contract,
        unknown model…): its audit events still go out, exactly once (`report` is idempotent)."""
        if ctx is not None and not ctx.attributes.get("reported"):
            ctx.outcome, ctx.error_code = "error", exc.code
            self.pipeline.usage.report(ctx)

    def chat_completions(self, req: HttpRequest) -> HttpResponse:
        """`POST /chat/completions`: buffered JSON, or SSE frames when `stream` is true."""
        rid = req.request_id or new_request_id()
        req.request_id = rid
        ctx = None
        try:
            ctx = self._context(req, "chat")
            raw = check_body(req.body, req.headers.get("content-type"))
            request = parse_model(ChatRequest, raw)
            if runs_as_job(request):  # "async": true, or a long-running (video) model: 202 with a job
                from llm_gateway.jobs.service import job_service

                return job_service().accept_chat(ctx, request, req)
            if request.stream:
                frames = self.pipeline.stream(ctx, request)
                headers = {**SSE_HEADERS, **ctx.response_headers, "x-request-id": rid}
                return HttpResponse(200, headers, stream=frames)
            body = self.pipeline.complete(ctx, request)
            return HttpResponse.json(200, body, {**ctx.response_headers, "x-request-id": rid})
        except GatewayError as exc:
            self._failed_early(ctx, exc)
            return HttpResponse.problem(exc, rid)

    def list_models(self, req: HttpRequest) -> HttpResponse:
        """`GET /models`: the models this tenant may use, with capabilities, limits and prices."""
        rid = req.request_id or new_request_id()
        try:
            ctx = self._context(req, "models")
            models = self.pipeline.governance.approved(ctx.principal, list(get_catalog().models.values()))
            data = [m.public() for m in models]
            return HttpResponse.json(200, {"object": "list", "data": data}, {"x-request-id": rid})
        except GatewayError as exc:
            return HttpResponse.problem(exc, rid)


_service: ChatService | None = None


def chat_service() -> ChatService:
    """The process-wide service (built on first use, reused across warm invocations)."""
    global _service
    if _service is None:
        _service = ChatService()
    return _service


def reset_chat_service() -> None:
    global _service
    _service = None
