"""Rate limits, budgets and approval (pipeline/governance.py) against the in-process moto."""

import datetime as dt

import pytest

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.pipeline.context import RequestContext
from llm_gateway.pipeline.governance import Governance, estimate_tokens
from llm_gateway.pipeline.parallel import run_all
from llm_gateway.providers.base import TokenUsage
from llm_gateway.registry.catalog import get_catalog
from llm_gateway.stores.budgets import BudgetStore, budget_key, period_window
from llm_gateway.stores.keys import Principal
from llm_gateway.stores.ratelimit import RateCheck, RateLimitStore, rate_key
from llm_gateway.stores.tenants import TenantConfig, TenantStore

T0 = dt.datetime(2026, 11, 26, 10, 0, 15, tzinfo=dt.timezone.utc).timestamp()


class Clock:
    def __init__(self, t=T0):
        self.t = t

    def __call__(self):
        return self.t


def request(text="hello there", **kw):
    return ChatRequest.model_validate({"model": "mock::echo", "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}], **kw})


def tenant(config, tenant_id="acme"):
    TenantStore().put(TenantConfig.from_dict(tenant_id, config))


def ctx_for(user="alice", tenant_id="acme"):
    ctx = RequestContext(principal=Principal(tenant_id, user, "k1"))
    ctx.model = get_catalog().resolve("mock::echo")
    return ctx


def admit(gov, req=None, **kw):
    ctx = ctx_for(**kw)
    r = req or request()
    ctx.request = r
    gov.before_call(ctx, r)
    return ctx


def error(fn):
    with pytest.raises(GatewayError) as e:
        fn()
    return e.value


# ---------------------------------------------------------------- stores


def test_rate_counter_admits_up_to_the_limit_and_reports_counts(aws):
    store = RateLimitStore()
    check = RateCheck("tenant", rate_key("acme", 60), rpm=2, tpm=100, tokens=30)
    first, second, third = (store.hit(check, 60) for _ in range(3))
    assert (first.allowed, first.requests, first.tokens, first.remaining_requests, first.remaining_tokens) == (True, 1, 30, 1, 70)
    assert second.allowed and second.remaining_requests == 0
    assert (third.allowed, third.refused_by, third.requests) == (False, "requests", 2)
    store.adjust(check.key, requests=-1, tokens=-30)
    assert store.current(check.key) == (1, 30)
    big = RateCheck("tenant", check.key, rpm=None, tpm=100, tokens=80)
    assert store.hit(big, 60).refused_by == "tokens"


def test_budget_periods_and_counters(aws):
    assert period_window("daily", T0) == ("D20261126", dt.datetime(2026, 11, 27, tzinfo=dt.timezone.utc).timestamp())
    assert period_window("monthly", T0) == ("M202611", dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc).timestamp())
    dec = dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.timezone.utc).timestamp()
    assert period_window("monthly", dec) == ("M202612", dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc).timestamp())
    store = BudgetStore()
    k = budget_key("acme", "M202611")
    store.charge(k, 0.0000012345, T0 + 10)
    store.charge(k, 0.25, T0 + 10)
    assert store.spent([k, budget_key("acme", "M202611", "bob")]) == {k: pytest.approx(0.2500012345), budget_key("acme", "M202611", "bob"): 0.0}


def test_token_estimate():
    assert estimate_tokens(request("x" * 40)) == 10 + 3 + 256
    assert estimate_tokens(request("x" * 40, max_tokens=5)) == 10 + 3 + 5


# ---------------------------------------------------------------- admission


def test_rate_limit_error_headers_and_reset(aws):
    tenant({"limits": {"tenant": {"rpm": 2}}})
    gov = Governance(clock=Clock())
    ok = admit(gov)
    assert ok.response_headers == {"x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "1",
                                   "x-ratelimit-reset-requests": "45s"}
    admit(gov)
    e = error(lambda: admit(gov))
    assert (e.code, e.status, e.retry_after_s) == ("rate_limited", 429, 45)
    assert "2 requests per minute for tenant 'acme'" in e.detail
    assert e.extra["limit"] == {"scope": "tenant", "kind": "requests", "limit": 2, "remaining": 0, "reset_s": 45}
    assert e.response_headers()["Retry-After"] == "45"
    assert e.headers["x-ratelimit-remaining-requests"] == "0" and e.headers["x-ratelimit-reset-requests"] == "45s"
    gov.clock.t += 60  # the next window
    assert admit(gov).response_headers["x-ratelimit-remaining-requests"] == "1"


