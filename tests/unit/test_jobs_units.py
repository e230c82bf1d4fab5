"""Units of the jobs package: expiring ids, the state machine definition, backoff, backend choice."""

from __future__ import annotations

import json
import time

import pytest

from llm_gateway.api.errors import GatewayError
from llm_gateway.jobs import definition, ids
from llm_gateway.jobs.batch_service import choose_backend
from llm_gateway.jobs.common import backoff, retryable, step_result
from llm_gateway.registry.catalog import Catalog


# ---------------------------------------------------------------- ids


def test_an_id_carries_its_expiry_and_is_bound_to_kind_and_tenant():
    exp = time.time() + 3600
    job_id = ids.mint("job", "tenant-a", exp)
    assert job_id.startswith("job_")
    parsed = ids.parse("job", job_id, "tenant-a")
    assert parsed is not None and parsed.expires_at == int(exp) and not parsed.expired()
    assert ids.parse("job", job_id, "tenant-b") is None  # another tenant: not found
    assert ids.parse("batch", job_id, "tenant-a") is None  # another kind
    assert ids.parse("job", job_id[:-1] + ("0" if job_id[-1] != "0" else "1"), "tenant-a") is None  # tampered
    assert ids.parse("job", "job_" + "x" * 30, "tenant-a") is None


def test_an_expired_id_parses_as_expired():
    past = ids.mint("batch", "t", time.time() - 5)
    parsed = ids.parse("batch", past, "t")
    assert parsed is not None and parsed.expired()


def test_ids_are_unique_and_depend_on_the_key(monkeypatch):
    exp = time.time() + 60
    assert len({ids.mint("job", "t", exp) for _ in range(200)}) == 200
    job_id = ids.mint("job", "t", exp)
    monkeypatch.setenv("LLMGW_ID_KEY", "another-deployment")
    assert ids.parse("job", job_id, "t") is None


def test_the_id_key_can_come_from_secrets_manager_and_never_falls_back_to_the_built_in_key(monkeypatch):
    """What the CDK stack deploys: LLMGW_ID_KEY_SECRET_ARN names a generated secret."""
    from moto import mock_aws

    from llm_gateway import resets
    from llm_gateway.stores.aws import client

    monkeypatch.delenv("LLMGW_ID_KEY", raising=False)
    monkeypatch.delenv("LLMGW_AWS_ENDPOINT_URL", raising=False)
    exp = time.time() + 60
    builtin = ids.mint("job", "t", exp)
    with mock_aws():
        resets.reset_all()
        arn = client("secretsmanager").create_secret(Name="llmgw-id-key", SecretString="s3cr3t-per-deployment")["ARN"]
        monkeypatch.setenv("LLMGW_ID_KEY_SECRET_ARN", arn)
        job_id = ids.mint("job", "t", exp)
        assert ids.parse("job", job_id, "t") is not None
        assert ids.parse("job", builtin, "t") is None  # the built-in key no longer verifies
        monkeypatch.setenv("LLMGW_ID_KEY", "s3cr3t-per-deployment")  # the same key, set directly
        assert ids.parse("job", job_id, "t") is not None
        monkeypatch.delenv("LLMGW_ID_KEY")
        monkeypatch.setenv("LLMGW_ID_KEY_SECRET_ARN", arn.replace("llmgw-id-key", "missing"))
        with pytest.raises(RuntimeError, match="LLMGW_ID_KEY_SECRET_ARN"):
            ids.mint("job", "t", exp)
    resets.reset_all()


# ---------------------------------------------------------------- the state machine definition


def test_definition_substitutes_every_placeholder_and_stays_valid_asl():
    arn = "arn:aws:lambda:eu-west-1:111122223333:function:llmgw-workflow"
    text = definition.render({"WorkflowFunctionArn": arn})
    assert "${" not in text
    doc = json.loads(text)
    tasks = [s for s in doc["States"].values() if s["Type"] == "Task"]
    tasks += [s for s in doc["States"]["RunChunks"]["ItemProcessor"]["States"].values()]
    assert tasks and all(t["Parameters"]["FunctionName"] == arn for t in tasks)
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    AmazonStateLanguageParser.parse(text)  # moto's ASL interpreter (the local runner) accepts it


