"""Batches through the real handlers with the state machine executing: the OpenAI Batch API and
Anthropic Message Batches (fake servers speaking their wire formats) and gateway-run batches
(the Map state over chunks), partial results, cancel, expiry and bad input."""

from __future__ import annotations

import time

import pytest

from tests.conftest import DEV_TENANT, user
from tests.contract.schema_check import assert_valid, validator
from tests.fakes.anthropic_batch import FakeAnthropicBatch, MessageBatchScript
from tests.fakes.openai_batch import BatchScript, FakeOpenAIBatch
from tests.jobs_support import execution_status, jobs_api, other_tenant_key, wait_for  # noqa: F401

BATCH_EXTENSIONS = {"expires_at", "backend", "provider", "request_counts", "usage", "error", "metadata", "slice"}


def assert_batch_contract(body: dict) -> None:
    core = {k: v for k, v in body.items() if k not in BATCH_EXTENSIONS}
    core["requests"] = [{"custom_id": r["custom_id"], "request": {"model": "x", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "x"}]}]}, **({"error": r["error"]} if "error" in r else {})}
        for r in body["requests"]]
    errs = [e.message for e in validator("batch").iter_errors(core)]
    assert not errs, errs
    for r in body["requests"]:
        if "result" in r:
            assert_valid("response", r["result"])


def items(n: int, model: str, prefix: str = "q") -> list[dict]:
    return [{"custom_id": f"{prefix}-{i}", "request": {"model": model, "messages": [user(f"question {i}")]}} for i in range(n)]


def get_batch(api, batch_id: str, **kw):
    return api.call("GET", f"/batches/{batch_id}", **kw)


def finished(api, batch_id: str, timeout: float = 30.0) -> dict:
    return wait_for(lambda: get_batch(api, batch_id).json(),
                    lambda b: b.get("status") in ("completed", "failed", "cancelled") and not _collecting(b), timeout=timeout)


def _collecting(b: dict) -> bool:
    """A cancelled provider batch keeps being followed until the provider confirms."""
    return b.get("status") == "cancelled" and b["request_counts"]["pending"] > 0 and not all(
        "error" in r or "result" in r for r in b["requests"])


def check_answers(batch: dict, *, discount: bool) -> None:
    for i, r in enumerate(batch["requests"]):
        assert r["custom_id"] == f"q-{i}"
        result = r["result"]
        assert result["content"][0]["text"] == f"Batch answer to: question {i}" if discount else result["content"][0]["text"]
        assert result["usage"].get("batch") is (True if discount else None)


# ---------------------------------------------------------------- provider batch APIs


def test_openai_batch_of_20_reports_progress_then_completes_with_every_result(jobs_api, use_catalog):
    with FakeOpenAIBatch(batch=BatchScript(polls_to_finish=3)) as fake:
        provider, models = fake.catalog()
        use_catalog([provider], models)
        model = models[0]["id"]
        resp = jobs_api.call("POST", "/batches", json_body={"requests": items(20, model), "metadata": {"job": "nightly"}})
        assert resp.status == 202, resp.body
        batch = resp.json()
        assert batch["status"] == "pending" and batch["backend"] == "openai" and batch["id"].startswith("batch_")
        assert batch["request_counts"] == {"total": 20, "completed": 0, "failed": 0, "pending": 20}
        assert [r["custom_id"] for r in batch["requests"]] == [f"q-{i}" for i in range(20)]
        assert_batch_contract(batch)

        progress = wait_for(lambda: get_batch(jobs_api, batch["id"]).json(),
                            lambda b: b["status"] == "in_progress" and 0 < b["request_counts"]["completed"] < 20)
        assert all("result" not in r for r in progress["requests"])  # the provider publishes results at the end
        done = finished(jobs_api, batch["id"])
        assert fake.violations == []
        lines = fake.batch_lines()
    assert done["status"] == "completed", done.get("error")
    assert done["request_counts"] == {"total": 20, "completed": 20, "failed": 0, "pending": 0}
    check_answers(done, discount=True)
    assert_batch_contract(done)
    # translated by the OpenAI adapter, one JSONL line per request with the gateway's own ids
    assert [line["custom_id"] for line in lines] == [f"r{i}" for i in range(20)]
    assert lines[0]["body"]["model"] == "gpt-fake-4o" and lines[0]["body"]["messages"] == [{"role": "user", "content": "question 0"}]
    # batch pricing: half of the normal price (2.5 / 10 USD per Mtok; 11 in, 7 out)
    full = (11 * 2.5 + 7 * 10.0) / 1e6
    assert done["requests"][0]["result"]["usage"]["cost_estimate"] == pytest.approx(full / 2)
    assert done["usage"]["cost_estimate"] == pytest.approx(20 * full / 2)
    assert done["metadata"] == {"job": "nightly"}
    from llm_gateway.stores.usage import UsageStore

    recorded = [r for r in UsageStore().list_for_tenant(DEV_TENANT) if r.get("batch_id") == batch["id"]]
    assert len(recorded) == 20 and {r["route"] for r in recorded} == {"batches"}
    from llm_gateway.stores.budgets import BudgetStore, budget_key, period_window

    key = budget_key(DEV_TENANT, period_window("monthly", time.time())[0])
    assert BudgetStore().spent([key])[key] == pytest.approx(20 * full / 2)  # charged at the batch price
    assert wait_for(lambda: execution_status(batch["id"]), lambda s: s != "RUNNING", timeout=5) == "SUCCEEDED"


