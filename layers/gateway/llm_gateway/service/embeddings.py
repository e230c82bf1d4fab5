"""The embeddings service: authenticate, parse, run the embeddings pipeline."""

from __future__ import annotations

from llm_gateway import resets
from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import EmbeddingRequest
from llm_gateway.api.parse import check_body, parse_model
from llm_gateway.pipeline.auth import Authenticator, require_scope
from llm_gateway.pipeline.context import RequestContext, new_request_id
from llm_gateway.pipeline.embeddings import EmbeddingsPipeline
from llm_gateway.service.http import HttpRequest, HttpResponse


class EmbeddingsService:
    def __init__(self, pipeline: EmbeddingsPipeline | None = None, auth: Authenticator | None = None) -> None:
        self.pipeline = pipeline or EmbeddingsPipeline()
        self.auth = auth or Authenticator()

    def embeddings(self, req: HttpRequest) -> HttpResponse:
        rid = req.request_id or new_request_id()
        try:
            principal = self.auth.authenticate(req.headers, req.authorizer)
            require_scope(principal, "embeddings")
            ctx = RequestContext(principal=principal, request_id=rid, route="embeddings")
            request = parse_model(EmbeddingRequest, check_body(req.body, req.headers.get("content-type")))
            body = self.pipeline.run(ctx, request)
            return HttpResponse.json(200, body, {**ctx.response_headers, "x-request-id": rid})
        except GatewayError as exc:
            return HttpResponse.problem(exc, rid)


_service: EmbeddingsService | None = None


def embeddings_service() -> EmbeddingsService:
    global _service
    if _service is None:
        _service = EmbeddingsService()
    return _service


@resets.register
def reset_embeddings_service() -> None:
    global _service
    _service = None