def test_definition_refuses_missing_substitutions():
    with pytest.raises(ValueError):
        definition.render({})


def test_every_state_is_reachable_and_every_failure_is_caught():
    doc = definition.definition({"WorkflowFunctionArn": "arn:x"})
    states = doc["States"]
    seen, todo = set(), [doc["StartAt"]]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        s = states[name]
        nexts = [s.get("Next"), s.get("Default")] + [c["Next"] for c in s.get("Choices", [])] + [c["Next"] for c in s.get("Catch", [])]
        todo.extend(n for n in nexts if n)
    assert seen == set(states)
    for name in ("Start", "Poll", "RunChunks", "Finish"):
        assert states[name]["Catch"][0]["Next"] == "MarkFailed"


# ---------------------------------------------------------------- small helpers


def test_backoff_grows_to_the_maximum_in_whole_seconds():
    assert [backoff(a, 2, 30) for a in range(8)] == [2, 3, 4, 7, 10, 15, 23, 30]
    assert backoff(5, 0, 10) == 0
    assert step_result("poll", wait_s=2.7, attempt=1)["wait_s"] == 2


def test_retryable_errors():
    assert retryable(GatewayError("rate_limited", "x", provider="openai"))
    assert retryable(GatewayError("rate_limited", "tenant rpm"))
    assert retryable(GatewayError("provider_error", "x", retry_after_s=2))
    assert not retryable(GatewayError("provider_error", "x"))
    assert not retryable(GatewayError("validation_error", "x"))


def _catalog() -> Catalog:
    return Catalog({
        "providers": [{"id": "openai", "kind": "openai", "base_url": "http://x"}, {"id": "anthropic", "kind": "anthropic", "base_url": "http://y"},
                      {"id": "mock", "kind": "mock"}, {"id": "off", "kind": "openai", "options": {"batch_api": False}}],
        "models": [{"id": "openai::a", "capabilities": ["chat", "batch"]}, {"id": "openai::b", "capabilities": ["chat", "batch"]},
                   {"id": "openai::c", "capabilities": ["chat"]}, {"id": "anthropic::a", "capabilities": ["chat", "batch"]},
                   {"id": "anthropic::b", "capabilities": ["chat", "batch"]}, {"id": "mock::a", "capabilities": ["chat"]},
                   {"id": "off::a", "capabilities": ["chat", "batch"]}],
    })


@pytest.mark.parametrize(
    ("models", "wanted", "expected"),
    [
        (["openai::a", "openai::a"], "auto", "openai"),
        (["openai::a", "openai::b"], "auto", "gateway"),  # one model per OpenAI batch
        (["anthropic::a", "anthropic::b"], "auto", "anthropic"),  # Anthropic mixes models
        (["openai::c"], "auto", "gateway"),  # no batch capability
        (["off::a"], "auto", "gateway"),  # batch API turned off
        (["openai::a", "anthropic::a"], "auto", "gateway"),
        (["mock::a"], "auto", "gateway"),
        (["openai::a"], "gateway", "gateway"),
        (["anthropic::a"], "provider", "anthropic"),
    ],
)
def test_backend_choice(models, wanted, expected):
    cat = _catalog()
    assert choose_backend([cat.models[m] for m in models], wanted)[0] == expected


def test_backend_provider_that_cannot_be_honoured_says_why():
    cat = _catalog()
    with pytest.raises(GatewayError) as err:
        choose_backend([cat.models["openai::a"], cat.models["openai::b"]], "provider")
    assert err.value.code == "capability_not_supported" and "one model per batch" in err.value.detail


def test_worker_refuses_unknown_steps():
    from llm_gateway.jobs.worker import WorkflowWorker

    with pytest.raises(ValueError):
        WorkflowWorker(jobs=object(), batches=object()).handle({"step": "start", "kind": "nope", "id": "x"})
    with pytest.raises(ValueError):
        WorkflowWorker(jobs=object(), batches=object()).handle({"step": "dance", "kind": "job", "id": "x"})
