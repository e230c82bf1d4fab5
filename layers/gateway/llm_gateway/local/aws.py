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


def start_embedded_aws(port: int | None = None) -> tuple[object, str]:
    """Start moto on loopback and point the gateway's stores at it. Returns (server, endpoint)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = port or free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    os.environ["LLMGW_AWS_ENDPOINT_URL"] = endpoint
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
    """Create tables and bucket, and the documented development key."""
    from llm_gateway.stores.keys import ApiKeyStore
    from llm_gateway.stores.provision import provision

    provision()
    ApiKeyStore().put(api_key, DEV_TENANT, DEV_USER, key_id="dev00000")
    from llm_gateway.registry.types import SEED_DIR, load_seed

    load_seed(os.environ.get("LLMGW_TYPES_SEED_DIR") or SEED_DIR)
