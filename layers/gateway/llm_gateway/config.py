"""Settings from the environment, read once per process (tests call `reset_settings()`).

Every name is documented in the README's Configuration table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True, slots=True)
class Settings:
    keys_table: str
    tenants_table: str
    usage_table: str
    types_table: str
    types_cache_ttl_s: float
    files_bucket: str
    aws_endpoint_url: str | None
    region: str
    max_body_bytes: int
    auth_cache_ttl_s: float
    usage_ttl_days: int
    local_mode: bool
    # async jobs and batches (README: "Jobs and batches")
    jobs_table: str = "llmgw-jobs"
    batches_table: str = "llmgw-batches"
    job_state_machine_arn: str | None = None
    job_state_machine_name: str = "llmgw-work"
    workflow_function: str = "llmgw-workflow"
    job_ttl_hours: float = 24.0
    batch_ttl_hours: float = 168.0
    job_max_run_s: int = 3600
    batch_max_run_s: int = 26 * 3600
    job_poll_initial_s: int = 2
    job_poll_max_s: int = 30
    batch_poll_initial_s: int = 15
    batch_poll_max_s: int = 300
    job_max_retries: int = 3
    sync_poll_limit_s: float = 25.0
    sync_poll_interval_s: float = 1.0
    job_inline_bytes: int = 64 * 1024
    job_result_url_bytes: int = 1024 * 1024
    batch_max_requests: int = 1000
    batch_chunk_size: int = 10
    batch_max_concurrency: int = 4
    batch_item_concurrency: int = 4
    # governance (README: "Governance")
    counters_table: str = "llmgw-counters"
    event_bus: str = "llmgw-audit"
    audit_events: bool = True
    governance: bool = True
    tenant_cache_ttl_s: float = 30.0
    unknown_tenant: str = "deny"  # deny | allow
    jwt_tenant_claim: str = "tenant_id"
    jwt_user_claim: str = "sub"
    jwt_scopes_claim: str = "scope"
    hook_timeout_ms: int = 1000
    rate_lease_s: float = 1.0  # 0 = every request makes its own conditional update
    budget_fresh_s: float = 1.0  # 0 = every request reads the budgets strongly consistent
    budget_cache_below: float = 0.8  # the cached view is used only while spend < this share of the limit
    # realtime sessions over the WebSocket API (README: "Realtime")
    sessions_table: str = "llmgw-sessions"
    realtime_worker: str = "lambda"  # lambda (async invoke of the worker function) | thread (local mode)
    realtime_worker_function: str = "llmgw-realtime-worker"
    realtime_idle_s: int = 600
    realtime_max_s: int = 7200
    realtime_max_message_bytes: int = 128 * 1024
    realtime_max_turn_audio_bytes: int = 5 * 1024 * 1024
    realtime_turn_timeout_s: int = 300
    realtime_history_chars: int = 16000
    connections_endpoint_url: str | None = None  # local mode: where `@connections` is served


@lru_cache(maxsize=1)
def settings() -> Settings:
    env = os.environ.get
    return Settings(
        keys_table=env("LLMGW_KEYS_TABLE", "llmgw-api-keys"),
        tenants_table=env("LLMGW_TENANTS_TABLE", "llmgw-tenants"),
        usage_table=env("LLMGW_USAGE_TABLE", "llmgw-usage"),
        types_table=env("LLMGW_TYPES_TABLE", "llmgw-types"),
        types_cache_ttl_s=float(env("LLMGW_TYPES_CACHE_TTL_S", "300")),
        files_bucket=env("LLMGW_FILES_BUCKET", "llmgw-files"),
        aws_endpoint_url=env("LLMGW_AWS_ENDPOINT_URL") or None,
        region=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or "us-east-1",
        max_body_bytes=int(env("LLMGW_MAX_BODY_BYTES", str(4 * 1024 * 1024))),
        auth_cache_ttl_s=float(env("LLMGW_AUTH_CACHE_TTL_S", "30")),
        usage_ttl_days=int(env("LLMGW_USAGE_TTL_DAYS", "400")),
        local_mode=env("LLMGW_LOCAL", "") == "1",
        jobs_table=env("LLMGW_JOBS_TABLE", "llmgw-jobs"),
        batches_table=env("LLMGW_BATCHES_TABLE", "llmgw-batches"),
        job_state_machine_arn=env("LLMGW_JOB_STATE_MACHINE_ARN") or None,
        job_state_machine_name=env("LLMGW_JOB_STATE_MACHINE_NAME", "llmgw-work"),
        workflow_function=env("LLMGW_WORKFLOW_FUNCTION", "llmgw-workflow"),
        job_ttl_hours=float(env("LLMGW_JOB_TTL_HOURS", "24")),
        batch_ttl_hours=float(env("LLMGW_BATCH_TTL_HOURS", "168")),
        job_max_run_s=int(env("LLMGW_JOB_MAX_RUN_S", "3600")),
        batch_max_run_s=int(env("LLMGW_BATCH_MAX_RUN_S", str(26 * 3600))),
        job_poll_initial_s=int(env("LLMGW_JOB_POLL_INITIAL_S", "2")),
        job_poll_max_s=int(env("LLMGW_JOB_POLL_MAX_S", "30")),
        batch_poll_initial_s=int(env("LLMGW_BATCH_POLL_INITIAL_S", "15")),
        batch_poll_max_s=int(env("LLMGW_BATCH_POLL_MAX_S", "300")),
        job_max_retries=int(env("LLMGW_JOB_MAX_RETRIES", "3")),
        sync_poll_limit_s=float(env("LLMGW_SYNC_POLL_LIMIT_S", "25")),
        sync_poll_interval_s=float(env("LLMGW_SYNC_POLL_INTERVAL_S", "1")),
        job_inline_bytes=int(env("LLMGW_JOB_INLINE_BYTES", str(64 * 1024))),
        job_result_url_bytes=int(env("LLMGW_JOB_RESULT_URL_BYTES", str(1024 * 1024))),
        batch_max_requests=int(env("LLMGW_BATCH_MAX_REQUESTS", "1000")),
        batch_chunk_size=int(env("LLMGW_BATCH_CHUNK_SIZE", "10")),
        batch_max_concurrency=int(env("LLMGW_BATCH_MAX_CONCURRENCY", "4")),
        batch_item_concurrency=int(env("LLMGW_BATCH_ITEM_CONCURRENCY", "4")),
        counters_table=env("LLMGW_COUNTERS_TABLE", "llmgw-counters"),
        event_bus=env("LLMGW_EVENT_BUS", "llmgw-audit"),
        audit_events=env("LLMGW_AUDIT_EVENTS", "1") not in ("0", "false", "off"),
        governance=env("LLMGW_GOVERNANCE", "on") not in ("0", "false", "off"),
        tenant_cache_ttl_s=float(env("LLMGW_TENANT_CACHE_TTL_S", "30")),
        unknown_tenant=env("LLMGW_UNKNOWN_TENANT") or ("allow" if env("LLMGW_LOCAL", "") == "1" else "deny"),
        jwt_tenant_claim=env("LLMGW_JWT_TENANT_CLAIM", "tenant_id"),
        jwt_user_claim=env("LLMGW_JWT_USER_CLAIM", "sub"),
        jwt_scopes_claim=env("LLMGW_JWT_SCOPES_CLAIM", "scope"),
        hook_timeout_ms=int(env("LLMGW_HOOK_TIMEOUT_MS", "1000")),
        rate_lease_s=float(env("LLMGW_RATE_LEASE_S", "1")),
        budget_fresh_s=float(env("LLMGW_BUDGET_FRESH_S", "1")),
        budget_cache_below=float(env("LLMGW_BUDGET_CACHE_BELOW", "0.8")),
        sessions_table=env("LLMGW_SESSIONS_TABLE", "llmgw-sessions"),
        realtime_worker=env("LLMGW_REALTIME_WORKER") or ("thread" if env("LLMGW_LOCAL", "") == "1" else "lambda"),
        realtime_worker_function=env("LLMGW_REALTIME_WORKER_FUNCTION", "llmgw-realtime-worker"),
        realtime_idle_s=int(env("LLMGW_REALTIME_IDLE_S", "600")),
        realtime_max_s=int(env("LLMGW_REALTIME_MAX_S", "7200")),
        realtime_max_message_bytes=int(env("LLMGW_REALTIME_MAX_MESSAGE_BYTES", str(128 * 1024))),
        realtime_max_turn_audio_bytes=int(env("LLMGW_REALTIME_MAX_TURN_AUDIO_BYTES", str(5 * 1024 * 1024))),
        realtime_turn_timeout_s=int(env("LLMGW_REALTIME_TURN_TIMEOUT_S", "300")),
        realtime_history_chars=int(env("LLMGW_REALTIME_HISTORY_CHARS", "16000")),
        connections_endpoint_url=env("LLMGW_CONNECTIONS_ENDPOINT_URL") or None,
    )


def reset_settings() -> None:
    settings.cache_clear()