def test_anthropic_message_batch_of_20_reports_progress_then_completes(jobs_api, use_catalog):
    with FakeAnthropicBatch(batch=MessageBatchScript(polls_to_finish=3)) as fake:
        provider, models = fake.catalog()
        use_catalog([provider], models)
        resp = jobs_api.call("POST", "/batches", json_body={"requests": items(20, models[0]["id"])})
        assert resp.status == 202, resp.body
        batch = resp.json()
        assert batch["backend"] == "anthropic"
        progress = wait_for(lambda: get_batch(jobs_api, batch["id"]).json(),
                            lambda b: b["status"] == "in_progress" and 0 < b["request_counts"]["completed"] < 20)
        assert progress["request_counts"]["pending"] > 0
        done = finished(jobs_api, batch["id"])
        assert fake.violations == []
        sent = fake.batch_requests()
    assert done["status"] == "completed", done.get("error")
    assert done["request_counts"]["completed"] == 20
    check_answers(done, discount=True)  # results came back out of order: mapped by custom_id
    assert_batch_contract(done)
    assert sent[0]["custom_id"] == "r0" and sent[0]["params"]["max_tokens"] > 0
    assert sent[0]["params"]["messages"] == [{"role": "user", "content": [{"type": "text", "text": "question 0"}]}]


def test_gateway_run_batch_of_20_shows_partial_results_chunk_by_chunk(jobs_api, use_catalog, monkeypatch):
    monkeypatch.setenv("LLMGW_BATCH_CHUNK_SIZE", "5")
    monkeypatch.setenv("LLMGW_BATCH_MAX_CONCURRENCY", "1")
    monkeypatch.setenv("LLMGW_BATCH_ITEM_CONCURRENCY", "5")
    use_catalog([{"id": "mock", "kind": "mock", "base_url": None, "credential": None}],
                [{"id": "mock::paced", "capabilities": ["chat"], "options": {"latency_ms": 300},
                  "pricing": {"input_per_mtok": 0.1, "output_per_mtok": 0.4, "batch_discount": 0.5}}])
    resp = jobs_api.call("POST", "/batches", json_body={"requests": items(20, "mock::paced")})
    assert resp.status == 202, resp.body
    batch = resp.json()
    assert batch["backend"] == "gateway"
    partial = wait_for(lambda: get_batch(jobs_api, batch["id"]).json(),
                       lambda b: b["status"] == "in_progress" and 0 < sum("result" in r for r in b["requests"]) < 20)
    assert partial["request_counts"]["completed"] == sum("result" in r for r in partial["requests"])
    assert_batch_contract(partial)
    done = finished(jobs_api, batch["id"])
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 20, "completed": 20, "failed": 0, "pending": 0}
    for i, r in enumerate(done["requests"]):
        assert r["result"]["content"][0]["text"] == f"You said: question {i}"
        assert "batch" not in r["result"]["usage"]  # run by the gateway at the normal price
    assert_batch_contract(done)


def test_gateway_run_batch_keeps_per_request_failures_apart(jobs_api):
    reqs = items(4, "mock::echo")
    reqs[2]["request"]["max_tokens"] = 1  # finishes with "length": still a result
    reqs[3]["request"]["tools"] = [{"type": "reference", "schema_id": "gts.x.core.faas.func.v1~x.nope.v1~"}]
    resp = jobs_api.call("POST", "/batches", json_body={"requests": reqs})
    done = finished(jobs_api, resp.json()["id"])
    assert done["status"] == "completed"
    assert done["requests"][2]["result"]["finish_reason"] == "length"
    assert done["requests"][3]["error"]["code"] == "validation_error"
    assert done["request_counts"] == {"total": 4, "completed": 3, "failed": 1, "pending": 0}


