"""Governance through the Lambda handlers, as API Gateway calls them: approval, rate limits,
budgets, hooks (buffered and streamed), audit events, `GET /usage`, the authorizer, and the
hot-path DynamoDB budget."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from tests.conftest import ApiClient, user

TENANT = "acme"


class Recorder:
    """Stands in for the EventBridge sink: keeps what would have been sent."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def put(self, events: list[dict[str, Any]]) -> int:
        with self.lock:
            self.events.extend(events)
        return 0

    def types(self, request_id: str | None = None) -> list[str]:
        return [e["detail-type"] for e in self.events if request_id is None or e["detail"]["request_id"] == request_id]


@pytest.fixture
def gov(api, monkeypatch):
    """A tenant `acme` whose configuration each test sets, a key for it, and an audit recorder."""
    from llm_gateway.config import reset_settings
    from llm_gateway.service.chat import chat_service
    from llm_gateway.stores.keys import ApiKeyStore
    from llm_gateway.stores.tenants import TenantConfig, TenantStore

    monkeypatch.setenv("LLMGW_TENANT_CACHE_TTL_S", "0")
    reset_settings()
    store = TenantStore()

    class Gov:
        recorder = Recorder()

        def configure(self, **config: Any) -> None:
            config.setdefault("approved_models", ["*"])
            store.put(TenantConfig.from_dict(TENANT, config))

        def key(self, user_id: str = "alice", **kw: Any) -> str:
            return ApiKeyStore().issue(TENANT, user_id, **kw)[1]

        def chat(self, text: str = "hello", key: str | None = None, **payload: Any) -> Any:
            body = {"model": "mock::echo", "messages": [user(text)], **payload}
            return api.chat(body, key=key or self.alice)

    g = Gov()
    g.configure()
    g.alice = g.key("alice")
    service = chat_service()
    service.pipeline.usage.events = g.recorder
    frozen = __import__("time").time()
    service.pipeline.governance.clock = lambda: frozen  # one rate-limit window for the whole test
    return g


def problem(resp) -> dict[str, Any]:
    assert resp.headers["content-type"] == "application/problem+json", resp.body
    return resp.json()


def sse_frames(body: str) -> list[tuple[str, Any]]:
    out = []
    for frame in body.split("\n\n"):
        if not frame:
            continue
        event = "message"
        data = None
        for line in frame.split("\n"):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        out.append((event, data if data == "[DONE]" else json.loads(data)))
    return out


# ---------------------------------------------------------------- approval


def test_models_lists_only_approved_and_unapproved_models_are_refused(gov, api):
    gov.configure(approved_models=["mock::echo", "openai::gpt-4o*"])
    listed = {m["id"] for m in api.call("GET", "/models", key=gov.alice).json()["data"]}
    assert "mock::echo" in listed and "openai::gpt-4o-mini" in listed and "mock::text-only" not in listed
    resp = gov.chat(model="mock::text-only")
    body = problem(resp)
    assert (resp.status, body["code"]) == (403, "model_not_approved")
    assert "'mock::text-only' is not approved for tenant 'acme'" in body["detail"]
    assert gov.chat().status == 200


# ---------------------------------------------------------------- rate limits


def test_rate_limit_headers_then_429(gov):
    gov.configure(limits={"tenant": {"rpm": 2, "tpm": 100_000}})
    first = gov.chat()
    assert first.status == 200
    assert first.headers["x-ratelimit-limit-requests"] == "2" and first.headers["x-ratelimit-remaining-requests"] == "1"
    assert first.headers["x-ratelimit-limit-tokens"] == "100000" and first.headers["x-ratelimit-reset-requests"].endswith("s")
    assert gov.chat().headers["x-ratelimit-remaining-requests"] == "0"
    third = gov.chat()
    body = problem(third)
    assert (third.status, body["code"]) == (429, "rate_limited")
    assert int(third.headers["retry-after"]) >= 1 and body["retry_after_s"] == int(third.headers["retry-after"])
    assert third.headers["x-ratelimit-remaining-requests"] == "0"
    assert body["limit"]["scope"] == "tenant" and body["limit"]["kind"] == "requests"


