"""True streaming over a socket: the local server (uvicorn in a thread, embedded moto) and the
deployed streaming app (`functions/chat_stream/app.py`), read with a standard SSE client
(httpx-sse), against fake OpenAI-wire providers that stream slowly."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tests.conftest import DEV_API_KEY, user
from tests.fakes.openai import MODEL, FakeOpenAI, render_stream
from tests.fakes.script import Script
from tests.fakes.server import Reply
from tests.local_support import embedded_aws, serve

PRIMARY = f"openai::{MODEL}"
BACKUP = "backup::gpt-fake-backup"
AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}
SSE = {"Content-Type": "text/event-stream; charset=utf-8"}


class RecordingFake(FakeOpenAI):
    """Also records when it stopped writing each reply (finished, or the client went away)."""

    def __init__(self, script: Script | None = None) -> None:
        super().__init__(script)
        self.write_ended: list[float] = []

    def _write(self, h: Any, reply: Reply) -> None:
        try:
            super()._write(h, reply)
        finally:
            self.write_ended.append(time.monotonic())


class FakeBackup(RecordingFake):
    provider_id = "backup"
    key_env = "FAKE_BACKUP_API_KEY"
    api_key = "sk-proj-fake-backup-key-0123456789abcdef"
    model = "gpt-fake-backup"


@pytest.fixture(scope="module")
def servers():
    """The local gateway and the bare streaming app, on loopback, with an embedded moto."""
    with embedded_aws():
        from llm_gateway.local.server import LocalGateway
        from functions.chat_stream.app import app as stream_app

        with serve(LocalGateway()) as local, serve(stream_app) as bare:
            yield {"local": local, "stream_app": bare}


@pytest.fixture
def fakes(servers, use_catalog):
    caps = ["chat", "stream", "tools"]
    with RecordingFake() as primary, FakeBackup(Script(text="backup answers here")) as backup:
        p_provider, p_models = primary.catalog(caps)
        b_provider, b_models = backup.catalog(caps)
        use_catalog([p_provider, b_provider], p_models + b_models)
        with httpx.Client() as client:  # warm up: first-use imports, key lookup, provider connections
            for model in (PRIMARY, BACKUP):
                assert client.post(servers["local"] + "/chat/completions", headers=AUTH,
                                   json={"model": model, "stream": True, "messages": [user("warm")]}).status_code == 200
        primary.write_ended.clear()
        backup.write_ended.clear()
        yield primary, backup


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def records(request_id: str, timeout: float = 3.0) -> dict[str, Any]:
    from llm_gateway.stores.usage import UsageStore

    end = time.monotonic() + timeout
    while True:
        found = [r for r in UsageStore().list_for_tenant("dev-tenant") if r["request_id"] == request_id]
        if found or time.monotonic() > end:
            assert found, f"no usage record for {request_id}"
            return found[0]
        time.sleep(0.05)


def read_events(url: str, payload: dict[str, Any]) -> tuple[httpx.Response, list[tuple[float, str, str]]]:
    """(response, [(seconds since the request, event name, data)]) with a standard SSE client."""
    out = []
    with httpx.Client(timeout=30) as client:
        t0 = time.monotonic()
        with connect_sse(client, "POST", url + "/chat/completions", json=payload, headers=AUTH) as source:
            resp = source.response
            for sse in source.iter_sse():
                out.append((time.monotonic() - t0, sse.event, sse.data))
    return resp, out


# ---------------------------------------------------------------- the local server


def test_first_chunk_arrives_before_the_provider_has_finished(servers, fakes):
    primary, _ = fakes
    primary.script(Script(text=words(15), chunk_delay_s=0.25, input_tokens=9, output_tokens=15))  # 9 frames, ~2.25 s
    started = time.monotonic()
    resp, events = read_events(servers["local"], {"model": PRIMARY, "stream": True, "messages": [user("count")]})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    assert resp.headers["x-llmgw-provider"] == "openai"
    content = [(t, json.loads(d)) for t, e, d in events if e == "message" and d != "[DONE]" and json.loads(d)["delta"].get("content")]
    first_at, last_at = content[0][0], events[-1][0]
    end = time.monotonic() + 3
    while not primary.write_ended and time.monotonic() < end:  # the fake sleeps after its last chunk too
        time.sleep(0.02)
    provider_done_at = primary.write_ended[-1] - started  # when the fake was done writing
    assert first_at < provider_done_at - 1.2, f"first content at {first_at:.2f} s, provider done at {provider_done_at:.2f} s"
    assert last_at - first_at > 1.2, "chunks arrived together: the stream was buffered"
    assert [t for t, _ in content] == sorted(t for t, _ in content)
    assert "".join(c["delta"]["content"] for _, c in content) == words(15)
    final = json.loads(events[-2][2])
    assert final["finish_reason"] == "stop" and final["usage"]["input_tokens"] == 9 and final["usage"]["output_tokens"] == 15
    assert events[-1][2] == "[DONE]"
    rec = records(resp.headers["x-request-id"])
    assert rec["outcome"] == "ok" and int(rec["output_tokens"]) == 15 and float(rec["ttft_ms"]) < first_at * 1000 + 1


def test_error_after_the_stream_began_is_an_error_event_then_a_clean_end(servers, fakes):
    primary, _ = fakes
    primary.enqueue("POST", "/v1/chat/completions", Reply(200, chunks=render_stream(Script(text=words(12)), MODEL), headers=SSE, cut_after=3))
    resp, events = read_events(servers["local"], {"model": PRIMARY, "stream": True, "messages": [user("x")], "fallback": {"models": [BACKUP], "strategy": "sequential"}})
    assert resp.status_code == 200
    name, data = events[-1][1], json.loads(events[-1][2])
    assert name == "error" and data["code"] == "provider_error" and data["status"] == 502
    assert data["usage"]["output_tokens"] > 0 and data["instance"] == resp.headers["x-request-id"]
    assert all(d != "[DONE]" for _, _, d in events)


def test_failure_before_content_falls_back_transparently(servers, fakes):
    primary, backup = fakes
    primary.enqueue("POST", "/v1/chat/completions", Reply(503, json={"error": {"message": "overloaded", "type": "server_error"}}))
    resp, events = read_events(servers["local"], {"model": PRIMARY, "stream": True, "messages": [user("x")],
                                                  "fallback": {"models": [BACKUP], "strategy": "sequential"}})
    assert resp.status_code == 200 and resp.headers["x-llmgw-provider"] == "backup" and resp.headers["x-llmgw-fallback-used"] == "true"
    chunks = [json.loads(d) for _, _, d in events if d != "[DONE]"]
    assert {c["model"] for c in chunks} == {BACKUP}
    assert "".join(c["delta"].get("content", "") for c in chunks) == "backup answers here"


def test_client_disconnect_stops_the_upstream_and_records_usage(servers, fakes):
    primary, _ = fakes
    primary.script(Script(text=words(90), chunk_delay_s=0.2))  # ~6.6 s if read to the end
    payload = {"model": PRIMARY, "stream": True, "messages": [user("x")]}
    with httpx.Client(timeout=30) as client:
        with client.stream("POST", servers["local"] + "/chat/completions", json=payload, headers=AUTH) as resp:
            rid = resp.headers["x-request-id"]
            seen = 0
            for line in resp.iter_lines():
                if '"content"' in line:
                    seen += 1
                if seen == 2:
                    break
            closed_at = time.monotonic()
    rec = records(rid)
    assert rec["outcome"] == "cancelled" and rec["usage_estimated"] is True
    assert int(rec["output_tokens"]) >= 2 and int(rec["input_tokens"]) > 0
    deadline = time.monotonic() + 3
    while not primary.write_ended and time.monotonic() < deadline:
        time.sleep(0.05)
    assert primary.write_ended and primary.write_ended[-1] - closed_at < 1.5, "the provider kept streaming to nobody"


def test_non_stream_requests_still_go_through_the_lambda_handler(servers, fakes):
    with httpx.Client() as client:
        r = client.post(servers["local"] + "/chat/completions", json={"model": PRIMARY, "messages": [user("x")]}, headers=AUTH)
    assert r.status_code == 200 and r.json()["model_used"] == PRIMARY


# ---------------------------------------------------------------- the deployed streaming app (Function URL)


def test_stream_app_serves_stream_and_buffered_and_checks_the_key(servers, fakes):
    url = servers["stream_app"]
    with httpx.Client() as client:
        assert client.get(url + "/").status_code == 200  # the Web Adapter's readiness check
        assert client.get(url + "/health").json() == {"status": "ok"}
        buffered = client.post(url + "/chat/completions", json={"model": PRIMARY, "messages": [user("x")]}, headers=AUTH)
        assert buffered.status_code == 200 and buffered.json()["model_used"] == PRIMARY
        anon = client.post(url + "/chat/completions", json={"model": PRIMARY, "stream": True, "messages": [user("x")]})
        assert anon.status_code == 401 and anon.json()["code"] == "unauthorized" and "www-authenticate" in anon.headers
        assert client.get(url + "/chat/completions").status_code == 405
        assert client.post(url + "/embeddings", json={}).json()["code"] == "not_found"
        bad = client.post(url + "/chat/completions", content=b"{nope", headers={**AUTH, "content-type": "application/json"})
        assert bad.status_code == 400 and bad.json()["code"] == "invalid_json"
    resp, events = read_events(url, {"model": PRIMARY, "stream": True, "messages": [user("x")]})
    assert resp.status_code == 200 and events[-1][2] == "[DONE]"


# ---------------------------------------------------------------- the ASGI bridge in isolation


class _Service:
    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.pulled = 0
        self.closed = threading.Event()

    def chat_completions(self, req: Any) -> Any:
        from llm_gateway.service.http import HttpResponse

        def gen():
            try:
                for i in range(self.frames):
                    self.pulled += 1
                    yield f"data: {i}\n\n"
                yield "data: [DONE]\n\n"
            except GeneratorExit:
                self.closed.set()
                raise

        return HttpResponse(200, {"Content-Type": "text/event-stream"}, stream=gen())


def _drive(app: Any, stop: threading.Event, *, block_sends: bool = False, disconnect_after: int | None = None) -> list[dict[str, Any]]:
    """Run the app for one request with a scripted client: it may never read (`block_sends`)
    and goes away when `stop` is set (or after `disconnect_after` messages)."""
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        body_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal body_sent
            if not body_sent:
                body_sent = True
                return {"type": "http.request", "body": b"{}", "more_body": False}
            await loop.run_in_executor(None, stop.wait)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body":
                if block_sends:
                    await loop.run_in_executor(None, stop.wait)
                if disconnect_after is not None and len(sent) > disconnect_after:
                    stop.set()

        scope = {"type": "http", "method": "POST", "path": "/chat/completions", "headers": [], "query_string": b""}
        await asyncio.wait_for(app(scope, receive, send), 10)

    asyncio.run(main())
    return sent


def test_bridge_applies_backpressure_to_the_generator():
    from llm_gateway.service.asgi import ChatStreamApp

    service = _Service(1000)
    app = ChatStreamApp(service, queue_frames=8, early_close=False)
    stop = threading.Event()
    t = threading.Thread(target=_drive, args=(app, stop), kwargs={"block_sends": True}, daemon=True)
    t.start()
    time.sleep(0.6)
    pulled = service.pulled
    stop.set()  # the client goes away
    t.join(5)
    assert pulled <= 8 + 2, f"pulled {pulled} frames for a client that reads nothing"
    assert service.closed.wait(2) and service.pulled < 20


def test_bridge_closes_the_generator_when_the_client_disconnects():
    from llm_gateway.service.asgi import ChatStreamApp

    service = _Service(10_000)
    app = ChatStreamApp(service, queue_frames=4, early_close=False)
    sent = _drive(app, threading.Event(), disconnect_after=3)
    assert service.closed.wait(2), "the generator was not closed (GeneratorExit)"
    assert service.pulled < 5_000  # stopped long before the end
    assert sent[0]["type"] == "http.response.start"
