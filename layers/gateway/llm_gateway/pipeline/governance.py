"""Steps 2, 3, 5 and 10 of the pipeline — rate limits, budgets, model approval and hooks — and
their share of step 11 (charging budgets, correcting token reservations).

The hot path costs at most two sequential DynamoDB round trips, and none while a tenant is far
from its limits (per-instance rate-limit leases and a one-second budget view, `leases.py`):

- before the provider call (`before_call`): the conditional rate-limit updates (tenant, user)
  and the strongly consistent budget read run side by side — one round trip;
- after it (`settle_tasks`, run by `UsageReporter.report` together with the usage record, the
  day aggregate and the audit events): budget charges and the token correction — one round trip.

Tenant configuration and API keys come from in-process caches. A tenant without limits and
budgets makes no pre-call DynamoDB call at all.

If DynamoDB fails during admission the request is admitted (fail-open: the gateway stays
available, the miss is logged and counted in the `GovernanceErrors` metric).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from llm_gateway.api.errors import GatewayError
from llm_gateway.config import settings
from llm_gateway.observability import logger, metrics
from llm_gateway.pipeline import parallel
from llm_gateway.stores.budgets import budget_key, period_window
from llm_gateway.stores.ratelimit import WINDOW_S, RateCheck, RateOutcome, rate_key, window_start
from llm_gateway.stores.tenants import Budget, TenantConfig

if TYPE_CHECKING:
    from llm_gateway.api.models import ChatRequest
    from llm_gateway.pipeline.context import RequestContext
    from llm_gateway.pipeline.hooks.chain import HookChain
    from llm_gateway.registry.catalog import ModelSpec
    from llm_gateway.stores.keys import Principal

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 3
MEDIA_PART_TOKENS = {"image": 85, "audio": 50, "video": 250, "document": 120}
DEFAULT_OUTPUT_ESTIMATE = 256  # reserved output tokens when the request sets no max_tokens


def estimate_tokens(request: "ChatRequest") -> int:
    """Tokens to reserve against a tokens-per-minute limit before the call: about four
    characters a token over the text, fixed amounts for media, plus the output allowance
    (`max_tokens`, else 256). Corrected with the provider's real figures after the call."""
    chars = 0
    media = 0
    for message in request.messages:
        for part in message.content:
            kind = part.type
            if kind == "text":
                chars += len(part.text)
            elif kind == "tool_result":
                chars += len(part.tool_result.content)
            elif kind == "tool_call":
                chars += len(part.tool_call.name) + len(str(part.tool_call.arguments))
            else:
                media += MEDIA_PART_TOKENS.get(kind, 0)
    for tool in request.tools or ():
        chars += 200  # name, description and a small schema
    prompt = math.ceil(chars / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD_TOKENS * len(request.messages) + media
    return prompt + (request.max_tokens or DEFAULT_OUTPUT_ESTIMATE)


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(v: float) -> str:
    return f"${v:,.2f}" if v >= 0.01 or v == 0 else f"${v:.6f}"


@dataclass(slots=True)
class BudgetRef:
    budget: Budget
    key: str
    resets_at: float


@dataclass(slots=True)
class Admission:
    """What the pre-call step reserved, so the post-call step can settle it exactly once."""

    window: int
    outcomes: list[RateOutcome]
    estimate: int
    budgets: list[BudgetRef]
    settled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class Governance:
    def __init__(self, *, tenants: Any = None, rates: Any = None, budgets: Any = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._tenants = tenants
        self._rates = rates
        self._budgets = budgets
        self.clock = clock
        self._defaults: dict[str, TenantConfig] = {}

    # ------------------------------------------------------------------ stores (lazy)

    @property
    def tenants(self) -> Any:
        if self._tenants is None:
            from llm_gateway.stores.tenants import TenantStore

            self._tenants = TenantStore()
        return self._tenants

    @property
    def rates(self) -> Any:
        if self._rates is None:
            from llm_gateway.stores.ratelimit import RateLimitStore

            self._rates = RateLimitStore()
        return self._rates

    @property
    def budget_store(self) -> Any:
        if self._budgets is None:
            from llm_gateway.stores.budgets import BudgetStore

            self._budgets = BudgetStore()
        return self._budgets

    @property
    def leases(self) -> Any:
        leases = getattr(self, "_leases", None)
        if leases is None:
            from llm_gateway.pipeline.leases import RateLeases

            leases = self._leases = RateLeases(self.rates)
        return leases

    @property
    def budget_view(self) -> Any:
        view = getattr(self, "_budget_view", None)
        if view is None:
            from llm_gateway.pipeline.leases import BudgetView

            view = self._budget_view = BudgetView(self.budget_store)
        return view

    @property
    def enabled(self) -> bool:
        return settings().governance

    # ------------------------------------------------------------------ tenant and approval

    def tenant(self, principal: "Principal") -> TenantConfig:
        """The caller's tenant configuration (cached); `forbidden` for unknown or suspended tenants."""
        config = self.tenants.get(principal.tenant_id)
        if config is None:
            if settings().unknown_tenant != "allow":
                raise GatewayError("forbidden", f"Tenant '{principal.tenant_id}' is not registered with the gateway.",
                                   tenant_id=principal.tenant_id)
            config = self._defaults.get(principal.tenant_id)
            if config is None:
                if len(self._defaults) > 10_000:
                    self._defaults.clear()
                config = self._defaults.setdefault(principal.tenant_id, TenantConfig(principal.tenant_id, registered=False))
        if config.status != "active":
            raise GatewayError("forbidden", f"Tenant '{principal.tenant_id}' is suspended.", tenant_id=principal.tenant_id)
        return config

    def tenant_for(self, ctx: "RequestContext") -> TenantConfig:
        config = ctx.attributes.get("tenant")
        if config is None:
            config = ctx.attributes["tenant"] = self.tenant(ctx.principal)
        return config

    def approved(self, principal: "Principal", models: list["ModelSpec"]) -> list["ModelSpec"]:
        """The models the tenant may use (`GET /models`)."""
        if not self.enabled:
            return models
        config = self.tenant(principal)
        return [m for m in models if config.approves(m.id, m.aliases)]

    def check_model(self, ctx: "RequestContext", model: "ModelSpec", *, where: str = "") -> None:
        config = self.tenant_for(ctx)
        if not config.approves(model.id, model.aliases):
            raise GatewayError(
                "model_not_approved",
                f"Model '{model.id}'{where} is not approved for tenant '{ctx.tenant_id}'. GET /models lists the models it may use.",
                model=model.id,
            )

    # ------------------------------------------------------------------ before the call

    def before_call(self, ctx: "RequestContext", request: "ChatRequest") -> "ChatRequest":
        """Approval (model and fallbacks), rate limits and budgets, then the pre-call hooks.
        Returns the request to send (a hook may have modified it)."""
        if not self.enabled:
            return request
        config = self.tenant_for(ctx)
        assert ctx.model is not None
        self.check_model(ctx, ctx.model)
        if request.fallback is not None:
            from llm_gateway.registry.catalog import get_catalog

            catalog = get_catalog()
            for i, name in enumerate(request.fallback.models):
                model = catalog.lookup(name)
                if model is not None:
                    self.check_model(ctx, model, where=f" (fallback.models[{i}])")
        self.admit(ctx, request, config)
        chain = self.hooks_for(config)
        if chain is not None and chain.pre:
            request = chain.run_pre(self.hook_context(ctx, request), request, ctx.attributes.setdefault("hooks", []))
            ctx.request = request
        return request

    def govern(self, ctx: "RequestContext", estimate: int) -> None:
        """Steps 2–4 for routes other than chat (embeddings, realtime turns…): approval of
        `ctx.model`, then rate limits (with `estimate` tokens reserved) and budgets. The
        route's `UsageReporter.report` settles it afterwards, as for chat."""
        if not self.enabled:
            return
        config = self.tenant_for(ctx)
        assert ctx.model is not None
        self.check_model(ctx, ctx.model)
        self.admit(ctx, None, config, estimate=estimate)

    def admit(self, ctx: "RequestContext", request: "ChatRequest | None", config: TenantConfig, *,
              estimate: int | None = None) -> None:
        """Count the request against its rate limits and check its budgets: one round trip."""
        if not config.governed:
            return
        now = self.clock()
        window = window_start(now)
        if estimate is None:
            assert request is not None
            estimate = estimate_tokens(request)
        checks: list[RateCheck] = []
        for scope, limit, user in (("tenant", config.tenant_limit, None), ("user", config.user_limit, ctx.user_id)):
            if limit.active:
                checks.append(RateCheck(scope, rate_key(ctx.tenant_id, window, user), limit.rpm, limit.tpm, estimate,
                                        f"{scope}#{ctx.tenant_id}#{user or ''}"))
        for check in checks:
            if check.tpm is not None and estimate > check.tpm:
                raise self._too_large(ctx, check, estimate)
        refs = []
        for b in config.budgets_for(ctx.user_id):
            period_key, resets_at = period_window(b.period, now)
            refs.append(BudgetRef(b, budget_key(ctx.tenant_id, period_key, None if b.scope == "tenant" else ctx.user_id), resets_at))
        # from this instance's lease and budget view when it can; a round trip for the rest
        leases, view = self.leases, self.budget_view
        outcomes: list[RateOutcome] = []
        tasks: list[Callable[[], Any]] = []
        for c in checks:
            local = leases.try_local(c, window)
            if local is not None:
                outcomes.append(local)
            else:
                tasks.append(lambda c=c: leases.claim(c, window))
        spent: dict[str, float] = {}
        if refs:
            cached = view.cached({r.key: r.budget.limit_usd for r in refs})
            if cached is not None:
                spent = cached
            else:
                tasks.append(lambda: view.read([r.key for r in refs]))
        results = parallel.run_all(tasks)
        failed = False
        for r in results:
            if isinstance(r, RateOutcome):
                outcomes.append(r)
            elif isinstance(r, dict):
                spent = r
            elif isinstance(r, Exception):
                failed = True
                logger.error("governance check failed; admitting (fail-open)",
                             extra={"request_id": ctx.request_id, "error": type(r).__name__})
        if failed:
            metrics.add_metric(name="GovernanceErrors", unit="Count", value=1)
        refused = next((o for o in outcomes if not o.allowed), None)
        exceeded = next((r for r in refs if spent.get(r.key, 0.0) >= r.budget.limit_usd), None)
        if refused is not None or exceeded is not None:
            self._release([o for o in outcomes if o.allowed], window)
            if refused is not None:
                raise self._rate_limited(ctx, refused, outcomes, now)
            assert exceeded is not None
            raise self._budget_exceeded(ctx, exceeded, spent.get(exceeded.key, 0.0))
        ctx.response_headers.update(rate_headers(outcomes, window + WINDOW_S - now))
        admission = Admission(window, [o for o in outcomes if o.allowed], estimate, refs)
        ctx.attributes["admission"] = admission
        ctx.attributes.setdefault("post_call", []).append(lambda: self.settle_tasks(ctx))

    def _release(self, admitted: list[RateOutcome], window: int) -> None:
        """Give back the slots of scopes that admitted a request another scope (or a budget) refused."""
        tasks = [t for t in (self.leases.give_back(o, window) for o in admitted) if t is not None]
        for r in parallel.run_all(tasks):
            if isinstance(r, Exception):
                logger.warning("rate-limit release failed", extra={"error": type(r).__name__})

    @staticmethod
    def _who(ctx: "RequestContext", scope: str) -> str:
        return f"tenant '{ctx.tenant_id}'" if scope == "tenant" else f"user '{ctx.user_id}' of tenant '{ctx.tenant_id}'"

    def _rate_limited(self, ctx: "RequestContext", refused: RateOutcome, outcomes: list[RateOutcome], now: float) -> GatewayError:
        check = refused.check
        reset_s = max(1, math.ceil(window_start(now) + WINDOW_S - now))
        if refused.refused_by == "requests":
            what = f"{check.rpm} requests per minute"
            limit, remaining = check.rpm, 0
        else:
            what = f"{check.tpm} tokens per minute (this request reserves {check.tokens})"
            limit, remaining = check.tpm, max(0, (check.tpm or 0) - refused.tokens)
        headers = rate_headers([refused], window_start(now) + WINDOW_S - now)
        if refused.refused_by == "requests":
            headers["x-ratelimit-remaining-requests"] = "0"
        return GatewayError(
            "rate_limited", f"The rate limit of {what} for {self._who(ctx, check.scope)} is reached; retry in {reset_s} s.",
            retry_after_s=reset_s, headers=headers,
            limit={"scope": check.scope, "kind": refused.refused_by, "limit": limit, "remaining": remaining, "reset_s": reset_s},
        )

    def _too_large(self, ctx: "RequestContext", check: RateCheck, estimate: int) -> GatewayError:
        return GatewayError(
            "rate_limited",
            f"This request reserves about {estimate} tokens, more than the limit of {check.tpm} tokens per minute for "
            f"{self._who(ctx, check.scope)}; lower max_tokens or shorten the prompt.",
            retry_after_s=WINDOW_S,
            limit={"scope": check.scope, "kind": "tokens", "limit": check.tpm, "requested": estimate},
        )

    def _budget_exceeded(self, ctx: "RequestContext", ref: BudgetRef, spent: float) -> GatewayError:
        b = ref.budget
        who = f"tenant '{ctx.tenant_id}'" if b.scope == "tenant" else f"user '{ctx.user_id}'"
        body: dict[str, Any] = {"scope": b.scope, "period": b.period, "limit_usd": b.limit_usd, "spent_usd": round(spent, 6),
                                "resets_at": _iso(ref.resets_at)}
        if b.scope == "user":
            body["user_id"] = ctx.user_id
        return GatewayError(
            "budget_exceeded",
            f"The {b.period} budget of {who} is spent: {_money(spent)} of {_money(b.limit_usd)} used; it resets at {_iso(ref.resets_at)}.",
            budget=body,
        )

    # ------------------------------------------------------------------ hooks

    def hooks_for(self, config: TenantConfig) -> "HookChain | None":
        if not config.hooks:
            return None
        chain = config.derived.get("hooks")  # built once per cached configuration object
        if chain is None:
            from llm_gateway.pipeline.hooks.chain import HookChain

            try:
                chain = HookChain.from_config(config.hooks)
            except ValueError as exc:
                logger.error("invalid hook configuration", extra={"tenant_id": config.tenant_id})
                raise GatewayError("internal_error", f"Tenant '{config.tenant_id}' has an invalid hook configuration: {exc}") from None
            config.derived["hooks"] = chain
        return chain

    @staticmethod
    def hook_context(ctx: "RequestContext", request: "ChatRequest | None" = None) -> Any:
        from llm_gateway.pipeline.hooks.base import HookContext

        model = ctx.model_used or ctx.model
        req = request or ctx.request
        return HookContext(tenant_id=ctx.tenant_id, user_id=ctx.user_id, request_id=ctx.request_id,
                           model=model.id if model else None, stream=bool(req and req.stream))

    def after_response(self, ctx: "RequestContext", content: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Step 10 (buffered): the post-response hooks over the answer's text."""
        if not self.enabled:
            return content
        chain = self.hooks_for(self.tenant_for(ctx))
        if chain is None or not chain.post:
            return content
        return chain.apply_to_content(self.hook_context(ctx), content, ctx.attributes.setdefault("hooks", []))

    def guard_stream(self, ctx: "RequestContext", deltas: Iterator[Any]) -> Iterator[Any]:
        """Step 10 (streamed): the post-response hooks over the text as it streams."""
        if not self.enabled:
            return deltas
        chain = self.hooks_for(self.tenant_for(ctx))
        if chain is None or not chain.post:
            return deltas
        from llm_gateway.pipeline.hooks.chain import guard_deltas
        from llm_gateway.providers.base import StreamDelta

        guard = chain.stream_guard(self.hook_context(ctx), ctx.attributes.setdefault("hooks", []))
        assert guard is not None
        return guard_deltas(deltas, guard, StreamDelta)

    # ------------------------------------------------------------------ after the call

    def settle_tasks(self, ctx: "RequestContext") -> list[Callable[[], Any]]:
        """The post-call writes: the request's cost added to each budget it counts against, and
        the token reservation corrected to what the provider reported. Exactly once per request."""
        adm: Admission | None = ctx.attributes.get("admission")
        if adm is None:
            return []
        with adm.lock:
            if adm.settled:
                return []
            adm.settled = True
        tasks: list[Callable[[], Any]] = []
        cost = ctx.cost or 0.0
        if cost > 0:
            for key, ref in {r.key: r for r in adm.budgets}.items():
                self.budget_view.charged(key, cost)
                tasks.append(lambda k=key, r=ref: self.budget_store.charge(k, cost, r.resets_at))
        usage = ctx.usage
        actual = (usage.input_tokens + usage.output_tokens) if usage is not None else 0
        delta = actual - adm.estimate
        if delta:
            for o in adm.outcomes:
                if o.check.tpm is not None:
                    task = self.leases.correct(o, adm.window, delta)
                    if task is not None:
                        tasks.append(task)
        return tasks


def rate_headers(outcomes: list[RateOutcome], reset_in_s: float) -> dict[str, str]:
    """OpenAI-style `x-ratelimit-*` headers from the most constraining scope of each kind."""
    headers: dict[str, str] = {}
    reset = f"{max(1, math.ceil(reset_in_s))}s"
    req = [o for o in outcomes if o.check.rpm is not None]
    if req:
        o = min(req, key=lambda o: o.remaining_requests or 0)
        headers.update({"x-ratelimit-limit-requests": str(o.check.rpm), "x-ratelimit-remaining-requests": str(o.remaining_requests),
                        "x-ratelimit-reset-requests": reset})
    tok = [o for o in outcomes if o.check.tpm is not None]
    if tok:
        o = min(tok, key=lambda o: o.remaining_tokens or 0)
        headers.update({"x-ratelimit-limit-tokens": str(o.check.tpm), "x-ratelimit-remaining-tokens": str(o.remaining_tokens),
                        "x-ratelimit-reset-tokens": reset})
    return headers


_governance: Governance | None = None


def get_governance() -> Governance:
    """The process-wide instance (its caches survive across warm invocations)."""
    global _governance
    if _governance is None:
        _governance = Governance()
    return _governance


def reset_governance() -> None:
    global _governance
    _governance = None


def _register_reset() -> None:
    from llm_gateway import resets

    resets.register(reset_governance)


_register_reset()
