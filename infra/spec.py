"""What the stack deploys, as data: the one file later issues extend.

Pure Python (no `aws_cdk` import) so the layer build script, the events tests and the infra
tests can all read it cheaply.

- Tables come from `llm_gateway.stores.provision.TABLES` (the same list local mode provisions),
  so a table added there is deployed too, with the TTL attributes provision.py declares.
- `FUNCTIONS` lists one Lambda per operation family: its folder under `functions/`, its HTTP API
  routes, its sizing and what it may touch. Adding a family = one entry here + its folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The Lambda Python version. The layer's wheels are built for exactly this version
# (pydantic-core and rpds-py ship per-ABI binaries), so change it here only.
PYTHON_VERSION = "3.13"
# Wheels for the Lambda architecture (ARM_64 / Graviton).
PIP_PLATFORM = "manylinux2014_aarch64"

# The gateway layer: `build/layer/python/...` (see infra/build_layer.py).
LAYER_SOURCE = ROOT / "layers" / "gateway"
LAYER_REQUIREMENTS = LAYER_SOURCE / "requirements.txt"
# Deployed-only additions to the layer. Tracing is ACTIVE on AWS, and Powertools' Tracer needs
# the X-Ray SDK there (local mode gets it from the `[local]` extra instead).
LAYER_EXTRA_REQUIREMENTS: tuple[str, ...] = ("aws-xray-sdk>=2.14",)
BUILD_DIR = ROOT / "build"
LAYER_BUILD_DIR = BUILD_DIR / "layer"
FUNCTIONS_SOURCE = ROOT / "functions"
FUNCTIONS_BUILD_DIR = BUILD_DIR / "functions"

# Environment the functions share (Powertools; metadata-only logging is enforced in code).
POWERTOOLS_ENV = {
    "POWERTOOLS_SERVICE_NAME": "llm-gateway",
    "POWERTOOLS_METRICS_NAMESPACE": "LLMGateway",
}

# The AWS Lambda Web Adapter layer (account 753240598075 publishes it in every region).
LWA_LAYER_ARN = "arn:aws:lambda:${AWS::Region}:753240598075:layer:LambdaAdapterLayerArm64:{version}"
LWA_DEFAULT_VERSION = 25


# TTL attributes (table setting -> attribute) when provision.py does not list them itself
# (`provision.TTL_ATTRIBUTES`, which local mode applies too, wins when present).
DEFAULT_TTL_ATTRIBUTES: dict[str, str] = {"usage_table": "ttl"}


def table_env_var(setting: str) -> str:
    """`keys_table` -> `LLMGW_KEYS_TABLE` (the name llm_gateway/config.py reads)."""
    return f"LLMGW_{setting.upper()}"


FILES_BUCKET_ENV = "LLMGW_FILES_BUCKET"
EVENT_BUS_ENV = "LLMGW_EVENT_BUS"  # audit events (EventBridge), metadata only

# S3 lifecycle: objects under these key prefixes expire after N days (overridable by the
# `file_expiry_days` context value). Generated media lives under `generated/<tenant>/...`.
DEFAULT_FILE_EXPIRY_DAYS: dict[str, int] = {"generated/": 7}

READ, WRITE, READ_WRITE = "read", "write", "read_write"


@dataclass(frozen=True)
class FunctionSpec:
    family: str  # folder under functions/ (also the construct id and log group suffix)
    description: str
    routes: tuple[tuple[str, str], ...] = ()  # HTTP API (method, path); empty = not on the API
    handler: str = "handler.lambda_handler"
    memory_mb: int = 1024
    timeout_s: int = 29  # the HTTP API integration limit is 30 s
    tables: dict[str, str] = field(default_factory=dict)  # table setting -> READ | WRITE | READ_WRITE
    bucket: str | None = None  # READ | WRITE | READ_WRITE on the files bucket, or None
    provider_secrets: bool = True  # may read provider credentials from Secrets Manager
    audit_events: bool = True  # may put audit events on the gateway's event bus
    hooks: bool = True  # may invoke tenants' pre/post hook functions (named <hookFunctionPrefix>*)
    # Submits, reads and cancels jobs and batches: states:StartExecution on the work state machine,
    # StopExecution/DescribeExecution on its executions, LLMGW_JOB_STATE_MACHINE_ARN and the id key.
    job_control: bool = False
    # Extra pip requirements bundled into the function's own asset (build/functions/<family>).
    # `functions/<family>/requirements.txt` is added to these when it exists.
    requirements: tuple[str, ...] = ()
    # The folder under functions/ when it is not `family`: a second function deployed from the same
    # code (the realtime worker runs functions/realtime, its $connect authorizer functions/authorizer).
    source: str = ""

    @property
    def folder(self) -> str:
        """The folder under functions/ holding this function's code."""
        return self.source or self.family


