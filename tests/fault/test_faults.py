"""Fault injection: every provider failure the gateway must survive, buffered and streamed, with
and without fallback — asserting what the client sees, how long it took, and the usage recorded.

Two fake OpenAI-wire providers (`tests/fakes/openai.py`): the primary gets the fault (one
enqueued reply), the backup answers normally. Requests go through the chat Lambda handler as the
HTTP API calls it (a stream comes back as the buffered SSE body); true streaming over a socket is
in tests/integration/test_streaming.py. Every request sets `timeout: {ttft_ms: 1000, total_ms:
2500}`, so a buffered request streams from the provider too (an explicit TTFT is honoured by
streaming upstream); tests at the end cover plain buffered calls (total only).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from tests.conftest import user
from tests.fakes.openai import MODEL, FakeOpenAI, render_stream
from tests.fakes.script import Script
from tests.fakes.server import Reply

PRIMARY = f"openai::{MODEL}"
BACKUP = "backup::gpt-fake-backup"
TTFT_MS, TOTAL_MS = 1000, 2500  # generous: a loaded CI machine must not turn a fault into a timeout
SLACK_S = 1.0  # the bound: no request hangs past its total timeout + 1 s
CAPS = ["chat", "stream", "tools", "structured_output"]
SSE = {"Content-Type": "text/event-stream; charset=utf-8"}


class FakeBackup(FakeOpenAI):
    provider_id = "backup"
    key_env = "FAKE_BACKUP_API_KEY"
    api_key = "sk-proj-fake-backup-key-0123456789abcdef"
    model = "gpt-fake-backup"


@pytest.fixture
def fakes(api, use_catalog):
    with FakeOpenAI(Script(text="primary answers " * 4)) as primary, FakeBackup(Script(text="backup answers here")) as backup:
        p_provider, p_models = primary.catalog(CAPS)
        b_provider, b_models = backup.catalog(CAPS)
        use_catalog([p_provider, b_provider], p_models + b_models)
        warm_up(api, primary, backup)
        yield primary, backup


def warm_up(api, *servers) -> None:
    """One answer from each provider first, so timings exclude first-use imports and connects."""
    for server in servers:
        assert api.chat({"model": f"{server.provider_id}::{server.model}", "stream": True, "messages": [user("warm up")]}).status == 200
    for server in servers:
        server.requests.clear()


# ---------------------------------------------------------------- faults


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def stream_chunks(n_words: int = 12) -> list[bytes]:
    """role chunk, content chunks of 3 words, finish chunk, usage chunk, [DONE]."""
    return render_stream(Script(text=words(n_words)), MODEL)


def trickle(chunks: list[bytes]) -> list[bytes]:
    return [chunks[0] + chunks[1]] + chunks[2:]


FAULTS: dict[str, Any] = {
    "http_500": lambda: Reply(500, json={"error": {"message": "The server had an error while processing your request.", "type": "server_error"}}),
    "http_429": lambda: Reply(429, json={"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}},
                              headers={"retry-after": "7"}),
    "refused": None,  # the primary's base URL points at a port nothing listens on
    "stall_first_byte": lambda: Reply(200, chunks=stream_chunks(), headers=SSE, delay_s=10),
    "stall_mid_stream": lambda: Reply(200, chunks=stream_chunks(), headers=SSE, stall_after=3, stall_s=10),
    "cut_mid_stream": lambda: Reply(200, chunks=stream_chunks(), headers=SSE, cut_after=3),
    "malformed_chunk": lambda: Reply(200, chunks=stream_chunks()[:3] + [b"data: {\"choices\": [{\"delta\": {\"content\": \n\n"] + stream_chunks()[3:],
                                     headers=SSE),
    # role + first content at once, then a chunk every 0.15 s: ~3 s in all, past the total
    "slow_trickle": lambda: Reply(200, chunks=trickle(stream_chunks(60)), headers=SSE, chunk_delay_s=0.15),
}

# Expected outcomes: ("error", status, code, timeout) = a problem response before any frame;
# ("event", code, timeout) = 200, content, then `event: error`; ("ok", model) = an answer.
E500 = ("error", 502, "provider_error", None)
E429 = ("error", 429, "rate_limited", None)
TTFT = ("error", 504, "provider_timeout", "ttft")
TOTAL = ("error", 504, "provider_timeout", "total")
EV_TOTAL = ("event", "provider_timeout", "total")
EV_ERR = ("event", "provider_error", None)
OK_BACKUP = ("ok", BACKUP)

EXPECTED: dict[str, dict[tuple[bool, bool], tuple]] = {
    # (stream, fallback) -> outcome
    "http_500": {(True, False): E500, (False, False): E500, (True, True): OK_BACKUP, (False, True): OK_BACKUP},
    "http_429": {(True, False): E429, (False, False): E429, (True, True): OK_BACKUP, (False, True): OK_BACKUP},
    "refused": {(True, False): E500, (False, False): E500, (True, True): OK_BACKUP, (False, True): OK_BACKUP},
    "stall_first_byte": {(True, False): TTFT, (False, False): TTFT, (True, True): OK_BACKUP, (False, True): OK_BACKUP},
    # content already reached a streaming client: no fallback; buffered: the total budget is spent
    "stall_mid_stream": {(True, False): EV_TOTAL, (False, False): TOTAL, (True, True): EV_TOTAL, (False, True): TOTAL},
    "cut_mid_stream": {(True, False): EV_ERR, (False, False): E500, (True, True): EV_ERR, (False, True): OK_BACKUP},
    "malformed_chunk": {(True, False): EV_ERR, (False, False): E500, (True, True): EV_ERR, (False, True): OK_BACKUP},
    "slow_trickle": {(True, False): EV_TOTAL, (False, False): TOTAL, (True, True): EV_TOTAL, (False, True): TOTAL},
}


def sse_events(body: str) -> list[tuple[str | None, Any]]:
    out: list[tuple[str | None, Any]] = []
    for frame in body.split("\n\n"):
        if not frame.strip():
            continue
        name, data = None, []
        for line in frame.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data.append(line[6:])
        raw = "\n".join(data)
        out.append((name, raw if raw == "[DONE]" else json.loads(raw)))
    return out


def last_record() -> dict[str, Any]:
    from llm_gateway.stores.usage import UsageStore

    records = UsageStore().list_for_tenant("dev-tenant")
    assert records, "no usage record"
    return records[0]


def chat(api, *, stream: bool, fallback: bool, strategy: str = "sequential", timeout: dict | None = None, **extra):
    body: dict[str, Any] = {"model": PRIMARY, "stream": stream, "messages": [user("hello")],
                            "timeout": timeout if timeout is not None else {"ttft_ms": TTFT_MS, "total_ms": TOTAL_MS}, **extra}
    if fallback:
        body["fallback"] = {"models": [BACKUP], "strategy": strategy}
    t0 = time.monotonic()
    resp = api.chat(body)
    return resp, time.monotonic() - t0


def point_primary_at_nothing(use_catalog, primary, backup) -> None:
    from llm_gateway.local.aws import free_port

    p_provider, p_models = primary.catalog(CAPS)
    p_provider["base_url"] = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    b_provider, b_models = backup.catalog(CAPS)
    use_catalog([p_provider, b_provider], p_models + b_models)
    warm_up(api_client(), backup)


def api_client():
    from tests.conftest import ApiClient

    return ApiClient()


# ---------------------------------------------------------------- the matrix


@pytest.mark.parametrize("fallback", [False, True], ids=["no-fallback", "fallback"])
@pytest.mark.parametrize("stream", [True, False], ids=["stream", "buffered"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault(api, fakes, use_catalog, fault, stream, fallback):
    primary, backup = fakes
    if fault == "refused":
        point_primary_at_nothing(use_catalog, primary, backup)
    else:
        primary.enqueue("POST", "/v1/chat/completions", FAULTS[fault]())
    expected = EXPECTED[fault][(stream, fallback)]

    resp, elapsed = chat(api, stream=stream, fallback=fallback)

    assert elapsed <= TOTAL_MS / 1000 + SLACK_S, f"took {elapsed:.2f} s"
    rec = last_record()
    kind = expected[0]
    if kind == "ok":
        assert resp.status == 200, resp.body
        assert resp.headers["x-llmgw-provider"] == "backup" and resp.headers["x-llmgw-fallback-used"] == "true"
        if stream:
            events = sse_events(resp.body)
            assert events[-1] == (None, "[DONE]")
            chunks = [d for _, d in events[:-1]]
            assert all(c["model"] == BACKUP for c in chunks)
            assert "".join(c["delta"].get("content", "") for c in chunks) == "backup answers here"
            assert chunks[-1]["usage"]["input_tokens"] == 11 and chunks[-1]["usage"]["output_tokens"] == 7
        else:
            body = resp.json()
            assert body["model_used"] == BACKUP and body["fallback_used"] is True and body["provider"] == "backup"
            assert body["content"] == [{"type": "text", "text": "backup answers here"}]
            assert body["usage"]["input_tokens"] == 11 and body["usage"]["output_tokens"] == 7
        assert rec["outcome"] == "ok" and rec["model"] == BACKUP and rec["fallback_used"] is True
        assert int(rec["attempts"]) == 2 and rec["attempt_errors"].startswith(PRIMARY + "=")
        assert (int(rec["input_tokens"]), int(rec["output_tokens"])) == (11, 7)
    elif kind == "error":
        _, status, code, timeout = expected
        assert resp.status == status, resp.body
        assert resp.headers["content-type"] == "application/problem+json"
        problem = resp.json()
        assert problem["code"] == code and problem["provider"] == "openai"
        if timeout:
            assert problem["timeout"] == timeout
        if code == "rate_limited":
            assert resp.headers["retry-after"] == "7" and problem["retry_after_s"] == 7
        if fallback:
            assert [a["model"] for a in problem["attempts"]] == [PRIMARY]  # no time left for the backup
            assert backup.calls == []
        assert rec["outcome"] == "error" and rec["error_code"] == code
        assert "output_tokens" not in rec
    else:
        _, code, timeout = expected
        assert resp.status == 200, resp.body
        assert resp.headers["x-llmgw-provider"] == "openai"
        events = sse_events(resp.body)
        name, problem = events[-1]
        assert name == "error" and problem["code"] == code and problem["provider"] == "openai"
        assert all(n is None and d != "[DONE]" for n, d in events[:-1]), "no [DONE] after an error"
        if timeout:
            assert problem["timeout"] == timeout
        text = "".join(d["delta"].get("content", "") for _, d in events[:-1])
        assert text.startswith("w0 w1 w2 ")
        assert problem["usage"]["output_tokens"] > 0
        assert backup.calls == []  # content had reached the client: no fallback
        assert rec["outcome"] == "error" and rec["error_code"] == code and rec["model"] == PRIMARY
        assert int(rec["output_tokens"]) == problem["usage"]["output_tokens"] > 0 and rec["usage_estimated"] is True


# ---------------------------------------------------------------- buffered without a TTFT (total only)


@pytest.mark.parametrize("reply,timeout", [
    (lambda: Reply(200, json={}, delay_s=10), "total"),  # stall before the first byte
    (lambda: Reply(200, chunks=[b'{"id": "x", "choices": ['] * 40, chunk_delay_s=0.1), "total"),  # trickled body
])
def test_buffered_call_without_ttft_is_bounded_by_the_total(api, fakes, reply, timeout):
    primary, _ = fakes
    primary.enqueue("POST", "/v1/chat/completions", reply())
    resp, elapsed = chat(api, stream=False, fallback=False, timeout={"total_ms": 800})
    assert elapsed <= 0.8 + SLACK_S
    assert resp.status == 504 and resp.json()["timeout"] == timeout
    assert "800 ms" in resp.json()["detail"]
    assert primary.calls[-1].json().get("stream") is None  # a plain buffered call upstream


def test_buffered_cut_body_and_500_fall_back(api, fakes):
    primary, backup = fakes
    primary.enqueue("POST", "/v1/chat/completions", Reply(200, chunks=[b'{"id": "x", ', b'"choices": []}'], cut_after=1))
    resp, _ = chat(api, stream=False, fallback=True, timeout={"total_ms": 3000})
    assert resp.status == 200 and resp.json()["model_used"] == BACKUP
    primary.enqueue("POST", "/v1/chat/completions", FAULTS["http_500"]())
    resp, _ = chat(api, stream=False, fallback=True, timeout={})
    assert resp.status == 200 and resp.json()["model_used"] == BACKUP and resp.json()["fallback_used"] is True


def test_catalog_timeouts_apply_when_the_request_sets_none(api, use_catalog):
    with FakeOpenAI() as primary:
        provider, models = primary.catalog(CAPS)
        models[0]["timeouts"] = {"ttft_ms": 250, "total_ms": 5000}
        use_catalog([provider], models)
        warm_up(api, primary)
        primary.enqueue("POST", "/v1/chat/completions", FAULTS["stall_first_byte"]())
        t0 = time.monotonic()
        resp = api.chat({"model": PRIMARY, "stream": True, "messages": [user("hi")]})
        assert time.monotonic() - t0 <= 0.25 + SLACK_S
        assert resp.status == 504 and resp.json()["timeout"] == "ttft" and "250 ms" in resp.json()["detail"]


# ---------------------------------------------------------------- fallback rules


def test_no_fallback_on_validation_errors(api, fakes):
    primary, backup = fakes
    primary.enqueue("POST", "/v1/chat/completions", Reply(400, json={"error": {
        "message": "This model's maximum context length is 128000 tokens.", "type": "invalid_request_error", "code": "context_length_exceeded"}}))
    resp, _ = chat(api, stream=True, fallback=True)
    assert resp.status == 400 and resp.json()["code"] == "validation_error"
    assert backup.calls == []


def test_all_models_failing_returns_the_last_error_with_the_trail(api, fakes):
    primary, backup = fakes
    primary.enqueue("POST", "/v1/chat/completions", FAULTS["http_500"]())
    backup.enqueue("POST", "/v1/chat/completions", FAULTS["http_429"]())
    resp, _ = chat(api, stream=True, fallback=True)
    assert resp.status == 429
    problem = resp.json()
    assert problem["code"] == "rate_limited" and problem["provider"] == "backup"
    assert problem["detail"].startswith("All 2 models failed")
    assert [(a["model"], a["code"]) for a in problem["attempts"]] == [(PRIMARY, "provider_error"), (BACKUP, "rate_limited")]
    rec = last_record()
    assert rec["outcome"] == "error" and rec["attempt_errors"] == f"{PRIMARY}=provider_error,{BACKUP}=rate_limited"


def test_fallback_models_without_the_needed_capabilities_are_skipped_and_noted(api, use_catalog):
    tool = {"type": "unified", "name": "f", "description": "d", "parameters": {"json_schema": {"type": "object"}}}
    with FakeOpenAI() as primary, FakeBackup() as backup:
        p_provider, p_models = primary.catalog(CAPS)
        b_provider, b_models = backup.catalog(["chat", "stream"])  # no tools
        old = {"id": "backup::old", "lifecycle": "deprecated", "capabilities": CAPS}
        use_catalog([p_provider, b_provider], p_models + b_models + [old])
        ok = api.chat({"model": PRIMARY, "messages": [user("x")], "tools": [tool], "fallback": {"models": [BACKUP, PRIMARY, "backup::old"], "strategy": "sequential"}})
        assert ok.status == 200 and ok.headers["x-llmgw-fallback-skipped"] == f"{BACKUP}, {PRIMARY}, backup::old"
        primary.enqueue("POST", "/v1/chat/completions", FAULTS["http_500"]())
        resp = api.chat({"model": PRIMARY, "messages": [user("x")], "tools": [tool], "fallback": {"models": [BACKUP], "strategy": "sequential"}})
        assert resp.status == 502
        problem = resp.json()
        assert problem["fallback_skipped"] == [{"model": BACKUP, "reason": "lacks tools"}]
        assert backup.calls == []


def test_unknown_fallback_model_is_rejected_up_front(api, fakes):
    primary, _ = fakes
    resp = api.chat({"model": PRIMARY, "messages": [user("x")], "fallback": {"models": ["nope::nope"], "strategy": "parallel"}})
    assert resp.status == 404 and resp.json()["code"] == "model_not_found"
    assert resp.json()["errors"] == [{"path": "fallback.models[0]", "message": "unknown model"}]
    assert primary.calls == []


# ---------------------------------------------------------------- parallel


def _no_racers_left(timeout: float = 2.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not [t for t in threading.enumerate() if t.name.startswith("llmgw-fallback")]:
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "buffered"])
def test_parallel_keeps_the_first_to_answer_and_cancels_the_loser(api, fakes, stream):
    primary, backup = fakes
    # the primary sends headers and its role chunk at once, then nothing: its upstream response
    # is open when the backup wins, and must be closed by the cancel
    primary.enqueue("POST", "/v1/chat/completions", Reply(200, chunks=stream_chunks(), headers=SSE, stall_after=1, stall_s=10))
    backup.enqueue("POST", "/v1/chat/completions", Reply(200, chunks=render_stream(Script(text="fast backup"), "gpt-fake-backup"),
                                                         headers=SSE, delay_s=0.1))
    resp, elapsed = chat(api, stream=stream, fallback=True, strategy="parallel", timeout={"ttft_ms": 3000, "total_ms": 5000})
    assert resp.status == 200 and elapsed < 1.5
    assert resp.headers["x-llmgw-provider"] == "backup"
    assert len(primary.calls) == 1 and len(backup.calls) == 1
    assert _no_racers_left(), "the losing attempt's thread is still running"
    rec = last_record()
    assert rec["model"] == BACKUP and rec["fallback_used"] is True and rec["attempt_errors"] == f"{PRIMARY}=cancelled"


def test_parallel_primary_winning_is_not_a_fallback(api, fakes):
    primary, backup = fakes
    backup.enqueue("POST", "/v1/chat/completions", Reply(200, chunks=stream_chunks(), headers=SSE, delay_s=2))
    resp, elapsed = chat(api, stream=True, fallback=True, strategy="parallel")
    assert resp.status == 200 and elapsed < 1.0
    assert resp.headers["x-llmgw-provider"] == "openai" and resp.headers["x-llmgw-fallback-used"] == "false"
    assert _no_racers_left()


def test_parallel_all_failing(api, fakes):
    primary, backup = fakes
    primary.enqueue("POST", "/v1/chat/completions", FAULTS["stall_first_byte"]())
    backup.enqueue("POST", "/v1/chat/completions", FAULTS["http_500"]())
    resp, elapsed = chat(api, stream=True, fallback=True, strategy="parallel")
    assert elapsed <= TOTAL_MS / 1000 + SLACK_S
    problem = resp.json()
    assert resp.status == 502 and problem["code"] == "provider_error" and problem["provider"] == "backup"
    assert {(a["model"], a.get("timeout")) for a in problem["attempts"]} == {(PRIMARY, "ttft"), (BACKUP, None)}


# ---------------------------------------------------------------- circuit breaker


def new_outbound() -> None:
    """A new outbound client (it reads the breaker settings) and adapters that use it."""
    from llm_gateway.outbound.client import set_outbound
    from llm_gateway.providers import reset_adapters

    set_outbound(None)
    reset_adapters()


def test_open_circuit_fails_fast_and_fallback_takes_over(api, fakes, monkeypatch):
    monkeypatch.setenv("LLMGW_BREAKER_FAILURES", "2")
    monkeypatch.setenv("LLMGW_BREAKER_COOLDOWN_S", "60")
    new_outbound()
    primary, backup = fakes
    for _ in range(2):
        primary.enqueue("POST", "/v1/chat/completions", FAULTS["http_500"]())
        assert api.chat({"model": PRIMARY, "messages": [user("x")]}).status == 502
    assert len(primary.calls) == 2
    resp = api.chat({"model": PRIMARY, "messages": [user("x")]})
    assert resp.status == 502 and "circuit open" in resp.json()["detail"] and resp.json()["circuit"] == "open"
    assert len(primary.calls) == 2  # failed fast: the provider was not called
    resp, elapsed = chat(api, stream=True, fallback=True)
    assert resp.status == 200 and resp.headers["x-llmgw-provider"] == "backup" and elapsed < 0.5
    assert len(primary.calls) == 2
    rec = last_record()
    assert rec["attempt_errors"] == f"{PRIMARY}=provider_error"


def test_429_does_not_open_the_circuit(api, fakes, monkeypatch):
    monkeypatch.setenv("LLMGW_BREAKER_FAILURES", "1")
    new_outbound()
    primary, _ = fakes
    primary.enqueue("POST", "/v1/chat/completions", FAULTS["http_429"](), FAULTS["http_429"]())
    assert api.chat({"model": PRIMARY, "messages": [user("x")]}).status == 429
    assert api.chat({"model": PRIMARY, "messages": [user("x")]}).status == 429
    assert api.chat({"model": PRIMARY, "messages": [user("x")]}).status == 200
    assert len(primary.calls) == 3