def test_a_large_batch_can_be_read_in_slices(jobs_api):
    resp = jobs_api.call("POST", "/batches", json_body={"requests": items(12, "mock::echo")})
    batch_id = resp.json()["id"]
    finished(jobs_api, batch_id)
    page = jobs_api.call("GET", f"/batches/{batch_id}?offset=5&limit=4").json()
    assert [r["custom_id"] for r in page["requests"]] == ["q-5", "q-6", "q-7", "q-8"]
    assert page["requests"][0]["result"]["content"][0]["text"] == "You said: question 5"
    assert page["slice"] == {"offset": 5, "limit": 4, "total": 12}
    assert page["request_counts"] == {"total": 12, "completed": 12, "failed": 0, "pending": 0}
    tail = jobs_api.call("GET", f"/batches/{batch_id}?offset=10&limit=50").json()
    assert [r["custom_id"] for r in tail["requests"]] == ["q-10", "q-11"]
    assert jobs_api.call("GET", f"/batches/{batch_id}?offset=12").json()["code"] == "validation_error"
    assert jobs_api.call("GET", f"/batches/{batch_id}?limit=0").status == 400


# ---------------------------------------------------------------- provider faults


def test_provider_batch_that_expires_keeps_what_ran_and_fails_the_rest(jobs_api, use_catalog):
    with FakeOpenAIBatch(batch=BatchScript(polls_to_finish=1, outcome="expired", done_before_expiry=12)) as fake:
        provider, models = fake.catalog()
        use_catalog([provider], models)
        resp = jobs_api.call("POST", "/batches", json_body={"requests": items(20, models[0]["id"])})
        done = finished(jobs_api, resp.json()["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "batch_expired"
    assert [("result" in r) for r in done["requests"]] == [True] * 12 + [False] * 8
    assert {r["error"]["code"] for r in done["requests"][12:]} == {"batch_expired"}
    assert done["request_counts"] == {"total": 20, "completed": 12, "failed": 8, "pending": 0}
    assert_batch_contract(done)


def test_anthropic_batch_that_expires(jobs_api, use_catalog):
    with FakeAnthropicBatch(batch=MessageBatchScript(polls_to_finish=1, outcome="expired", done_before_expiry=5)) as fake:
        provider, models = fake.catalog()
        use_catalog([provider], models)
        resp = jobs_api.call("POST", "/batches", json_body={"requests": items(8, models[0]["id"])})
        done = finished(jobs_api, resp.json()["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "batch_expired"
    assert sum("result" in r for r in done["requests"]) == 5
    assert {r["error"]["code"] for r in done["requests"] if "error" in r} == {"batch_expired"}


@pytest.mark.parametrize("fake_cls", [FakeOpenAIBatch, FakeAnthropicBatch])
def test_provider_batch_that_partly_fails_completes_with_per_request_errors(jobs_api, use_catalog, fake_cls):
    script = (BatchScript if fake_cls is FakeOpenAIBatch else MessageBatchScript)(polls_to_finish=1, fail_custom_ids={"r3", "r7"})
    with fake_cls(batch=script) as fake:
        provider, models = fake.catalog()
        use_catalog([provider], models)
        resp = jobs_api.call("POST", "/batches", json_body={"requests": items(10, models[0]["id"])})
        done = finished(jobs_api, resp.json()["id"])
    assert done["status"] == "completed"
    assert done["request_counts"] == {"total": 10, "completed": 8, "failed": 2, "pending": 0}
    for i in (3, 7):
        err = done["requests"][i]["error"]
        assert err["code"] == "provider_error" and "too long" in err["message"]
    assert done["requests"][4]["result"]["content"][0]["text"] == "Batch answer to: question 4"
    assert_batch_contract(done)


def test_provider_that_rejects_the_whole_batch_fails_it(jobs_api, use_catalog):
    with FakeOpenAIBatch(batch=BatchScript(fail_file=True)) as fake:
        provider, models = fake.catalog()
        use_catalog([provider], models)
        resp = jobs_api.call("POST", "/batches", json_body={"requests": items(3, models[0]["id"])})
        done = finished(jobs_api, resp.json()["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "provider_error"
    assert all(r["error"]["code"] == "provider_error" for r in done["requests"])


def test_provider_unreachable_at_submit_fails_the_batch(jobs_api, use_catalog):
    fake = FakeOpenAIBatch().start()
    provider, models = fake.catalog()
    fake.stop()
    use_catalog([provider], models)
    resp = jobs_api.call("POST", "/batches", json_body={"requests": items(2, models[0]["id"])})
    done = finished(jobs_api, resp.json()["id"])
    assert done["status"] == "failed" and done["error"]["code"] in ("provider_error", "provider_timeout")


# ---------------------------------------------------------------- cancel


def test_cancel_an_openai_batch_keeps_finished_results_and_cancels_the_rest(jobs_api, use_catalog):
    with FakeOpenAIBatch(batch=BatchScript(polls_to_finish=50)) as fake:
        provider, models = fake.catalog()
        use_catalog([provider], models)
        resp = jobs_api.call("POST", "/batches", json_body={"requests": items(20, models[0]["id"])})
        batch_id = resp.json()["id"]
        wait_for(lambda: get_batch(jobs_api, batch_id).json(), lambda b: b["request_counts"]["completed"] > 0)
        cancel = jobs_api.call("POST", f"/batches/{batch_id}/cancel")
        assert cancel.status == 200 and cancel.json()["status"] == "cancelled"
        assert len(fake.cancels) == 1
        done = finished(jobs_api, batch_id)
    assert done["status"] == "cancelled"
    ran = [r for r in done["requests"] if "result" in r]
    assert 0 < len(ran) < 20
    assert {r["error"]["code"] for r in done["requests"] if "error" in r} == {"cancelled"}
    again = jobs_api.call("POST", f"/batches/{batch_id}/cancel")
    assert again.status == 409 and again.json()["code"] == "conflict"


def test_cancel_an_anthropic_batch(jobs_api, use_catalog):
    with FakeAnthropicBatch(batch=MessageBatchScript(polls_to_finish=50)) as fake:
        provider, models = fake.catalog()
        use_catalog([provider], models)
        resp = jobs_api.call("POST", "/batches", json_body={"requests": items(10, models[0]["id"])})
        batch_id = resp.json()["id"]
        wait_for(lambda: get_batch(jobs_api, batch_id).json(), lambda b: b["request_counts"]["completed"] > 0)
        assert jobs_api.call("DELETE", f"/batches/{batch_id}").json()["status"] == "cancelled"
        done = finished(jobs_api, batch_id)
        assert len(fake.cancels) == 1
    assert done["status"] == "cancelled"
    assert any("result" in r for r in done["requests"])
    assert {r["error"]["code"] for r in done["requests"] if "error" in r} == {"cancelled"}


def test_cancel_a_gateway_run_batch_stops_the_execution(jobs_api, use_catalog, monkeypatch):
    monkeypatch.setenv("LLMGW_BATCH_CHUNK_SIZE", "2")
    monkeypatch.setenv("LLMGW_BATCH_MAX_CONCURRENCY", "1")
    use_catalog([{"id": "mock", "kind": "mock", "base_url": None, "credential": None}],
                [{"id": "mock::paced", "capabilities": ["chat"], "options": {"latency_ms": 300}}])
    resp = jobs_api.call("POST", "/batches", json_body={"requests": items(12, "mock::paced")})
    batch_id = resp.json()["id"]
    wait_for(lambda: get_batch(jobs_api, batch_id).json(), lambda b: any("result" in r for r in b["requests"]))
    cancelled = jobs_api.call("POST", f"/batches/{batch_id}/cancel").json()
    assert cancelled["status"] == "cancelled"
    wait_for(lambda: execution_status(batch_id), lambda s: s != "RUNNING", timeout=10)
    time.sleep(0.8)
    done = get_batch(jobs_api, batch_id).json()
    assert done["status"] == "cancelled"
    ran = sum("result" in r for r in done["requests"])
    assert 0 < ran < 12
    assert {r["error"]["code"] for r in done["requests"] if "error" in r} == {"cancelled"}


# ---------------------------------------------------------------- bad input


def test_empty_batch_is_a_validation_error(jobs_api):
    resp = jobs_api.call("POST", "/batches", json_body={"requests": []})
    assert resp.status == 400 and resp.json()["code"] == "validation_error"
    assert resp.json()["errors"][0]["path"] == "requests"


def test_duplicate_custom_ids_are_each_reported(jobs_api):
    reqs = items(4, "mock::echo")
    reqs[2]["custom_id"] = "q-0"
    reqs[3]["custom_id"] = "q-1"
    resp = jobs_api.call("POST", "/batches", json_body={"requests": reqs})
    assert resp.status == 400 and resp.json()["code"] == "validation_error"
    assert [e["path"] for e in resp.json()["errors"]] == ["requests[2].custom_id", "requests[3].custom_id"]


def test_a_bad_request_inside_a_batch_is_reported_with_its_path(jobs_api):
    reqs = items(3, "mock::echo")
    reqs[1]["request"]["messages"][0]["content"][0]["type"] = "txt"
    resp = jobs_api.call("POST", "/batches", json_body={"requests": reqs})
    assert resp.status == 400 and resp.json()["errors"][0]["path"].startswith("requests[1].request.messages[0]")
    reqs = items(3, "mock::echo")
    reqs[2]["request"]["model"] = "nope::missing"
    resp = jobs_api.call("POST", "/batches", json_body={"requests": reqs})
    assert resp.status == 404 and resp.json()["code"] == "model_not_found"
    assert resp.json()["errors"][0]["path"] == "requests[2].request.model"
    reqs = items(2, "mock::echo")
    reqs[0]["request"]["stream"] = True
    assert jobs_api.call("POST", "/batches", json_body={"requests": reqs}).json()["errors"][0]["path"] == "requests[0].request.stream"


def test_over_the_gateway_and_provider_limits(jobs_api, use_catalog, monkeypatch):
    monkeypatch.setenv("LLMGW_BATCH_MAX_REQUESTS", "10")
    from llm_gateway.config import reset_settings

    reset_settings()
    resp = jobs_api.call("POST", "/batches", json_body={"requests": items(11, "mock::echo")})
    assert resp.status == 400 and "at most 10" in resp.json()["detail"]
    with FakeOpenAIBatch() as fake:
        provider, models = fake.catalog(provider_options={"batch_max_requests": 5})
        use_catalog([provider], models)
        resp = jobs_api.call("POST", "/batches", json_body={"requests": items(6, models[0]["id"])})
        assert resp.status == 400 and resp.json()["code"] == "validation_error"
        assert "provider 'openai' takes at most 5" in resp.json()["detail"]
        assert fake.requests == []


def test_backend_provider_on_a_provider_without_batch_api(jobs_api):
    resp = jobs_api.call("POST", "/batches", json_body={"requests": items(2, "mock::echo"), "backend": "provider"})
    assert resp.status == 422 and resp.json()["code"] == "capability_not_supported"


def test_unknown_foreign_and_expired_batch_ids(jobs_api, monkeypatch):
    from llm_gateway.jobs import ids

    for bad in ("batch_nope", ids.mint("batch", DEV_TENANT, time.time() + 600), ids.mint("job", DEV_TENANT, time.time() + 600)):
        resp = get_batch(jobs_api, bad)
        assert resp.status == 404 and resp.json()["code"] == "batch_not_found", bad
    resp = jobs_api.call("POST", "/batches", json_body={"requests": items(2, "mock::echo")})
    batch_id = resp.json()["id"]
    finished(jobs_api, batch_id)
    other = other_tenant_key()
    for method, path in (("GET", f"/batches/{batch_id}"), ("POST", f"/batches/{batch_id}/cancel")):
        foreign = jobs_api.call(method, path, key=other)
        assert foreign.status == 404 and foreign.json()["code"] == "batch_not_found"
    stale = ids.mint("batch", DEV_TENANT, time.time() - 1)
    assert get_batch(jobs_api, stale).json()["code"] == "batch_expired"


def test_a_batch_expires_after_its_ttl(jobs_api, monkeypatch):
    monkeypatch.setenv("LLMGW_BATCH_TTL_HOURS", str(6 / 3600))
    from llm_gateway.config import reset_settings

    reset_settings()
    resp = jobs_api.call("POST", "/batches", json_body={"requests": items(2, "mock::echo")})
    batch_id = resp.json()["id"]
    assert finished(jobs_api, batch_id)["status"] == "completed"
    from llm_gateway.jobs import ids

    time.sleep(max(0.0, ids.parse("batch", batch_id, DEV_TENANT).expires_at - time.time() + 0.1))
    gone = get_batch(jobs_api, batch_id)
    assert gone.status == 410 and gone.json()["code"] == "batch_expired"


def test_a_batch_worker_crash_fails_the_batch(jobs_api, monkeypatch):
    from llm_gateway.jobs.batchrunner import BatchRunner

    def crash(self, batch_id):
        raise RuntimeError("worker died")

    monkeypatch.setattr(BatchRunner, "start", crash)
    resp = jobs_api.call("POST", "/batches", json_body={"requests": items(2, "mock::echo")})
    done = finished(jobs_api, resp.json()["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "internal_error"
    assert {r["error"]["code"] for r in done["requests"]} == {"internal_error"}