# What every request needs: authenticate (keys, tenants), rate limits and budgets (counters),
# usage reports. A table named here but not (yet) in provision.TABLES is skipped.
REQUEST_TABLES = {"keys_table": READ, "tenants_table": READ, "usage_table": WRITE, "counters_table": READ_WRITE}
# Generation also resolves GTS tool types and reads/writes media.
CHAT_TABLES = {**REQUEST_TABLES, "types_table": READ}
# POST /chat/completions with "async": true, or on a long-running (video) model, becomes a job.
CHAT_JOB_TABLES = {**CHAT_TABLES, "jobs_table": READ_WRITE}

# Families served by the HTTP API (API Gateway v2 -> one Lambda per family).
FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        family="chat",
        description="LLM Gateway chat: POST /chat/completions (buffered SSE for stream=true), GET /models",
        routes=(("POST", "/chat/completions"), ("GET", "/models")),
        tables=CHAT_JOB_TABLES,
        bucket=READ_WRITE,
        job_control=True,
    ),
    FunctionSpec(
        family="embeddings",
        description="LLM Gateway embeddings: POST /embeddings",
        routes=(("POST", "/embeddings"),),
        tables=REQUEST_TABLES,
    ),
    FunctionSpec(
        family="compat",
        description="LLM Gateway OpenAI- and Anthropic-compatible front doors: /openai/v1/*, /anthropic/v1/*",
        routes=(("POST", "/openai/{proxy+}"), ("GET", "/openai/{proxy+}"), ("POST", "/anthropic/{proxy+}"),
                ("GET", "/anthropic/{proxy+}")),
        tables={**CHAT_TABLES, "batches_table": READ_WRITE},  # /openai/v1/batches runs on the native batches
        bucket=READ_WRITE,  # transcription and batch-file uploads, generated media read back (b64_json, speech)
        job_control=True,
    ),
    FunctionSpec(
        family="admin",
        description="LLM Gateway tenant admin: GET /usage (the caller's own tenant's usage aggregates)",
        routes=(("GET", "/usage"),),
        memory_mb=512,
        # authenticate (keys) and query the (day, model) aggregates kept in the usage table
        tables={"keys_table": READ, "usage_table": READ},
        provider_secrets=False, audit_events=False, hooks=False,
    ),
    FunctionSpec(
        family="jobs",
        description="LLM Gateway async jobs: POST /jobs, GET /jobs/{id}, DELETE /jobs/{id}",
        routes=(("POST", "/jobs"), ("GET", "/jobs/{id}"), ("DELETE", "/jobs/{id}")),
        # authenticate, resolve the model and check its approval (tenants; types for tool refs of a
        # cancelled provider task), the job items; request/result JSON and presigned media in S3
        tables={"keys_table": READ, "tenants_table": READ, "types_table": READ, "jobs_table": READ_WRITE},
        bucket=READ_WRITE,
        audit_events=False, hooks=False,  # runs no generation; provider secrets: cancel a provider task
        job_control=True,
    ),
    FunctionSpec(
        family="batches",
        description="LLM Gateway batches: POST /batches, GET /batches/{id}, POST /batches/{id}/cancel, DELETE /batches/{id}",
        routes=(("POST", "/batches"), ("GET", "/batches/{id}"), ("POST", "/batches/{id}/cancel"),
                ("DELETE", "/batches/{id}")),
        tables={"keys_table": READ, "tenants_table": READ, "batches_table": READ_WRITE},
        bucket=READ_WRITE,  # the batch's input JSONL under jobs/<tenant>/
        audit_events=False, hooks=False,  # runs no generation; provider secrets: cancel a provider batch
        job_control=True,
    ),
)

# True streaming: an ASGI app under the Lambda Web Adapter behind a Function URL.
CHAT_STREAM = FunctionSpec(
    family="chat_stream",
    description="LLM Gateway streaming chat (SSE) behind a Function URL with response streaming",
    handler="run.sh",
    timeout_s=300,
    tables=CHAT_JOB_TABLES,
    bucket=READ_WRITE,
    job_control=True,
    requirements=("uvicorn>=0.30", "httptools>=0.6", "uvloop>=0.19"),  # uvicorn picks both when present
)

# The jobs-and-batches state machine's Task function (not on the API): runs the job through the
# chat pipeline or drives a provider task / batch, so it needs what chat needs plus both work tables.
WORKFLOW = FunctionSpec(
    family="workflow",
    description="LLM Gateway jobs and batches: the work state machine's steps (start, poll, chunk, finish, fail)",
    timeout_s=900,  # a gateway-run batch chunk runs LLMGW_BATCH_CHUNK_SIZE requests
    tables={**CHAT_TABLES, "jobs_table": READ_WRITE, "batches_table": READ_WRITE},
    bucket=READ_WRITE,
)

# The HTTP API's Lambda authorizer (also the WebSocket $connect authorizer): checks the API key.
AUTHORIZER = FunctionSpec(
    family="authorizer",
    description="LLM Gateway Lambda authorizer: API key -> tenant, user, key id, scopes",
    memory_mb=512,
    timeout_s=10,
    tables={"keys_table": READ},
    provider_secrets=False, audit_events=False, hooks=False,
)