def test_user_rate_limit_is_per_user(gov):
    gov.configure(limits={"user": {"rpm": 1}})
    bob = gov.key("bob")
    assert gov.chat().status == 200
    assert problem(gov.chat())["limit"]["scope"] == "user"
    assert gov.chat(key=bob).status == 200


# ---------------------------------------------------------------- budgets


def test_budget_exceeded_after_the_spend_is_charged(gov):
    gov.configure(budgets=[{"scope": "user", "period": "daily", "limit_usd": 0.000001}])
    assert gov.chat("spend a little money please").status == 200
    resp = gov.chat()
    body = problem(resp)
    assert (resp.status, body["code"]) == (402, "budget_exceeded")
    b = body["budget"]
    assert b["scope"] == "user" and b["user_id"] == "alice" and b["period"] == "daily" and b["limit_usd"] == 0.000001
    assert b["spent_usd"] > 0.000001 and b["resets_at"].endswith("T00:00:00Z")
    assert "daily budget of user 'alice' is spent" in body["detail"]


def test_a_blocked_stream_is_charged_for_what_was_generated(gov):
    from llm_gateway.stores.budgets import BudgetStore, budget_key, period_window

    gov.configure(budgets=[{"scope": "tenant", "period": "monthly", "limit_usd": 100}],
                  hooks={"post_response": [{"type": "moderation", "blocklist": ["forbidden"]}]})
    resp = gov.chat("one two three four five forbidden six seven", stream=True)
    assert resp.status == 200
    frames = sse_frames(resp.body)
    assert frames[-1][0] == "error" and frames[-1][1]["code"] == "response_blocked"
    sent = "".join(d.get("delta", {}).get("content", "") for e, d in frames if e == "message" and isinstance(d, dict))
    assert "forbidden" not in sent and sent.startswith("You said: one two")
    key = budget_key(TENANT, period_window("monthly", __import__("time").time())[0])
    assert BudgetStore().spent([key])[key] > 0