def test_user_limits_are_per_user_and_a_refusal_gives_back_the_tenant_slot(aws):
    tenant({"limits": {"tenant": {"rpm": 100}, "user": {"rpm": 1}}})
    gov = Governance(clock=Clock())
    admit(gov, user="alice")
    e = error(lambda: admit(gov, user="alice"))
    assert e.extra["limit"]["scope"] == "user" and "user 'alice'" in e.detail
    admit(gov, user="bob")
    assert RateLimitStore().current(rate_key("acme", int(T0 // 60) * 60)) == (2, 0)  # alice's refused request was given back


def test_tokens_per_minute_with_correction_after_the_call(aws):
    tenant({"limits": {"tenant": {"tpm": 1000}}})
    gov = Governance(clock=Clock())
    ctx = admit(gov, request("x" * 400, max_tokens=200))  # reserves 100 + 3 + 200
    assert ctx.response_headers["x-ratelimit-remaining-tokens"] == str(1000 - 303)
    ctx.usage = TokenUsage(input_tokens=90, output_tokens=10)
    run_all(gov.settle_tasks(ctx))
    assert gov.settle_tasks(ctx) == []  # exactly once
    key = rate_key("acme", int(T0 // 60) * 60)
    assert RateLimitStore().current(key) == (1, 100)
    e = error(lambda: admit(gov, request("x" * 4000, max_tokens=2000)))
    assert e.code == "rate_limited" and "more than the limit of 1000 tokens" in e.detail  # could never fit


def test_budget_exceeded_names_the_budget_and_charges_after_the_call(aws):
    tenant({"budgets": [{"scope": "tenant", "period": "monthly", "limit_usd": 100},
                        {"scope": "user", "period": "daily", "limit_usd": 0.5}]})
    gov = Governance(clock=Clock())
    ctx = admit(gov)
    ctx.cost = 0.3
    run_all(gov.settle_tasks(ctx))
    ctx = admit(gov)
    ctx.cost = 0.3  # admitted while under the limit: overshoots by this request only
    run_all(gov.settle_tasks(ctx))
    e = error(lambda: admit(gov))
    assert (e.code, e.status) == ("budget_exceeded", 402)
    assert e.extra["budget"] == {"scope": "user", "user_id": "alice", "period": "daily", "limit_usd": 0.5,
                                 "spent_usd": 0.6, "resets_at": "2026-11-27T00:00:00Z"}
    assert "daily budget of user 'alice' is spent: $0.60 of $0.50 used; it resets at 2026-11-27T00:00:00Z" in e.detail
    admit(gov, user="bob")  # other users have their own daily budget
    spent = BudgetStore().spent([budget_key("acme", "M202611")])
    assert spent[budget_key("acme", "M202611")] == pytest.approx(0.6)


def test_model_approval_including_fallbacks(aws):
    tenant({"approved_models": ["mock::echo"]})
    gov = Governance(clock=Clock())
    admit(gov)
    e = error(lambda: admit(gov, request(fallback={"models": ["openai::gpt-4o-mini"], "strategy": "sequential"})))
    assert (e.code, e.status) == ("model_not_approved", 403) and "fallback.models[0]" in e.detail
    catalog = get_catalog()
    assert [m.id for m in gov.approved(Principal("acme", "u", "k"), list(catalog.models.values()))] == ["mock::echo"]


def test_unknown_and_suspended_tenants(aws, monkeypatch):
    from llm_gateway.config import reset_settings

    gov = Governance(clock=Clock())
    assert admit(gov, tenant_id="stranger").response_headers == {}  # local mode default: allowed, ungoverned
    monkeypatch.setenv("LLMGW_UNKNOWN_TENANT", "deny")
    reset_settings()
    e = error(lambda: admit(Governance(), tenant_id="stranger"))
    assert (e.code, e.status) == ("forbidden", 403) and "not registered" in e.detail
    tenant({"status": "suspended"}, "gone")
    assert "suspended" in error(lambda: admit(Governance(), tenant_id="gone")).detail
    reset_settings()


def test_a_tenant_without_limits_or_budgets_makes_no_dynamodb_call(aws):
    tenant({"approved_models": ["*"]})
    gov = Governance(clock=Clock())
    gov.tenant(Principal("acme", "u", "k"))  # warm the tenant cache
    from llm_gateway.stores.aws import client

    calls = []
    client("dynamodb").meta.events.register("before-call.dynamodb.*", lambda **kw: calls.append(kw["model"].name))
    admit(gov)
    assert calls == []


def test_dynamodb_failure_during_admission_fails_open(aws):
    tenant({"limits": {"tenant": {"rpm": 1}}})

    class Broken(RateLimitStore):
        def hit(self, check, window):
            raise RuntimeError("dynamodb unavailable")

    gov = Governance(rates=Broken(), clock=Clock())
    assert admit(gov).response_headers == {}


def test_govern_for_other_routes(aws):
    """Embeddings, realtime turns…: approval and limits with the route's own token estimate."""
    tenant({"approved_models": ["mock::*"], "limits": {"tenant": {"rpm": 1, "tpm": 500}}})
    gov = Governance(clock=Clock())
    ctx = ctx_for()
    gov.govern(ctx, estimate=400)
    assert ctx.response_headers["x-ratelimit-remaining-tokens"] == "100"
    ctx.usage = TokenUsage(input_tokens=50)
    run_all(gov.settle_tasks(ctx))
    assert RateLimitStore().current(rate_key("acme", int(T0 // 60) * 60)) == (1, 50)
    assert error(lambda: gov.govern(ctx_for(), estimate=10)).code == "rate_limited"
    other = ctx_for()
    other.model = get_catalog().resolve("openai::gpt-4o-mini")
    assert error(lambda: gov.govern(other, estimate=1)).code == "model_not_approved"


def test_per_tenant_metrics_are_one_emf_blob_with_tenant_and_model_dimensions(monkeypatch, capsys):
    import json as _json

    from llm_gateway.pipeline import usage

    monkeypatch.setattr(usage, "_METRICS_ON", True)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    ctx = ctx_for()
    ctx.usage = TokenUsage(input_tokens=7, output_tokens=3)
    ctx.cost = 0.25
    usage.tenant_metrics(ctx, "mock::echo", 12.5)
    blob = _json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    directive = blob["_aws"]["CloudWatchMetrics"][0]
    assert set(directive["Dimensions"][0]) >= {"tenant_id", "model"}
    assert blob["tenant_id"] == "acme" and blob["model"] == "mock::echo"
    assert blob["Requests"] == [1.0] and blob["InputTokens"] == [7.0] and blob["CostUSD"] == [0.25] and blob["Errors"] == [0.0]
