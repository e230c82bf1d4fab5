"""Glue shared by the Lambda entry points: Powertools responses and error handlers.

Unknown routes get `not_found`, a known path with the wrong method `method_not_allowed`, and an
unexpected exception a bare `internal_error` (logged with its type, never a stack trace in the
body).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response

from llm_gateway import heap
from llm_gateway.api.errors import GatewayError
from llm_gateway.observability import logger
from llm_gateway.service.http import HttpResponse


def to_powertools(resp: HttpResponse) -> Response:
    heap.settle()  # a warm Lambda environment: full collections skip what the first requests built
    body = resp.buffered_body()
    headers = dict(resp.headers)
    content_type = headers.pop("Content-Type", "application/json")
    return Response(status_code=resp.status, content_type=content_type, body=body, headers=headers)


def _problem(exc: GatewayError, app: Any) -> Response:
    rid = None
    try:
        rid = app.current_event.request_context.request_id
    except Exception:  # noqa: BLE001 - the event may be malformed
        rid = None
    return to_powertools(HttpResponse.problem(exc, rid))


def install_error_handlers(app: Any) -> None:
    @app.not_found
    def _not_found(_exc: Exception) -> Response:
        path = app.current_event.path
        methods = [
            route.method for route in getattr(app, "_static_routes", []) + getattr(app, "_dynamic_routes", [])
            if route.rule.fullmatch(path)
        ] if hasattr(app, "_static_routes") else []
        if methods:
            allowed = ", ".join(sorted({m for ms in methods for m in (ms if isinstance(ms, (list, tuple)) else [ms])}))
            err = GatewayError("method_not_allowed", f"{app.current_event.http_method} is not allowed on {path}; use {allowed}.",
                               headers={"Allow": allowed})
        else:
            err = GatewayError("not_found", f"There is no route {app.current_event.http_method} {path[:200]}.")
        return _problem(err, app)

    @app.exception_handler(GatewayError)
    def _gateway_error(exc: GatewayError) -> Response:
        return _problem(exc, app)

    @app.exception_handler(Exception)
    def _unexpected(exc: Exception) -> Response:
        logger.error("unhandled error", extra={"error_type": type(exc).__name__})
        return _problem(GatewayError("internal_error", "The gateway failed unexpectedly; the error was logged."), app)