ALL_FUNCTIONS: tuple[FunctionSpec, ...] = FUNCTIONS + (CHAT_STREAM, WORKFLOW, AUTHORIZER)

# Realtime audio over API Gateway's WebSocket API (infra/constructs/realtime.py, docs/realtime.md).
# Kept out of ALL_FUNCTIONS, whose members each serve a whole request (read keys, charge counters,
# write usage): here the work is split between an authorizer, the routes and a worker.
REALTIME_STAGE = "realtime"  # wss://{api-id}.execute-api.{region}.amazonaws.com/realtime, like local /realtime
# Stage-wide throttling (all connections together): messages per second and the burst above it.
# Every message is one route invocation; audio clients send about 2-10 appends a second.
REALTIME_THROTTLE_RATE = 1000
REALTIME_THROTTLE_BURST = 2000
# AWS limits (not settings): integration 29 s, idle connection 10 min, connection 2 h.
WEBSOCKET_INTEGRATION_TIMEOUT_S = 29
WEBSOCKET_MAX_CONNECTION_S = 7200
# Session settings the functions get (extraEnv may override them); llm_gateway/config.py reads them.
REALTIME_ENV = {
    "LLMGW_REALTIME_MAX_S": str(WEBSOCKET_MAX_CONNECTION_S),  # API Gateway closes the socket at 2 h anyway
    "LLMGW_REALTIME_TURN_TIMEOUT_S": "300",  # must stay below the worker's timeout
    "LLMGW_REALTIME_MAX_TURN_AUDIO_BYTES": str(5 * 1024 * 1024),
}

# `$connect`, `$default`, `$disconnect`: answers within the 29 s integration limit and never waits
# for a model (turns are handed to the worker). Trusts the authorizer's identity at `$connect`
# (no keys table), checks tenant approval (tenants), keeps the session and its buffered audio
# (sessions), records the session summary at close (usage). Calls no provider.
REALTIME = FunctionSpec(
    family="realtime",
    description="LLM Gateway realtime: the WebSocket API's $connect, $default and $disconnect routes",
    timeout_s=WEBSOCKET_INTEGRATION_TIMEOUT_S,
    tables={"tenants_table": READ, "usage_table": WRITE, "sessions_table": READ_WRITE},
    provider_secrets=False, audit_events=False, hooks=False,
)
# The same code, invoked asynchronously with `{"realtime_task": ...}`: greets a new connection and
# runs one turn (provider socket or speech chain) under governance (tenants, counters, pre-call
# hooks), posts the events back, records usage. Needs `websockets` (functions/realtime/requirements.txt).
REALTIME_WORKER = FunctionSpec(
    family="realtime_worker",
    source="realtime",
    description="LLM Gateway realtime worker: greets connections, runs one turn, posts events to @connections",
    timeout_s=360,  # a turn: LLMGW_REALTIME_TURN_TIMEOUT_S (300 s) plus settling its usage and events
    tables={"tenants_table": READ, "usage_table": WRITE, "counters_table": READ_WRITE, "sessions_table": READ_WRITE},
)
# `$connect`'s REQUEST authorizer: the API key (header, or the `api_key` query parameter browsers use).
# Its own function (own role, log group and alarms) from the HTTP API authorizer's code and spec.
REALTIME_AUTHORIZER = replace(
    AUTHORIZER, family="realtime_authorizer", source="authorizer",
    description="LLM Gateway realtime $connect authorizer: API key -> tenant, user, key id, scopes",
)
REALTIME_FUNCTIONS: tuple[FunctionSpec, ...] = (REALTIME, REALTIME_WORKER, REALTIME_AUTHORIZER)

# Every function the stack deploys (infra/build_layer.py bundles their requirements).
DEPLOYED_FUNCTIONS: tuple[FunctionSpec, ...] = ALL_FUNCTIONS + REALTIME_FUNCTIONS


def routes() -> dict[str, tuple[tuple[str, str], ...]]:
    """family -> its HTTP API routes."""
    return {spec.family: spec.routes for spec in FUNCTIONS if spec.routes}


def route_keys() -> set[str]:
    """Every HTTP API route key, e.g. `POST /chat/completions`."""
    return {f"{method} {path}" for spec in FUNCTIONS for method, path in spec.routes}


def _provision():
    """`llm_gateway.stores.provision` (from the repo when the package is not installed)."""
    import sys

    src = str(LAYER_SOURCE)
    if src not in sys.path:
        sys.path.append(src)
    from llm_gateway.stores import provision

    return provision


def provisioned_tables() -> dict[str, tuple[str, str | None]]:
    """`provision.TABLES`: table setting -> (partition key, sort key or None)."""
    return dict(_provision().TABLES)


def table_ttls() -> dict[str, str]:
    """table setting -> TTL attribute."""
    return dict(getattr(_provision(), "TTL_ATTRIBUTES", DEFAULT_TTL_ATTRIBUTES))
