"""Step 8 — the fallback chain: which models may stand in, which errors move on, and the two
strategies.

Candidates: the requested model first, then `fallback.models` in order. A fallback model that
is unknown is a `model_not_found` error up front (a typo should not wait for an outage to show);
one that is deprecated, repeated, or lacks a capability the request needs (registry
capabilities, or content parts its adapter rejects) is skipped and noted — it is never called.

Errors that move on to the next model: `provider_error` (HTTP 5xx, 401/403 from the provider,
unreachable, circuit open, a broken or malformed stream), `provider_timeout` (TTFT, total,
connect) and `rate_limited` coming from the provider (HTTP 429). Anything else — validation,
context length, capability, policy — is the request's fault and is returned at once.

`sequential` tries one model at a time. `parallel` starts every candidate at once (one thread
each) and keeps the first to produce content (streams) or a whole answer (buffered); the others
are cancelled at once, their upstream responses closed. Either way all attempts share the
request's total deadline; each attempt has its own time-to-first-token deadline. A stream
commits to a model when its first content delta arrives: a failure before that falls back
transparently, a failure after it ends the stream with an error event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from llm_gateway.api.errors import GatewayError
from llm_gateway.outbound.control import CANCELLED, TOTAL

if TYPE_CHECKING:
    from llm_gateway.api.models import ChatRequest
    from llm_gateway.pipeline.invoke import Attempt, CallPlan
    from llm_gateway.registry.catalog import Catalog, ModelSpec

T = TypeVar("T")

FALLBACK_CODES = frozenset({"provider_error", "provider_timeout", "rate_limited"})


def triggers_fallback(exc: GatewayError) -> bool:
    """Whether the next model should be tried after this error."""
    if exc.extra.get("cancelled"):
        return False
    if exc.code == "rate_limited":
        return exc.provider is not None  # the provider's 429, not the gateway's own limits
    return exc.code in FALLBACK_CODES


def fallback_candidates(catalog: "Catalog", request: "ChatRequest", primary: "ModelSpec",
                        needs: frozenset[str]) -> tuple[list["ModelSpec"], list[dict[str, str]]]:
    """(models to try, primary first; skipped models with the reason)."""
    models = [primary]
    skipped: list[dict[str, str]] = []
    if request.fallback is None:
        return models, skipped
    seen = {primary.id}
    for i, name in enumerate(request.fallback.models):
        model = catalog.lookup(name)
        if model is None:
            raise GatewayError(
                "model_not_found",
                f"Fallback model '{name[:200]}' (fallback.models[{i}]) is not in the Model Registry. GET /models lists the available ids and aliases.",
                errors=[{"path": f"fallback.models[{i}]", "message": "unknown model"}],
            )
        if model.id in seen:
            skipped.append({"model": model.id, "reason": "listed twice"})
            continue
        seen.add(model.id)
        if model.lifecycle == "deprecated":
            skipped.append({"model": model.id, "reason": "deprecated"})
            continue
        missing = needs - model.capabilities
        if missing:
            skipped.append({"model": model.id, "reason": "lacks " + ", ".join(sorted(missing))})
            continue
        models.append(model)
    return models, skipped


def run_sequential(plan: "CallPlan", start: Callable[["ModelSpec"], "Attempt"], run: Callable[["Attempt"], T]) -> tuple["Attempt", T]:
    last: GatewayError | None = None
    for i, model in enumerate(plan.models):
        if i > 0 and (plan.cancelled() or plan.remaining() <= 0):
            break
        attempt = start(model)
        try:
            value = run(attempt)
        except GatewayError as exc:
            if i > 0 and exc.code == "capability_not_supported":
                plan.skip(model, exc.detail)  # its adapter rejects a part of this request
                continue
            plan.note(model, exc)
            if not triggers_fallback(exc):
                raise plan.final(exc) from None
            last = exc
            continue
        plan.note(model, None)
        return attempt, value
    assert last is not None
    raise plan.final(last) from None


def run_parallel(plan: "CallPlan", start: Callable[["ModelSpec"], "Attempt"], run: Callable[["Attempt"], T],
                 dispose: Callable[[T], Any]) -> tuple["Attempt", T]:
    attempts = [start(m) for m in plan.models]
    n = len(attempts)
    lock = threading.Lock()
    done = threading.Event()
    state: dict[str, Any] = {"winner": None, "value": None, "left": n}
    errors: list[GatewayError | None] = [None] * n

    def racer(i: int) -> None:
        try:
            value = run(attempts[i])
        except GatewayError as exc:
            with lock:
                # an attempt we cancelled may surface its cut-off response as any error (a broken
                # stream reads as provider_error): once the race is won, it is simply cancelled
                if attempts[i].control.reason != CANCELLED:
                    errors[i] = exc
                state["left"] -= 1
                if state["left"] == 0:
                    done.set()
            return
        except BaseException as exc:  # noqa: BLE001 - a broken adapter is a provider error
            with lock:
                if attempts[i].control.reason == CANCELLED:
                    state["left"] -= 1
                    if state["left"] == 0:
                        done.set()
                    return
                errors[i] = GatewayError("provider_error", f"Provider '{attempts[i].call.model.provider.id}' adapter failed ({type(exc).__name__}).",
                                         provider=attempts[i].call.model.provider.id)
                state["left"] -= 1
                if state["left"] == 0:
                    done.set()
            return
        with lock:
            won = state["winner"] is None
            if won:
                state["winner"], state["value"] = i, value
                done.set()
        if won:
            for j, other in enumerate(attempts):
                if j != i:
                    other.control.abort(CANCELLED)
        else:
            dispose(value)  # lost the race (or the race is over): close its upstream response

    for i in range(n):
        threading.Thread(target=racer, args=(i,), name=f"llmgw-fallback-{i}", daemon=True).start()
    done.wait(timeout=max(0.0, plan.remaining()) + 1.0)
    with lock:
        winner = state["winner"]
        if winner is None:
            state["winner"] = -1  # late finishers dispose of what they got
        snapshot = list(errors)
    if winner is None:
        for a in attempts:
            a.control.abort(TOTAL)
    for i, a in enumerate(attempts):
        if i == winner:
            continue
        err = snapshot[i]
        if err is not None and i > 0 and err.code == "capability_not_supported":
            plan.skip(a.call.model, err.detail)  # its adapter rejects a part of this request
            snapshot[i] = None
        elif err is not None:
            plan.note(a.call.model, err)
        elif winner is not None:
            plan.note(a.call.model, None, outcome="cancelled")
        else:
            plan.note(a.call.model, a.control.error(TOTAL))
    if winner is not None:
        plan.note(attempts[winner].call.model, None)
        return attempts[winner], state["value"]
    fatal = next((e for e in snapshot if e is not None and not triggers_fallback(e)), None)
    last = fatal or next((e for e in reversed(snapshot) if e is not None), None) or attempts[0].control.error(TOTAL)
    raise plan.final(last)
