"""The embedded AWS: moto's threaded server (in a child process), provisioned like the CDK stack."""

from __future__ import annotations

import json
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


class EmbeddedAws:
    """moto in a child process (`local/moto_process.py`), and the loopback endpoint on which
    this process runs the workflow function's Lambda invocations for it."""

    def __init__(self, port: int | None = None) -> None:
        import secrets
        import subprocess
        import sys
        import threading
        from http.server import ThreadingHTTPServer

        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        token = secrets.token_urlsafe(24)
        self._dispatcher = ThreadingHTTPServer(("127.0.0.1", 0), _dispatch_handler(token))
        self._dispatcher.daemon_threads = True
        threading.Thread(target=self._dispatcher.serve_forever, name="llmgw-lambda-dispatch", daemon=True).start()
        self.dispatch_base = f"http://127.0.0.1:{self._dispatcher.server_address[1]}"
        dispatch_url = f"{self.dispatch_base}/invoke"
        env = {**os.environ, "LLMGW_DISPATCH_TOKEN": token}
        self._proc = subprocess.Popen([sys.executable, "-m", "llm_gateway.local.moto_process", str(self.port), dispatch_url],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # blocks until the server is up (or the child failed)
        if line.strip() != "ready":
            self.stop()
            raise RuntimeError(f"the embedded AWS (moto) did not start on port {self.port}")

    def stop(self) -> None:
        try:
            if self._proc.stdin is not None:
                self._proc.stdin.close()  # the child exits on EOF
            self._proc.wait(5)
        except Exception:  # noqa: BLE001 - stop it the hard way
            self._proc.kill()
        self._dispatcher.shutdown()
        self._dispatcher.server_close()


def _dispatch_handler(token: str) -> type:
    from http.server import BaseHTTPRequestHandler

    from llm_gateway.local.moto_process import TOKEN_HEADER

    class Dispatch(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: boto3 reuses its connection

        def _connections(self, method: str) -> None:
            """The WebSocket API's `@connections` management API, for the local connections."""
            from llm_gateway.local.realtime import connections

            connection_id = self.path.rsplit("/@connections/", 1)[1].split("?", 1)[0]
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            if method == "POST":
                ok = connections.deliver(connection_id, body)
            elif method == "DELETE":
                ok = connections.close(connection_id)
            else:
                ok = connections.is_open(connection_id)
            if ok:
                out = b"{}" if method == "GET" else b""
                self.send_response(200 if method != "DELETE" else 204)
            else:
                out = json.dumps({"message": f"Connection {connection_id} is gone."}).encode()
                self.send_response(410)
                self.send_header("x-amzn-ErrorType", "GoneException")
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def do_GET(self) -> None:  # noqa: N802
            if "/@connections/" in self.path:
                return self._connections("GET")
            self.send_error(404)

        def do_DELETE(self) -> None:  # noqa: N802
            if "/@connections/" in self.path:
                return self._connections("DELETE")
            self.send_error(404)

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            import hmac

            if "/@connections/" in self.path:
                return self._connections("POST")
            if not hmac.compare_digest(self.headers.get(TOKEN_HEADER, ""), token) or not self.path.startswith("/invoke/"):
                self.send_error(403)
                return
            from llm_gateway.local.workflows import dispatch

            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers: dict[str, str] = {}
            out = dispatch(self.path[len("/invoke/"):], body, headers)
            self.send_response(200)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: object) -> None:
            return None

    return Dispatch


def start_embedded_aws(port: int | None = None) -> tuple[EmbeddedAws, str]:
    """Start moto on loopback (its own process) and point the gateway's stores at it.
    Returns (server, endpoint); `server.stop()` ends it."""
    server = EmbeddedAws(port)
    endpoint = server.endpoint
    os.environ["LLMGW_AWS_ENDPOINT_URL"] = endpoint
    os.environ["LLMGW_CONNECTIONS_ENDPOINT_URL"] = server.dispatch_base  # `@connections` is served in this process
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

    if not os.environ.get("LLMGW_AWS_ENDPOINT_URL"):
        serialize_moto_dynamodb()  # moto in this process (tests); the embedded server's child does it itself
        from llm_gateway.local import moto_speedups

        moto_speedups.apply()
    provision()
    ApiKeyStore().put(api_key, DEV_TENANT, DEV_USER, key_id="dev00000")
    from llm_gateway.stores.tenants import TenantConfig, TenantStore

    TenantStore().put(TenantConfig.from_dict(DEV_TENANT, DEV_TENANT_CONFIG))
    from llm_gateway.registry.types import SEED_DIR, load_seed

    load_seed(os.environ.get("LLMGW_TYPES_SEED_DIR") or SEED_DIR)
    from llm_gateway.stores.workflows import provision_state_machine

    provision_state_machine()  # jobs and batches (llm_gateway/jobs/workflow.asl.json)
