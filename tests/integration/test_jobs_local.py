"""Jobs and batches against the local server, as a new user tries them: `python -m llm_gateway.local`
in a subprocess (embedded moto server executing the real state machine, its Lambda tasks
dispatched in-process to `functions/workflow`), driven over HTTP."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from llm_gateway.local.aws import DEV_API_KEY

REPO = Path(__file__).resolve().parents[2]
HEADERS = {"Authorization": f"Bearer {DEV_API_KEY}", "Content-Type": "application/json"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def local_url(tmp_path_factory):
    catalog = json.loads((REPO / "layers/gateway/llm_gateway/catalog/default.json").read_text())
    for m in catalog["models"]:
        if m["id"] == "mock::video-gen":
            m["options"]["generation_s"] = 1.5
    path = tmp_path_factory.mktemp("local") / "catalog.json"
    path.write_text(json.dumps(catalog))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LLMGW_", "MOTO_"))}
    env.update(PYTHONPATH=str(REPO), LLMGW_CATALOG=str(path), LLMGW_SYNC_POLL_LIMIT_S="0.5", LLMGW_BATCH_CHUNK_SIZE="5",
               POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_LOG_LEVEL="ERROR")
    proc = subprocess.Popen([sys.executable, "-m", "llm_gateway.local", "--port", str(port)], cwd=str(REPO), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the local server exited: {proc.stderr.read()[-2000:] if proc.stderr else ''}")
            try:
                if httpx.get(url + "/models", headers=HEADERS, timeout=2, trust_env=False).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the local server did not start")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait(client: httpx.Client, path: str, done: tuple[str, ...], timeout: float = 40.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(path, headers=HEADERS).json()
        if body.get("status") in done:
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.2)


def test_async_chat_video_and_cancel_on_the_local_server(local_url):
    with httpx.Client(base_url=local_url, timeout=30, trust_env=False) as client:
        msg = [{"role": "user", "content": [{"type": "text", "text": "hello from a new user"}]}]
        r = client.post("/chat/completions", headers=HEADERS, json={"model": "mock", "async": True, "messages": msg})
        assert r.status_code == 202, r.text
        job = _wait(client, r.headers["location"], ("completed", "failed"))
        assert job["status"] == "completed" and job["result"]["content"][0]["text"] == "You said: hello from a new user"

        r = client.post("/chat/completions", headers=HEADERS, json={"model": "mock::video-gen", "messages": msg})
        assert r.status_code == 202, r.text  # longer than the sync poll limit: the workflow finishes it
        video = _wait(client, f"/jobs/{r.json()['id']}", ("completed", "failed"))
        assert video["status"] == "completed"
        url = video["result"]["content"][0]["url"]
        fetched = httpx.get(url, timeout=10, trust_env=False)  # the presigned URL works against the embedded S3
        assert fetched.status_code == 200 and fetched.content[4:8] == b"ftyp"

        r = client.post("/jobs", headers=HEADERS, json={"model": "mock::video-gen", "messages": msg})
        job_id = r.json()["id"]
        _wait(client, f"/jobs/{job_id}", ("running",))
        cancelled = client.delete(f"/jobs/{job_id}", headers=HEADERS)
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        time.sleep(2.5)
        assert client.get(f"/jobs/{job_id}", headers=HEADERS).json()["status"] == "cancelled"
        assert client.delete(f"/jobs/{job_id}", headers=HEADERS).status_code == 409


def test_gateway_run_batch_of_20_on_the_local_server(local_url):
    with httpx.Client(base_url=local_url, timeout=30, trust_env=False) as client:
        reqs = [{"custom_id": f"item-{i}", "request": {"model": "mock::echo", "messages": [
            {"role": "user", "content": [{"type": "text", "text": f"number {i}"}]}]}} for i in range(20)]
        r = client.post("/batches", headers=HEADERS, json={"requests": reqs})
        assert r.status_code == 202, r.text
        done = _wait(client, r.headers["location"], ("completed", "failed", "cancelled"))
        assert done["status"] == "completed" and done["request_counts"]["completed"] == 20
        assert [x["result"]["content"][0]["text"] for x in done["requests"]] == [f"You said: number {i}" for i in range(20)]