def test_budget_overshoot_is_bounded_by_requests_in_flight(gov, monkeypatch):
    """Eight concurrent callers against a small budget: every admitted request is charged, and
    the spend passes the limit by at most the cost of the requests admitted concurrently."""
    from llm_gateway.stores.budgets import BudgetStore, budget_key, period_window

    monkeypatch.setenv("LLMGW_MOCK_LATENCY_MS", "30")
    text = "budget " * 20
    cost = gov.chat(text).json()["usage"]["cost_estimate"]  # the price of one request
    limit = cost * 10.5
    gov.configure(budgets=[{"scope": "user", "period": "daily", "limit_usd": limit}])
    key = budget_key(TENANT, period_window("daily", __import__("time").time())[0], "alice")
    start = BudgetStore().spent([key])[key]
    threads, results = 8, []
    lock = threading.Lock()

    def caller():
        client = ApiClient()
        for _ in range(6):
            r = client.chat({"model": "mock::echo", "messages": [user(text)]}, key=gov.alice)
            with lock:
                results.append(r.status)

    workers = [threading.Thread(target=caller) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    spent = BudgetStore().spent([key])[key]
    admitted = results.count(200)
    assert set(results) == {200, 402}
    assert spent == pytest.approx(start + admitted * cost)
    assert spent >= limit  # the budget was used up ...
    assert spent - limit <= threads * cost + 1e-12  # ... and overshot by at most the requests in flight


# ---------------------------------------------------------------- hooks


def test_pre_call_pii_redaction_reaches_the_provider_redacted(gov):
    gov.configure(hooks={"pre_call": [{"type": "pii"}]})
    resp = gov.chat("my card is 4111 1111 1111 1111 and mail a@b.io")
    assert resp.status == 200
    assert resp.json()["content"][0]["text"] == "You said: my card is [CARD] and mail [EMAIL]"


def test_request_blocked_and_response_blocked(gov):
    gov.configure(hooks={"pre_call": [{"type": "moderation", "blocklist": ["jailbreak"]}]})
    resp = gov.chat("please jailbreak yourself")
    body = problem(resp)
    assert (resp.status, body["code"], body["hook"]) == (403, "request_blocked", "moderation")
    gov.configure(hooks={"post_response": [{"type": "pii", "action": "block"}]})
    resp = gov.chat("echo a@b.io")
    body = problem(resp)
    assert (resp.status, body["code"]) == (451, "response_blocked") and "1 email" in body["detail"]


def test_streamed_output_redaction(gov):
    gov.configure(hooks={"post_response": [{"type": "pii"}]})
    resp = gov.chat("call me at 555-123-4567 or mail jane@example.com today", stream=True)
    frames = sse_frames(resp.body)
    assert frames[-1] == ("message", "[DONE]")
    text = "".join(d["delta"].get("content", "") for e, d in frames[:-1])
    assert text == "You said: call me at [PHONE] or mail [EMAIL] today"
    assert frames[-2][1]["finish_reason"] == "stop" and frames[-2][1]["usage"]["output_tokens"] > 0


def test_external_hook_fail_open_and_closed(gov):
    hook = {"type": "lambda", "function": "tenant-policy", "timeout_ms": 200}
    gov.configure(hooks={"pre_call": [{**hook, "on_error": "open"}]})
    assert gov.chat().status == 200  # no such function in the emulator: fails, policy open
    gov.configure(hooks={"pre_call": [{**hook, "on_error": "closed"}]})
    body = problem(gov.chat())
    assert body["code"] == "request_blocked" and "fail-closed" in body["detail"]


# ---------------------------------------------------------------- audit events


def test_audit_events_exactly_once_per_request(gov, api):
    gov.configure(limits={"tenant": {"rpm": 3}}, hooks={"pre_call": [{"type": "moderation", "blocklist": ["nope"]}]})
    ok = gov.chat("hello", metadata={"conversation_id": "c-1"})
    streamed = gov.chat("hello", stream=True)
    blocked = gov.chat("nope")
    limited = gov.chat("hello")
    assert [r.status for r in (ok, streamed, blocked, limited)] == [200, 200, 403, 429]
    ids = {}
    for e in gov.recorder.events:
        ids.setdefault(e["detail"]["request_id"], []).append(e["detail-type"])
    # the test client reuses one request id; group by order instead
    kinds = gov.recorder.types()
    assert kinds == ["request.started", "request.completed", "request.started", "request.completed",
                     "request.started", "request.blocked", "request.started", "request.failed"]
    details = [e["detail"] for e in gov.recorder.events]
    assert len({d["event_id"] for d in details}) == len(details)
    completed = details[1]
    assert completed["tenant_id"] == TENANT and completed["user_id"] == "alice" and completed["model"] == "mock::echo"
    assert completed["conversation_id"] == "c-1" and completed["usage"]["input_tokens"] > 0 and completed["status"] == 200
    assert details[5]["error_code"] == "request_blocked" and details[5]["hooks"][0]["hook"] == "moderation"
    assert details[7]["error_code"] == "rate_limited" and details[7]["status"] == 429
    assert "hello" not in json.dumps(gov.recorder.events)  # metadata only, never content


def test_audit_events_reach_eventbridge(gov, api):
    import boto3

    from llm_gateway.service.chat import chat_service
    from llm_gateway.stores.events import EventSink

    sqs = boto3.client("sqs", region_name="us-east-1")
    events = boto3.client("events", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="audit")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName="llmgw-audit", EventPattern=json.dumps({"source": ["llm-gateway"]}))
    events.put_targets(Rule="all", EventBusName="llmgw-audit", Targets=[{"Id": "q", "Arn": arn}])
    chat_service().pipeline.usage.events = EventSink()
    assert gov.chat().status == 200
    got = [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])]
    assert sorted(m["detail-type"] for m in got) == ["request.completed", "request.started"]
    assert all(m["source"] == "llm-gateway" and m["detail"]["tenant_id"] == TENANT for m in got)


# ---------------------------------------------------------------- usage API


