"""Tenant configuration: validation, model approval patterns, versioned writes and the cache."""

import pytest

from llm_gateway.stores.tenants import ConfigError, TenantConfig, TenantStore


def test_from_dict_round_trip_and_defaults():
    cfg = TenantConfig.from_dict("acme", {
        "approved_models": ["openai::*", "mock::echo"],
        "limits": {"tenant": {"rpm": 10, "tpm": 1000}, "user": {"rpm": 2}},
        "budgets": [{"scope": "tenant", "period": "monthly", "limit_usd": 5},
                    {"scope": "user", "period": "daily", "limit_usd": 1, "user_id": "alice"}],
    })
    assert cfg.tenant_limit.rpm == 10 and cfg.user_limit.tpm is None and cfg.governed
    assert [b.applies_to("alice") for b in cfg.budgets] == [True, True]
    assert [b.applies_to("bob") for b in cfg.budgets] == [True, False]
    assert TenantConfig.from_dict("acme", cfg.to_dict()).to_dict() == cfg.to_dict()
    plain = TenantConfig.from_dict("t", {})
    assert plain.approved_models == ("*",) and not plain.governed


def test_approval_patterns_match_ids_and_aliases():
    cfg = TenantConfig.from_dict("acme", {"approved_models": ["openai::gpt-4o*", "cheap"]})
    assert cfg.approves("openai::gpt-4o-mini")
    assert not cfg.approves("openai::o3")
    assert cfg.approves("mock::echo", ("cheap",))
    assert not TenantConfig.from_dict("t", {"approved_models": []}).approves("mock::echo")


@pytest.mark.parametrize("tenant,data,msg", [
    ("bad id!", {}, "tenant id"),
    ("t", {"colour": "blue"}, "unknown fields"),
    ("t", {"status": "paused"}, "status"),
    ("t", {"approved_models": "openai::*"}, "approved_models"),
    ("t", {"limits": {"tenant": {"rpm": 0}}}, "positive integer"),
    ("t", {"limits": {"team": {}}}, "limits"),
    ("t", {"budgets": [{"scope": "tenant", "period": "weekly", "limit_usd": 1}]}, "period"),
    ("t", {"budgets": [{"scope": "tenant", "period": "daily", "limit_usd": -1}]}, "limit_usd"),
    ("t", {"budgets": [{"scope": "tenant", "period": "daily", "limit_usd": 1, "user_id": "u"}]}, "user_id"),
])
def test_invalid_documents_are_refused(tenant, data, msg):
    with pytest.raises(ConfigError, match=msg):
        TenantConfig.from_dict(tenant, data)


def test_store_versions_and_cache(aws, monkeypatch):
    from llm_gateway.config import reset_settings

    store = TenantStore()
    created = store.put(TenantConfig.from_dict("acme", {"name": "Acme"}), expected_version=0)
    assert created.version == 1
    with pytest.raises(ConfigError, match="concurrently"):
        store.put(TenantConfig.from_dict("acme", {}), expected_version=0)
    updated = store.update("acme", lambda d: {**d, "approved_models": ["mock::*"]})
    assert updated.version == 2 and store.get("acme").approved_models == ("mock::*",)
    with pytest.raises(ConfigError, match="does not exist"):
        store.update("nobody", lambda d: d)
    assert [t.tenant_id for t in store.list()] == ["acme", "dev-tenant"]

    monkeypatch.setenv("LLMGW_TENANT_CACHE_TTL_S", "60")
    reset_settings()
    reader = TenantStore()
    assert reader.get("acme").version == 2
    store.update("acme", lambda d: {**d, "name": "Acme 2"})
    assert reader.get("acme").name == "Acme"  # cached until the TTL
    assert reader.get("acme", fresh=True).name == "Acme 2"
    assert reader.get("nobody") is None
