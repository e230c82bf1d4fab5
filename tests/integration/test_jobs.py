"""Async jobs through the real handlers, with the state machine executing (moto) and its Lambda
tasks running the real `functions/workflow` handler: `POST /jobs`, `"async": true`, sync
requests to a long-running (video) model, cancel, expiry, tenant isolation, worker crashes."""

from __future__ import annotations

import json
import time

import pytest

from tests.conftest import DEV_TENANT, user
from tests.contract.schema_check import assert_valid, validator
from tests.fakes.openai import FakeOpenAI
from tests.fakes.script import Script
from tests.fakes.server import Reply
from tests.jobs_support import execution_status, jobs_api, other_tenant_key, wait_for  # noqa: F401

JOB_EXTENSIONS = {"result_url", "result_url_expires_at"}


def assert_job_contract(body: dict) -> None:
    """The Job against job.v1 (documented extensions removed; request and result checked by
    their own schemas, the result's extensions stripped by schema_check)."""
    core = {k: v for k, v in body.items() if k not in JOB_EXTENSIONS and k not in ("request", "result")}
    core["request"] = {"model": "x", "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}]}
    errs = [e.message for e in validator("job").iter_errors(core)]
    assert not errs, errs
    if "result" in body:
        assert_valid("response", body["result"])


def get_job(api, job_id: str, **kw):
    return api.call("GET", f"/jobs/{job_id}", **kw)


def finished(api, job_id: str, timeout: float = 20.0) -> dict:
    resp = wait_for(lambda: get_job(api, job_id), lambda r: r.json().get("status") in ("completed", "failed", "cancelled"),
                    timeout=timeout)
    return resp.json()


def video_catalog(use_catalog, generation_s: float = 0.2) -> None:
    use_catalog(
        [{"id": "mock", "kind": "mock", "base_url": None, "credential": None}],
        [
            {"id": "mock::echo", "capabilities": ["chat", "stream"], "pricing": {"input_per_mtok": 0.1, "output_per_mtok": 0.4}},
            {"id": "mock::slow", "capabilities": ["chat", "stream"], "options": {"latency_ms": 2500},
             "pricing": {"input_per_mtok": 0.1, "output_per_mtok": 0.4}},
            {"id": "mock::video-gen", "capabilities": ["chat", "video_generation"], "options": {"generation_s": generation_s},
             "pricing": {"per_second": 0.05}},
        ],
    )


# ---------------------------------------------------------------- the happy paths


def test_async_chat_request_returns_202_and_the_job_completes_with_the_response(jobs_api):
    resp = jobs_api.chat({"model": "mock::echo", "async": True, "messages": [user("hello, job")]})
    assert resp.status == 202, resp.body
    job = resp.json()
    assert job["status"] == "pending" and job["id"].startswith("job_")
    assert resp.headers["location"] == f"/jobs/{job['id']}"
    assert job["request"]["messages"][0]["content"][0]["text"] == "hello, job"
    assert job["created_at"] < job["expires_at"]
    assert_job_contract(job)

    done = finished(jobs_api, job["id"])
    assert done["status"] == "completed", done
    assert done["result"]["content"] == [{"type": "text", "text": "You said: hello, job"}]
    assert done["result"]["usage"]["input_tokens"] > 0 and done["result"]["usage"]["cost_estimate"] > 0
    assert "error" not in done
    assert_job_contract(done)
    assert wait_for(lambda: execution_status(job["id"]), lambda s: s != "RUNNING", timeout=5) == "SUCCEEDED"

    from llm_gateway.stores.usage import UsageStore

    records = [r for r in UsageStore().list_for_tenant(DEV_TENANT) if r.get("job_id") == job["id"]]
    assert len(records) == 1 and records[0]["route"] == "jobs" and records[0]["outcome"] == "ok"


def test_post_jobs_takes_a_contract_request(jobs_api):
    resp = jobs_api.call("POST", "/jobs", json_body={"model": "mock", "messages": [user("via /jobs")]})
    assert resp.status == 202, resp.body
    done = finished(jobs_api, resp.json()["id"])
    assert done["status"] == "completed"
    assert done["result"]["content"][0]["text"] == "You said: via /jobs"
    assert done["result"]["model_used"] == "mock::echo"


def test_job_with_a_provider_failure_fails_with_its_error(jobs_api, use_catalog):
    with FakeOpenAI(Script(error="bad_request")) as fake:
        provider, models = fake.catalog()
        use_catalog([provider], models)
        resp = jobs_api.call("POST", "/jobs", json_body={"model": models[0]["id"], "messages": [user("hi")]})
        assert resp.status == 202
        done = finished(jobs_api, resp.json()["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "provider_error" and "frobnicate" in done["error"]["message"]
    assert "result" not in done
    assert_job_contract(done)


def test_rate_limited_provider_is_retried_by_the_workflow(jobs_api, use_catalog):
    with FakeOpenAI(Script(text="after the retry")) as fake:
        provider, models = fake.catalog()
        use_catalog([provider], models)
        status, body = __import__("tests.fakes.openai", fromlist=["error_body"]).error_body("rate_limit")
        fake.enqueue("POST", "/v1/chat/completions", Reply(status, json=body, headers={"retry-after": "1"}))
        resp = jobs_api.call("POST", "/jobs", json_body={"model": models[0]["id"], "messages": [user("hi")]})
        done = finished(jobs_api, resp.json()["id"])
        assert len(fake.calls) == 2
    assert done["status"] == "completed", done
    assert done["result"]["content"][0]["text"] == "after the retry"


# ---------------------------------------------------------------- long-running (video) models


def test_sync_request_to_a_video_model_finishing_in_time_answers_200(jobs_api, use_catalog):
    video_catalog(use_catalog, generation_s=0.2)
    resp = jobs_api.chat({"model": "mock::video-gen", "messages": [user("a cat surfing")], "media": {"duration": 6}})
    assert resp.status == 200, resp.body
    body = resp.json()
    assert_valid("response", body)
    part = body["content"][0]
    assert part["type"] == "video" and part["url"].startswith("http")  # a presigned URL
    assert body["usage"]["cost_estimate"] == pytest.approx(0.3)  # 6 s at 0.05 per second
    job_id = resp.headers["x-llmgw-job-id"]
    job = get_job(jobs_api, job_id).json()
    assert job["status"] == "completed" and job["result"]["content"][0]["type"] == "video"
    from llm_gateway.config import settings
    from llm_gateway.stores.aws import client

    keys = [o["Key"] for o in client("s3").list_objects_v2(Bucket=settings().files_bucket, Prefix=f"generated/{DEV_TENANT}/").get("Contents", [])]
    assert len(keys) == 1 and keys[0].endswith(".mp4")
    assert client("s3").get_object(Bucket=settings().files_bucket, Key=keys[0])["Body"].read()[4:8] == b"ftyp"


def test_sync_request_to_a_slow_video_model_answers_202_and_the_workflow_finishes_it(jobs_api, use_catalog, monkeypatch):
    monkeypatch.setenv("LLMGW_SYNC_POLL_LIMIT_S", "0.3")
    video_catalog(use_catalog, generation_s=1.5)
    resp = jobs_api.chat({"model": "mock::video-gen", "messages": [user("a slow sunset")]})
    assert resp.status == 202, resp.body
    job = resp.json()
    assert job["status"] == "running"
    assert_job_contract(job)
    done = finished(jobs_api, job["id"])
    assert done["status"] == "completed", done
    assert done["result"]["content"][0]["type"] == "video"
    assert done["result"]["content"][0]["url"].startswith("http")
    assert_job_contract(done)
    assert wait_for(lambda: execution_status(job["id"]), lambda s: s != "RUNNING", timeout=5) == "SUCCEEDED"


def test_async_video_job_polls_the_provider_until_done(jobs_api, use_catalog):
    # generation outlasts the first poll (1 s after the start step) by a margin a loaded machine keeps
    video_catalog(use_catalog, generation_s=2.5)
    resp = jobs_api.call("POST", "/jobs", json_body={"model": "mock::video-gen", "messages": [user("waves")]})
    assert resp.status == 202
    running = wait_for(lambda: get_job(jobs_api, resp.json()["id"]).json(), lambda j: j["status"] != "pending")
    assert running["status"] in ("running", "completed")
    done = finished(jobs_api, resp.json()["id"])
    assert done["status"] == "completed" and done["result"]["content"][0]["type"] == "video"
    from llm_gateway.stores.jobs import JobStore

    # the workflow polled: at least one "not yet" poll was stored before the one that finished
    assert json.loads(JobStore().get(resp.json()["id"])["handle"])["polls"] >= 1


def test_video_costs_count_against_the_tenant_budget_on_both_paths(jobs_api, use_catalog, monkeypatch):
    from llm_gateway.stores.budgets import BudgetStore, budget_key, period_window

    key = budget_key(DEV_TENANT, period_window("monthly", time.time())[0])

    def spent() -> float:
        return BudgetStore().spent([key]).get(key, 0.0)

    video_catalog(use_catalog, generation_s=1.2)
    before = spent()
    job = jobs_api.call("POST", "/jobs", json_body={"model": "mock::video-gen", "messages": [user("a")], "media": {"duration": 4}})
    done = finished(jobs_api, job.json()["id"])  # polled by the workflow: charged when it finished
    assert spent() - before == pytest.approx(done["result"]["usage"]["cost_estimate"]) and done["result"]["usage"]["cost_estimate"] > 0
    video_catalog(use_catalog, generation_s=0.1)
    before = spent()
    sync = jobs_api.chat({"model": "mock::video-gen", "messages": [user("b")], "media": {"duration": 2}})
    assert sync.status == 200
    assert spent() - before == pytest.approx(sync.json()["usage"]["cost_estimate"])


# ---------------------------------------------------------------- cancel


def test_a_running_job_is_cancelled_and_stays_cancelled(jobs_api, use_catalog):
    video_catalog(use_catalog)
    resp = jobs_api.call("POST", "/jobs", json_body={"model": "mock::slow", "messages": [user("take your time")]})
    job_id = resp.json()["id"]
    wait_for(lambda: get_job(jobs_api, job_id).json(), lambda j: j["status"] == "running")
    cancel = jobs_api.call("DELETE", f"/jobs/{job_id}")
    assert cancel.status == 200, cancel.body
    assert cancel.json()["status"] == "cancelled"
    assert cancel.json()["error"]["code"] == "cancelled"
    assert_job_contract(cancel.json())
    time.sleep(3.0)  # the worker's provider call (2.5 s) ends meanwhile: its result is dropped
    later = get_job(jobs_api, job_id).json()
    assert later["status"] == "cancelled" and "result" not in later
    wait_for(lambda: execution_status(job_id), lambda s: s != "RUNNING", timeout=15)  # stopped (once its task returned)
    again = jobs_api.call("DELETE", f"/jobs/{job_id}")
    assert again.status == 409 and again.json()["code"] == "conflict"


def test_cancelling_a_video_job_cancels_the_provider_task(jobs_api, use_catalog, monkeypatch):
    video_catalog(use_catalog, generation_s=30)
    from llm_gateway.providers.mock import MockAdapter

    cancelled = []
    monkeypatch.setattr(MockAdapter, "cancel_async", lambda self, call, handle: cancelled.append(handle["task_id"]))
    resp = jobs_api.call("POST", "/jobs", json_body={"model": "mock::video-gen", "messages": [user("long film")]})
    job_id = resp.json()["id"]
    wait_for(lambda: get_job(jobs_api, job_id).json(), lambda j: j["status"] == "running")
    from llm_gateway.stores.jobs import JobStore

    wait_for(lambda: JobStore().get(job_id), lambda item: bool(item.get("handle")))
    assert jobs_api.call("DELETE", f"/jobs/{job_id}").json()["status"] == "cancelled"
    assert len(cancelled) == 1 and cancelled[0].startswith("mockvid_")
    wait_for(lambda: execution_status(job_id), lambda s: s != "RUNNING", timeout=10)


def test_cancelling_a_completed_job_is_a_conflict(jobs_api):
    resp = jobs_api.call("POST", "/jobs", json_body={"model": "mock::echo", "messages": [user("quick")]})
    job_id = resp.json()["id"]
    assert finished(jobs_api, job_id)["status"] == "completed"
    conflict = jobs_api.call("DELETE", f"/jobs/{job_id}")
    assert conflict.status == 409
    assert conflict.json()["code"] == "conflict" and "completed" in conflict.json()["detail"]
    assert get_job(jobs_api, job_id).json()["status"] == "completed"


# ---------------------------------------------------------------- expiry, unknown and foreign ids


def test_a_job_expires_after_its_ttl_even_though_the_row_is_still_there(jobs_api, monkeypatch):
    monkeypatch.setenv("LLMGW_JOB_TTL_HOURS", str(6 / 3600))
    from llm_gateway.config import reset_settings

    reset_settings()
    resp = jobs_api.call("POST", "/jobs", json_body={"model": "mock::echo", "messages": [user("short-lived")]})
    job_id = resp.json()["id"]
    assert finished(jobs_api, job_id)["status"] == "completed"
    from llm_gateway.jobs import ids

    time.sleep(max(0.0, ids.parse("job", job_id, DEV_TENANT).expires_at - time.time() + 0.1))
    from llm_gateway.stores.jobs import JobStore

    assert JobStore().get(job_id) is not None  # moto never applies TTL (and DynamoDB lags)
    gone = get_job(jobs_api, job_id)
    assert gone.status == 410 and gone.json()["code"] == "job_expired"
    assert jobs_api.call("DELETE", f"/jobs/{job_id}").json()["code"] == "job_expired"


def test_an_expired_id_whose_row_was_deleted_is_still_job_expired(jobs_api):
    from llm_gateway.jobs import ids

    stale = ids.mint("job", DEV_TENANT, time.time() - 60)
    resp = get_job(jobs_api, stale)
    assert resp.status == 410 and resp.json()["code"] == "job_expired"


def test_unknown_and_malformed_ids_are_job_not_found(jobs_api):
    from llm_gateway.jobs import ids

    never_stored = ids.mint("job", DEV_TENANT, time.time() + 3600)
    for job_id in ("job_nope", "anything", never_stored, "batch_" + never_stored[4:]):
        resp = get_job(jobs_api, job_id)
        assert resp.status == 404 and resp.json()["code"] == "job_not_found", (job_id, resp.body)


def test_another_tenants_job_is_not_found_not_forbidden(jobs_api):
    resp = jobs_api.call("POST", "/jobs", json_body={"model": "mock::echo", "messages": [user("mine")]})
    job_id = resp.json()["id"]
    finished(jobs_api, job_id)
    other = other_tenant_key()
    for method in ("GET", "DELETE"):
        foreign = jobs_api.call(method, f"/jobs/{job_id}", key=other)
        assert foreign.status == 404 and foreign.json()["code"] == "job_not_found"
    assert get_job(jobs_api, job_id).json()["status"] == "completed"


# ---------------------------------------------------------------- faults: the job never stays running


def test_a_worker_crash_marks_the_job_failed(jobs_api, monkeypatch):
    from llm_gateway.jobs.jobrunner import JobRunner

    def crash(self, item, attempt):
        raise RuntimeError("worker died")

    monkeypatch.setattr(JobRunner, "_run", crash)
    resp = jobs_api.call("POST", "/jobs", json_body={"model": "mock::echo", "messages": [user("boom")]})
    done = finished(jobs_api, resp.json()["id"])
    assert done["status"] == "failed"
    assert done["error"]["code"] == "internal_error" and "RuntimeError" in done["error"]["message"]
    assert wait_for(lambda: execution_status(resp.json()["id"]), lambda s: s != "RUNNING", timeout=5) == "FAILED"


def test_a_job_past_its_deadline_is_failed_on_read(jobs_api, use_catalog, monkeypatch):
    video_catalog(use_catalog)
    from llm_gateway.jobs.jobrunner import JobRunner

    monkeypatch.setattr(JobRunner, "fail", lambda self, job_id, error: {"next": "done", "wait_s": 0, "attempt": 0,
                                                                         "chunks": [], "max_concurrency": 1})
    monkeypatch.setenv("LLMGW_JOB_MAX_RUN_S", "1")
    from llm_gateway.config import reset_settings

    reset_settings()
    resp = jobs_api.call("POST", "/jobs", json_body={"model": "mock::slow", "messages": [user("too slow")]})
    job_id = resp.json()["id"]
    time.sleep(1.2)
    late = get_job(jobs_api, job_id).json()
    assert late["status"] == "failed" and late["error"]["code"] == "job_timeout"
    time.sleep(2.0)  # the worker finishes later: its result is dropped
    assert get_job(jobs_api, job_id).json()["status"] == "failed"


def test_the_worker_waits_when_it_starts_before_the_jobs_write_lands(jobs_api, monkeypatch):
    from llm_gateway.stores.jobs import JobStore

    original = JobStore.create

    def slow_create(self, item):
        time.sleep(1.5)  # the execution starts (side by side) and finds no job yet
        original(self, item)

    monkeypatch.setattr(JobStore, "create", slow_create)
    resp = jobs_api.call("POST", "/jobs", json_body={"model": "mock::echo", "messages": [user("race")]})
    assert resp.status == 202
    assert finished(jobs_api, resp.json()["id"])["status"] == "completed"


def test_a_job_that_cannot_be_stored_is_an_error_and_runs_nothing(jobs_api, monkeypatch):
    from llm_gateway.stores.jobs import JobStore

    def broken(self, item):
        raise RuntimeError("DynamoDB is down")

    monkeypatch.setattr(JobStore, "create", broken)
    resp = jobs_api.call("POST", "/jobs", json_body={"model": "mock::echo", "messages": [user("lost")]})
    assert resp.status == 500 and resp.json()["code"] == "internal_error"
    from llm_gateway.stores.aws import client
    from llm_gateway.stores.workflows import state_machine_arn

    executions = client("stepfunctions").list_executions(stateMachineArn=state_machine_arn())["executions"]
    assert len(executions) == 1  # started side by side with the failed write, then stopped
    assert wait_for(lambda: execution_status(executions[0]["name"]), lambda s: s != "RUNNING", timeout=20) != "SUCCEEDED"
    from llm_gateway.config import settings
    from llm_gateway.stores.usage import UsageStore

    assert client("dynamodb").scan(TableName=settings().jobs_table)["Count"] == 0
    assert UsageStore().list_for_tenant(DEV_TENANT) == []  # no model was called


# ---------------------------------------------------------------- results in S3


def test_large_results_are_kept_in_s3_and_returned_inline_or_by_url(jobs_api, monkeypatch):
    monkeypatch.setenv("LLMGW_JOB_INLINE_BYTES", "100")
    from llm_gateway.config import reset_settings

    reset_settings()
    text = "word " * 200
    resp = jobs_api.call("POST", "/jobs", json_body={"model": "mock::echo", "messages": [user(text)]})
    job_id = resp.json()["id"]
    done = finished(jobs_api, job_id)
    assert done["status"] == "completed" and done["result"]["content"][0]["text"].startswith("You said: word")
    from llm_gateway.stores.jobs import JobStore

    item = JobStore().get(job_id)
    assert "result" not in item and item["result_key"].startswith(f"jobs/{DEV_TENANT}/{job_id}/")
    assert "request" not in item and item["request_key"].endswith("request.json")  # the request too
    monkeypatch.setenv("LLMGW_JOB_RESULT_URL_BYTES", "200")
    reset_settings()
    by_url = get_job(jobs_api, job_id).json()
    assert "result" not in by_url and by_url["result_url"].startswith("http") and by_url["result_url_expires_at"]
    assert_job_contract(by_url)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"model": "mock::echo", "async": True, "stream": True, "messages": [user("x")]}, 400, "validation_error"),
        ({"model": "nope::nothing", "async": True, "messages": [user("x")]}, 404, "model_not_found"),
        ({"model": "mock::old", "async": True, "messages": [user("x")]}, 410, "model_deprecated"),
        ({"model": "mock::echo", "async": True, "messages": []}, 400, "validation_error"),
    ],
)
def test_bad_async_requests_are_refused_before_any_job_exists(jobs_api, payload, status, code):
    resp = jobs_api.chat(payload)
    assert resp.status == status and resp.json()["code"] == code, resp.body
    from llm_gateway.config import settings
    from llm_gateway.stores.aws import client

    assert client("dynamodb").scan(TableName=settings().jobs_table)["Count"] == 0


def test_jobs_need_credentials(jobs_api):
    assert jobs_api.call("POST", "/jobs", json_body={"model": "mock", "messages": [user("x")]}, key=None).status == 401
    assert jobs_api.call("GET", "/jobs/job_x", key=None).status == 401
