"""API keys (issue, expiry, revocation, scopes, malformed) and the Authenticator's three ways in."""

import time

import pytest

from llm_gateway.api.errors import GatewayError
from llm_gateway.pipeline.auth import Authenticator, require_scope
from llm_gateway.stores.keys import ApiKeyStore, Principal


@pytest.fixture
def no_cache(monkeypatch, aws):
    from llm_gateway.config import reset_settings

    monkeypatch.setenv("LLMGW_AUTH_CACHE_TTL_S", "0")
    reset_settings()


def code_and_detail(fn):
    with pytest.raises(GatewayError) as e:
        fn()
    return e.value.code, e.value.detail


def test_issue_then_authenticate(no_cache):
    store = ApiKeyStore()
    key_id, raw = store.issue("acme", "alice", name="ci key")
    assert raw.startswith(f"llmgw_{key_id}_") and len(raw) > 40
    p = Authenticator(store).authenticate({"authorization": f"Bearer {raw}"})
    assert (p.tenant_id, p.user_id, p.key_id, p.scopes, p.source) == ("acme", "alice", key_id, None, "api_key")
    assert Authenticator(store).authenticate({"x-api-key": raw}).tenant_id == "acme"
    info = store.get(key_id)
    assert info.name == "ci key" and not info.revoked and raw not in repr(info)


def test_expired_revoked_malformed_unknown(no_cache):
    store = ApiKeyStore()
    auth = Authenticator(store)
    _, expired = store.issue("acme", "alice", expires_at=int(time.time()) - 1)
    assert code_and_detail(lambda: auth.authenticate({"authorization": f"Bearer {expired}"})) == (
        "unauthorized", f"The API key '{expired.split('_')[1]}' has expired.")
    key_id, raw = store.issue("acme", "bob", expires_at=int(time.time()) + 3600)
    assert auth.authenticate({"authorization": f"Bearer {raw}"}).user_id == "bob"
    assert store.revoke(key_id).revoked
    code, detail = code_and_detail(lambda: auth.authenticate({"authorization": f"Bearer {raw}"}))
    assert code == "unauthorized" and "revoked" in detail
    for bad in ("sk-not-ours", "llmgw_short", "llmgw_id_with spaces in it", "Bearer"):
        code, detail = code_and_detail(lambda b=bad: auth.authenticate({"authorization": f"Bearer {b}"}))
        assert code == "unauthorized" and "malformed" in detail
    code, detail = code_and_detail(lambda: auth.authenticate({"authorization": "Bearer llmgw_abcdef012345_" + "x" * 32}))
    assert "unknown" in detail
    assert store.revoke("nosuchid") is None


def test_malformed_keys_cost_no_dynamodb_call(aws):
    store = ApiKeyStore()
    calls = []
    from llm_gateway.stores.aws import client

    client("dynamodb").meta.events.register("before-call.dynamodb.*", lambda **kw: calls.append(kw["model"].name))
    assert store.check("garbage").reason == "malformed"
    assert calls == []


def test_revocation_reaches_a_warm_process_within_the_cache_ttl(aws, monkeypatch):
    from llm_gateway.config import reset_settings

    monkeypatch.setenv("LLMGW_AUTH_CACHE_TTL_S", "0.2")
    reset_settings()
    admin, gateway = ApiKeyStore(), ApiKeyStore()
    key_id, raw = admin.issue("acme", "alice")
    assert gateway.lookup(raw) is not None
    admin.revoke(key_id)
    time.sleep(0.25)
    assert gateway.check(raw).reason == "revoked"


def test_scopes(no_cache):
    store = ApiKeyStore()
    _, raw = store.issue("acme", "dash", scopes=["usage"])
    p = Authenticator(store).authenticate({"authorization": f"Bearer {raw}"})
    assert p.scopes == frozenset({"usage"})
    require_scope(p, "usage")
    code, detail = code_and_detail(lambda: require_scope(p, "chat"))
    assert code == "forbidden" and "'inference'" in detail
    with pytest.raises(ValueError):
        store.issue("acme", "x", scopes=["root"])


def test_list_keys_per_tenant(no_cache):
    store = ApiKeyStore()
    store.issue("acme", "a")
    store.issue("acme", "b")
    store.issue("other", "c")
    assert sorted(k.user_id for k in store.list_keys("acme")) == ["a", "b"]


# ---------------------------------------------------------------- upstream authorizers


def test_lambda_authorizer_context_is_trusted():
    p = Authenticator().authenticate({}, {"lambda": {"tenant_id": "acme", "user_id": "alice", "key_id": "k1", "scopes": "inference models"}})
    assert p == Principal("acme", "alice", "k1", scopes=frozenset({"inference", "models"}), source="authorizer")


def test_jwt_claims_with_default_and_configured_names(monkeypatch):
    from llm_gateway.config import reset_settings

    reset_settings()
    jwt = {"jwt": {"claims": {"sub": "user-1", "tenant_id": "acme", "jti": "abc"}, "scopes": None}}
    p = Authenticator().authenticate({}, jwt)
    assert (p.tenant_id, p.user_id, p.key_id, p.source, p.scopes) == ("acme", "user-1", "jwt:abc", "jwt", None)

    monkeypatch.setenv("LLMGW_JWT_TENANT_CLAIM", "custom:org")
    monkeypatch.setenv("LLMGW_JWT_USER_CLAIM", "email")
    reset_settings()
    claims = {"sub": "x", "custom:org": "globex", "email": "h@globex.com", "scope": "openid llmgw/inference"}
    p = Authenticator().authenticate({}, {"jwt": {"claims": claims}})
    assert (p.tenant_id, p.user_id, p.scopes) == ("globex", "h@globex.com", frozenset({"inference"}))

    monkeypatch.setenv("LLMGW_JWT_TENANT_CLAIM", "org.id")  # nested claim
    reset_settings()
    p = Authenticator().authenticate({}, {"jwt": {"claims": {"org": {"id": "nested"}, "email": "e"}}})
    assert p.tenant_id == "nested"
    reset_settings()


def test_jwt_without_the_tenant_claim_is_refused(monkeypatch):
    from llm_gateway.config import reset_settings

    monkeypatch.setenv("LLMGW_JWT_TENANT_CLAIM", "tid")
    reset_settings()
    code, detail = code_and_detail(lambda: Authenticator().authenticate({}, {"jwt": {"claims": {"sub": "u"}}}))
    assert code == "unauthorized" and "'tid'" in detail
    code, detail = code_and_detail(lambda: Authenticator().authenticate({}, {"jwt": {"claims": {"tid": "t"}}}))
    assert "'sub'" in detail
    reset_settings()
