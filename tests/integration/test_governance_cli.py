"""The admin CLI walk-through: create a tenant, approve models, set limits and budgets, issue
and revoke keys, hooks, status and usage — then the gateway obeys it."""

from __future__ import annotations

import json

import pytest

from llm_gateway.cli import main
from tests.conftest import user


@pytest.fixture
def cli(api, monkeypatch, capsys):
    from llm_gateway.config import reset_settings

    monkeypatch.setenv("LLMGW_TENANT_CACHE_TTL_S", "0")
    monkeypatch.setenv("LLMGW_AUTH_CACHE_TTL_S", "0")
    reset_settings()

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        out = capsys.readouterr()
        # main() resets settings/clients; keep the test's settings
        return code, out.out, out.err

    return run


def test_walk_through(cli, api, tmp_path):
    code, out, err = cli("tenants", "create", "acme", "--name", "Acme", "--models", "mock::*",
                         "--rpm", "100", "--user-rpm", "2", "--budget", "tenant:monthly:50")
    assert code == 0 and "created" in out
    code, out, err = cli("keys", "issue", "acme", "--user", "alice", "--expires-in", "30d", "--name", "laptop")
    assert code == 0 and "shown once" in err
    key = out.strip()
    assert key.startswith("llmgw_")

    ok = api.chat({"model": "mock::echo", "messages": [user("hello")]}, key=key)
    assert ok.status == 200 and ok.headers["x-ratelimit-remaining-requests"] == "1"
    assert api.chat({"model": "openai::gpt-4o-mini", "messages": [user("x")]}, key=key).json()["code"] == "model_not_approved"

    assert cli("tenants", "approve", "acme", "openai::gpt-4o-mini")[0] == 0
    assert cli("tenants", "set-limits", "acme", "--user-rpm", "none")[0] == 0
    assert cli("tenants", "set-budget", "acme", "--scope", "user", "--period", "daily", "--usd", "0.0000001", "--user", "alice")[0] == 0
    code, out, _ = cli("tenants", "show", "acme")
    shown = json.loads(out)
    assert shown["approved_models"] == ["mock::*", "openai::gpt-4o-mini"] and shown["limits"] == {"tenant": {"rpm": 100}}
    assert {"scope": "user", "period": "daily", "limit_usd": 1e-07, "user_id": "alice"} in shown["budgets"]
    # a budget counts from when it exists: the first request is admitted (and charged), the next is not
    assert api.chat({"model": "mock::echo", "messages": [user("hello")]}, key=key).status == 200
    resp = api.chat({"model": "mock::echo", "messages": [user("hello")]}, key=key)
    assert (resp.status, resp.json()["code"]) == (402, "budget_exceeded")
    assert cli("tenants", "remove-budget", "acme", "--scope", "user", "--period", "daily", "--user", "alice")[0] == 0

    hooks = tmp_path / "hooks.json"
    hooks.write_text(json.dumps({"pre_call": [{"type": "pii"}]}))
    assert cli("tenants", "set-hooks", "acme", str(hooks))[0] == 0
    echoed = api.chat({"model": "mock::echo", "messages": [user("mail a@b.io")]}, key=key).json()
    assert echoed["content"][0]["text"] == "You said: mail [EMAIL]"
    hooks.write_text(json.dumps({"pre_call": [{"type": "telepathy"}]}))
    code, _, err = cli("tenants", "set-hooks", "acme", str(hooks))
    assert code == 2 and "unknown hook type" in err

    code, out, _ = cli("tenants", "status", "acme", "--user", "alice")
    import re

    # 3 requests counted so far (unless the minute turned over mid-test on a slow machine)
    assert re.search(r"this minute, tenant: [0-3]/100 requests", out) and "monthly budget, tenant: $0.0000" in out

    code, out, _ = cli("usage", "acme", "--json")
    usage = json.loads(out)
    assert usage["totals"]["requests"] == 5 and usage["totals"]["errors"] == 2 and usage["by_model"][0]["model"] == "mock::echo"
    code, out, _ = cli("usage", "acme")
    assert "mock::echo" in out and out.strip().splitlines()[-1].startswith("total")

    code, out, _ = cli("keys", "list", "acme")
    key_id = key.split("_")[1]
    assert key_id in out and "active" in out and "laptop" in out
    assert cli("keys", "revoke", key_id)[0] == 0
    resp = api.chat({"model": "mock::echo", "messages": [user("hello")]}, key=key)
    assert resp.status == 401 and "revoked" in resp.json()["detail"]
    assert "revoked" in cli("keys", "list", "acme")[1]

    assert cli("tenants", "suspend", "acme")[0] == 0
    other = cli("keys", "issue", "acme", "--user", "bob", "--scopes", "inference")[1].strip()
    assert api.chat({"model": "mock::echo", "messages": [user("x")]}, key=other).json()["code"] == "forbidden"
    code, out, _ = cli("tenants", "list")
    assert "acme\tsuspended" in out


def test_errors_are_reported_not_raised(cli):
    assert cli("tenants", "create", "bad id!")[0] == 2
    assert cli("keys", "issue", "nobody", "--user", "u")[0] == 2
    assert cli("keys", "revoke", "nope")[0] == 2
    assert cli("tenants", "create", "t1", "--budget", "tenant:weekly:5")[0] == 2
    assert cli("tenants", "create", "t1")[0] == 0
    code, _, err = cli("tenants", "create", "t1")
    assert code == 2 and "already exists" in err