def test_usage_api_reports_the_tenants_own_figures(gov, api):
    for _ in range(3):
        assert gov.chat("count these tokens").status == 200
    gov.chat(model="mock::text-only", tools=[{"type": "unified", "name": "f", "description": "d",
                                               "parameters": {"json_schema": {"type": "object"}}}])  # 422, an error row
    resp = api.call("GET", "/usage", key=gov.alice)
    assert resp.status == 200, resp.body
    body = resp.json()
    assert body["tenant_id"] == TENANT and body["object"] == "usage"
    rows = {r["model"]: r for r in body["data"]}
    echo = rows["mock::echo"]
    assert echo["requests"] == 3 and echo["errors"] == 0 and echo["input_tokens"] > 0 and echo["cost_usd"] > 0
    assert body["totals"]["requests"] == sum(r["requests"] for r in body["data"])
    dev = api.call("GET", "/usage")  # the dev key: another tenant, other figures
    assert dev.json()["tenant_id"] == "dev-tenant" and all(r["model"] != "x" for r in dev.json()["data"])


@pytest.mark.parametrize("query,path", [("?from=2026-13-01", "from"), ("?from=2026-11-02&to=2026-11-01", "from"),
                                        ("?from=2020-01-01&to=2026-01-01", "from")])
def test_usage_api_validates_dates(gov, api, query, path):
    resp = api.call("GET", "/usage" + query, key=gov.alice)
    body = problem(resp)
    assert (resp.status, body["code"], body["errors"][0]["path"]) == (400, "validation_error", path)


def test_scopes_limit_what_a_key_can_do(gov, api):
    dashboard = gov.key("dash", scopes=["usage"])
    assert api.call("GET", "/usage", key=dashboard).status == 200
    resp = gov.chat(key=dashboard)
    assert (resp.status, problem(resp)["code"]) == (403, "forbidden")
    inference = gov.key("app", scopes=["inference"])
    assert problem(api.call("GET", "/usage", key=inference))["code"] == "forbidden"
    embed = api.call("POST", "/embeddings", json_body={"model": "mock::embed", "input": "x"}, key=dashboard)
    assert (embed.status, problem(embed)["code"]) == (403, "forbidden")


def test_unknown_tenant_is_refused_when_the_policy_is_deny(gov, monkeypatch):
    from llm_gateway.config import reset_settings
    from llm_gateway.stores.keys import ApiKeyStore

    monkeypatch.setenv("LLMGW_UNKNOWN_TENANT", "deny")
    reset_settings()
    stray = ApiKeyStore().issue("ghost", "u")[1]
    body = problem(gov.chat(key=stray))
    assert body["code"] == "forbidden" and "not registered" in body["detail"]


# ---------------------------------------------------------------- authorizer


def test_lambda_authorizer_simple_responses(gov):
    import time

    from functions.authorizer.handler import lambda_handler
    from llm_gateway.local.server import LambdaContext
    from llm_gateway.stores.keys import ApiKeyStore

    ctx = LambdaContext(function_name="authorizer", aws_request_id="r1")

    def event(token: str | None) -> dict[str, Any]:
        e: dict[str, Any] = {"version": "2.0", "type": "REQUEST", "routeArn": "arn:aws:execute-api:us-east-1:1:api/$default/POST/chat/completions",
                             "headers": {}, "requestContext": {"http": {"method": "POST", "path": "/chat/completions"}}}
        if token:
            e["identitySource"] = [token]
            e["headers"]["authorization"] = token
        return e

    ok = lambda_handler(event(f"Bearer {gov.alice}"), ctx)
    assert ok["isAuthorized"] is True
    assert ok["context"]["tenant_id"] == TENANT and ok["context"]["user_id"] == "alice" and ok["context"]["scopes"] == ""
    store = ApiKeyStore()
    expired = store.issue(TENANT, "old", expires_at=int(time.time()) - 5)[1]
    key_id, revoked = store.issue(TENANT, "gone")
    store.revoke(key_id)
    for token in (f"Bearer {expired}", f"Bearer {revoked}", "Bearer llmgw_malformed", "Basic Zm9vOmJhcg==", None):
        assert lambda_handler(event(token), ctx) == {"isAuthorized": False}
    ws = lambda_handler({"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:1:ws/prod/$connect",
                         "headers": {}, "queryStringParameters": {"api_key": gov.alice}}, ctx)
    assert ws["policyDocument"]["Statement"][0]["Effect"] == "Allow" and ws["context"]["tenant_id"] == TENANT
    # what the chat function then sees: the authorizer's context, no key lookup
    from llm_gateway.pipeline.auth import Authenticator

    p = Authenticator().authenticate({}, {"lambda": ok["context"]})
    assert (p.tenant_id, p.user_id, p.scopes, p.source) == (TENANT, "alice", None, "authorizer")


