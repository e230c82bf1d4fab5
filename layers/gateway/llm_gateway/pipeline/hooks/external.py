"""An external hook: a Lambda function the tenant owns, called synchronously with a timeout.

Request to the function (JSON):

    {"version": "1", "stage": "pre_call" | "post_response", "tenant_id", "user_id", "request_id",
     "model", "stream": bool,
     "request": {…the native request…}                       (pre_call)
     "response": {"text": "…", "final": true}}               (post_response)

Answer: `{"action": "allow"}`, `{"action": "block", "reason": "…"}`, or
`{"action": "modify", "reason": "…", "request": {…}}` / `{"action": "modify", "text": "…"}`.
Anything else (an error, a timeout, an answer that is not one of these) is a hook failure, and
the hook's `on_error` policy decides: `open` allows the request, `closed` blocks it.

This is the one place request or response content leaves the gateway other than to the
provider: to the tenant's own function, because the tenant configured it.
"""

from __future__ import annotations

import re
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, Callable

from llm_gateway.pipeline.hooks.base import Hook, HookContext, HookResult, ResponseView
from llm_gateway.pipeline.hooks.builtins import HookConfigError

if TYPE_CHECKING:
    from llm_gateway.api.models import ChatRequest

FUNCTION = re.compile(r"^(arn:aws[a-z\-]*:lambda:[a-z0-9\-]+:\d{12}:function:)?[A-Za-z0-9_\-]{1,64}(:[A-Za-z0-9_$\-]{1,128})?$")
MAX_TIMEOUT_MS = 10_000


class HookFailed(Exception):
    """The external hook did not give a usable answer in time."""


class LambdaHook(Hook):
    """`{"type": "lambda", "function": "<name or ARN>", "timeout_ms": 1000, "on_error": "open"|"closed",
    "stream": "final"|"buffer"}`"""

    type = "lambda"

    def __init__(self, spec: dict[str, Any], invoker: Callable[[str, dict[str, Any], int], Any] | None = None) -> None:
        super().__init__(spec.get("name"), spec.get("on_error", "closed"))
        function = spec.get("function")
        if not isinstance(function, str) or not FUNCTION.match(function):
            raise HookConfigError("lambda: 'function' must be a Lambda function name or ARN")
        from llm_gateway.config import settings

        timeout = spec.get("timeout_ms", settings().hook_timeout_ms)
        if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= MAX_TIMEOUT_MS:
            raise HookConfigError(f"lambda: timeout_ms must be an integer in 1..{MAX_TIMEOUT_MS}")
        mode = spec.get("stream", "final")
        if mode not in ("final", "buffer"):
            raise HookConfigError("lambda: stream must be 'final' or 'buffer'")
        self.function = function
        self.timeout_ms = timeout
        self.stream_mode = mode  # type: ignore[misc]
        if spec.get("name") is None:
            self.name = "lambda:" + function.rsplit(":function:", 1)[-1]
        self._invoker = invoker

    def _invoke(self, payload: dict[str, Any]) -> dict[str, Any]:
        invoker = self._invoker
        if invoker is None:
            from llm_gateway.stores.lambdas import invoke_json as invoker
        from llm_gateway.pipeline.parallel import submit

        future = submit(invoker, self.function, payload, self.timeout_ms)
        try:
            answer = future.result(timeout=self.timeout_ms / 1000)
        except FutureTimeout:
            future.cancel()
            raise HookFailed(f"no answer within {self.timeout_ms} ms") from None
        except Exception as exc:  # noqa: BLE001
            raise HookFailed(str(exc) or type(exc).__name__) from None
        if not isinstance(answer, dict) or answer.get("action") not in ("allow", "modify", "block"):
            raise HookFailed("the answer has no valid 'action'")
        return answer

    @staticmethod
    def _base(ctx: HookContext, stage: str) -> dict[str, Any]:
        return {"version": "1", "stage": stage, "tenant_id": ctx.tenant_id, "user_id": ctx.user_id,
                "request_id": ctx.request_id, "model": ctx.model, "stream": ctx.stream}

    @staticmethod
    def _reason(answer: dict[str, Any]) -> str | None:
        reason = answer.get("reason")
        return str(reason)[:300] if reason else None

    def pre_call(self, ctx: HookContext, request: "ChatRequest") -> HookResult:
        payload = self._base(ctx, "pre_call")
        payload["request"] = request.model_dump(mode="json", by_alias=True, exclude_none=True)
        answer = self._invoke(payload)
        action = answer["action"]
        if action == "allow":
            return HookResult.allow()
        if action == "block":
            return HookResult.block(self._reason(answer) or "blocked by the tenant's policy function")
        from pydantic import ValidationError

        from llm_gateway.api.models import ChatRequest

        try:
            modified = ChatRequest.model_validate(answer.get("request"))
        except ValidationError:
            raise HookFailed("the modified request is not a valid request") from None
        if modified.model != request.model:
            raise HookFailed("a hook may not change the model (approval and limits were checked for it)")
        return HookResult.modify(modified, self._reason(answer))

    def post_response(self, ctx: HookContext, response: ResponseView) -> HookResult:
        payload = self._base(ctx, "post_response")
        payload["response"] = {"text": response.text, "final": response.final}
        answer = self._invoke(payload)
        action = answer["action"]
        if action == "allow":
            return HookResult.allow()
        if action == "block":
            return HookResult.block(self._reason(answer) or "blocked by the tenant's policy function")
        text = answer.get("text")
        if not isinstance(text, str):
            raise HookFailed("a 'modify' answer needs 'text'")
        return HookResult.modify(text, self._reason(answer))
