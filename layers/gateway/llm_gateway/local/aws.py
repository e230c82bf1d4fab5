"""The embedded AWS: moto's threaded server in-process, provisioned like the CDK stack."""

from __future__ import annotations

import os
import socket

DEV_API_KEY = "llmgw_dev00000_local-development-key-do-not-use-in-production"
DEV_TENANT = "dev-tenant"
DEV_USER = "dev-user"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# What local mode seeds for the dev tenant: every model, limits and a budget high enough never to
# get in the way of development, but present, so the governance path is the one exercised.
DEV_TENANT_CONFIG = {
    "name": "Local development",
    "approved_models": ["*"],
    "limits": {"tenant": {"rpm": 10_000, "tpm": 10_000_000}, "user": {"rpm": 5_000, "tpm": 5_000_000}},
    "budgets": [{"scope": "tenant", "period": "monthly", "limit_usd": 1000}],
}

_DDB_OPERATIONS = ("put_item", "update_item", "delete_item", "get_item", "query", "scan", "transact_write_items",
                   "transact_get_items", "batch_get_item", "batch_write_item", "execute_statement",
                   "execute_transaction", "batch_execute_statement")
_serialized = False


def serialize_moto_dynamodb() -> None:
    """Make moto's DynamoDB apply each operation atomically, as DynamoDB does per item.

    moto's server handles requests in threads without locking its tables, so two conditional
    `UpdateItem`s racing on one counter can both pass their condition (and lose an update):
    a rate limit would admit more than its limit against the emulator, never against DynamoDB.
    One process-wide lock around the backend's operations restores DynamoDB's guarantee.
    """
    global _serialized
    if _serialized:
        return
    import functools
    import threading

    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in _DDB_OPERATIONS:
        original = getattr(DynamoDBBackend, name, None)
        if original is None:
            continue

        @functools.wraps(original)
        def locked(self, *args, __original=original, **kwargs):  # type: ignore[no-untyped-def]
            with lock:
                return __original(self, *args, **kwargs)

        setattr(DynamoDBBackend, name, locked)
    _serialized = True


def start_embedded_aws(port: int | None = None) -> tuple[object, str]:
    """Start moto on loopback and point the gateway's stores at it. Returns (server, endpoint)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    serialize_moto_dynamodb()
    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ["LLMGW_AWS_ENDPOINT_URL"] = endpoint
    from llm_gateway.local.workflows import enable_server_workflows

    enable_server_workflows(endpoint, port)  # the real state machine runs; its Lambda tasks run in-process
    # moto accepts any credentials; never let local mode pick up real ones
    os.environ["AWS_ACCESS_KEY_ID"] = "local"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "local"
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from llm_gateway.config import reset_settings
    from llm_gateway.stores.aws import reset_clients

    reset_settings()
    reset_clients()
    return server, endpoint


def provision_and_seed(api_key: str = DEV_API_KEY) -> None:
    """Create tables, bucket and event bus, the documented development key and the dev tenant."""
    from llm_gateway.stores.keys import ApiKeyStore
    from llm_gateway.stores.provision import provision

    serialize_moto_dynamodb()
    provision()
    ApiKeyStore().put(api_key, DEV_TENANT, DEV_USER, key_id="dev00000")
    from llm_gateway.stores.tenants import TenantConfig, TenantStore

    TenantStore().put(TenantConfig.from_dict(DEV_TENANT, DEV_TENANT_CONFIG))
    from llm_gateway.registry.types import SEED_DIR, load_seed

    load_seed(os.environ.get("LLMGW_TYPES_SEED_DIR") or SEED_DIR)
    from llm_gateway.stores.workflows import provision_state_machine

    provision_state_machine()  # jobs and batches (llm_gateway/jobs/workflow.asl.json)