def test_jwt_authorizer_claims_reach_governance(gov, api, monkeypatch):
    """A request the HTTP API's JWT authorizer let through: tenant and user from the claims."""
    import importlib

    from llm_gateway.config import reset_settings
    from llm_gateway.local.server import LambdaContext, apigw_v2_event

    monkeypatch.setenv("LLMGW_JWT_TENANT_CLAIM", "org_id")
    reset_settings()
    gov.configure(limits={"user": {"rpm": 1}})
    handler = importlib.import_module("functions.chat.handler").lambda_handler
    body = json.dumps({"model": "mock::echo", "messages": [user("hi")]}).encode()

    def call(claims: dict[str, Any]) -> dict[str, Any]:
        event = apigw_v2_event("POST", "/chat/completions", "", {"content-type": "application/json"}, body, "req_jwt", "1.2.3.4")
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
        return handler(event, LambdaContext(function_name="chat", aws_request_id="req_jwt"))

    assert call({"sub": "carol", "org_id": TENANT})["statusCode"] == 200
    assert call({"sub": "carol", "org_id": TENANT})["statusCode"] == 429  # carol's own per-user limit
    missing = call({"sub": "carol"})
    assert missing["statusCode"] == 401 and "'org_id'" in json.loads(missing["body"])["detail"]


# ---------------------------------------------------------------- hot-path DynamoDB budget


def _record_dynamodb_calls(monkeypatch) -> list[tuple[str, Any]]:
    """(operation, round trip) of every DynamoDB call from now on; calls made by one
    `parallel.run_all` share a round trip."""
    from llm_gateway.pipeline import parallel
    from llm_gateway.stores.aws import client

    batch = {"id": None, "n": 0}
    calls: list[tuple[str, Any]] = []
    original = parallel.run_all

    def tagged(tasks):
        batch["n"] += 1
        batch["id"] = f"batch{batch['n']}"
        try:
            return original(tasks)
        finally:
            batch["id"] = None

    monkeypatch.setattr(parallel, "run_all", tagged)
    seq = iter(range(1000))
    client("dynamodb").meta.events.register(
        "before-call.dynamodb.*", lambda **kw: calls.append((kw["model"].name, batch["id"] or f"alone{next(seq)}")))
    return calls


def test_at_most_two_sequential_dynamodb_round_trips(gov, monkeypatch):
    """Warm caches, a tenant with tenant and user limits and two budgets, leases and the budget
    view off (the exact mode every request of a quiet instance takes): the pre-call calls run
    side by side (one round trip), the post-call writes too (one round trip)."""
    gov.configure(limits={"tenant": {"rpm": 1000, "tpm": 10**7}, "user": {"rpm": 100, "tpm": 10**6}},
                  budgets=[{"scope": "tenant", "period": "monthly", "limit_usd": 100},
                           {"scope": "user", "period": "daily", "limit_usd": 10}])
    monkeypatch.setenv("LLMGW_TENANT_CACHE_TTL_S", "60")
    monkeypatch.setenv("LLMGW_RATE_LEASE_S", "0")
    monkeypatch.setenv("LLMGW_BUDGET_FRESH_S", "0")
    from llm_gateway.config import reset_settings

    reset_settings()
    assert gov.chat().status == 200  # warm the key and tenant caches
    calls = _record_dynamodb_calls(monkeypatch)
    assert gov.chat().status == 200
    round_trips = {b for _, b in calls}
    assert len(round_trips) == 2, calls
    names = sorted(n for n, _ in calls)
    assert names == sorted(["UpdateItem", "UpdateItem", "BatchGetItem",  # pre: 2 rate limits + the budgets
                            "PutItem", "UpdateItem", "UpdateItem", "UpdateItem", "UpdateItem", "UpdateItem"])
    # post: usage record, aggregate, 2 budget charges, 2 token corrections


def test_a_busy_instance_admits_from_its_lease_without_a_round_trip(gov, monkeypatch):
    """With leases and the budget view on (the default), a steady stream of requests far from
    the limits makes no DynamoDB call before the provider call; the counter still holds every
    request the leases admitted."""
    from llm_gateway.pipeline.leases import BudgetView, RateLeases
    from llm_gateway.stores.ratelimit import RateLimitStore, rate_key, window_start

    gov.configure(limits={"tenant": {"rpm": 100_000, "tpm": 10**8}, "user": {"rpm": 50_000, "tpm": 10**8}},
                  budgets=[{"scope": "tenant", "period": "monthly", "limit_usd": 100}])
    monkeypatch.setenv("LLMGW_TENANT_CACHE_TTL_S", "60")
    monkeypatch.setenv("LLMGW_BUDGET_FRESH_S", "60")  # no background refresh during the test
    from llm_gateway.config import reset_settings
    from llm_gateway.pipeline import parallel

    reset_settings()
    for _ in range(6):  # the instance becomes busy enough to lease
        assert gov.chat().status == 200
    parallel.drain()
    sync: list[str] = []
    claim, read = RateLeases.claim, BudgetView.read
    monkeypatch.setattr(RateLeases, "claim", lambda self, c, w: sync.append("claim") or claim(self, c, w))
    monkeypatch.setattr(BudgetView, "read", lambda self, keys: sync.append("read") or read(self, keys))
    for _ in range(3):
        resp = gov.chat()
        assert resp.status == 200
    assert sync == []
    remaining = int(resp.headers["x-ratelimit-remaining-requests"])
    assert 50_000 - 9 - 500 <= remaining <= 50_000 - 9  # the user scope: 9 requests, plus at most one lease
    from llm_gateway.service.chat import chat_service

    window = window_start(chat_service().pipeline.governance.clock())
    req, _ = RateLimitStore().current(rate_key(TENANT, window))
    assert req >= 9  # every admitted request is on the global counter (claimed by a lease)


# ---------------------------------------------------------------- other routes


def test_embeddings_are_governed_too(gov, api):
    gov.configure(approved_models=["mock::echo"], limits={"tenant": {"rpm": 1}})
    body = {"model": "mock::embed", "input": ["a few words"]}
    resp = api.call("POST", "/embeddings", json_body=body, key=gov.alice)
    assert (resp.status, problem(resp)["code"]) == (403, "model_not_approved")
    gov.configure(approved_models=["mock::*"], limits={"tenant": {"rpm": 1}})
    ok = api.call("POST", "/embeddings", json_body=body, key=gov.alice)
    assert ok.status == 200 and ok.headers["x-ratelimit-remaining-requests"] == "0"
    assert problem(api.call("POST", "/embeddings", json_body=body, key=gov.alice))["code"] == "rate_limited"


def test_a_stream_the_client_abandons_is_charged(gov, api):
    """The consumer stops reading after the first frames (client gone): the generator is closed,
    and what was generated is still charged to the budget and recorded."""
    from llm_gateway.service.chat import chat_service
    from llm_gateway.service.http import HttpRequest
    from llm_gateway.stores.budgets import BudgetStore, budget_key, period_window

    gov.configure(budgets=[{"scope": "tenant", "period": "daily", "limit_usd": 10}])
    body = json.dumps({"model": "mock::echo", "stream": True, "messages": [user("one two three four five six seven eight")]})
    req = HttpRequest("POST", "/chat/completions", {"authorization": f"Bearer {gov.alice}", "content-type": "application/json"},
                      body.encode(), request_id="req_abandon")
    resp = chat_service().chat_completions(req)
    frames = iter(resp.stream)
    next(frames), next(frames), next(frames)
    resp.stream.close()
    key = budget_key(TENANT, period_window("daily", __import__("time").time())[0])
    assert BudgetStore().spent([key])[key] > 0
    terminal = [e for e in gov.recorder.events if e["detail-type"] != "request.started"][-1]
    assert terminal["detail-type"] == "request.completed" and terminal["detail"]["outcome"] == "cancelled"
    assert terminal["detail"]["usage"]["output_tokens"] > 0
