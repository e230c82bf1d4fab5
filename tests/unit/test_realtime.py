"""The realtime Lambda handler with API Gateway WebSocket events and moto (`aws` fixture), and the
realtime building blocks (audio formats, protocol, sender). `@connections` posts are collected by
the local emulation's registry (moto's backend patched by `llm_gateway.local.realtime.install`)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from tests.conftest import DEV_API_KEY, DEV_TENANT

DOMAIN = "abc123def4.execute-api.us-east-1.amazonaws.com"
STAGE = "prod"
CONN = "TestConnId0001A"


def ws_event(route: str, conn: str = CONN, *, body: str | None = None, headers: dict[str, str] | None = None,
             query: dict[str, str] | None = None, authorizer: dict[str, Any] | None = None, close_code: int = 1000) -> dict[str, Any]:
    kind = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")
    rc: dict[str, Any] = {"routeKey": route, "eventType": kind, "connectionId": conn, "domainName": DOMAIN, "stage": STAGE,
                          "apiId": "abc123def4", "requestId": "req-" + route, "connectedAt": int(time.time() * 1000),
                          "messageDirection": "IN", "identity": {"sourceIp": "203.0.113.7"}}
    if authorizer is not None:
        rc["authorizer"] = authorizer
    event: dict[str, Any] = {"requestContext": rc, "isBase64Encoded": False}
    if kind == "CONNECT":
        event["headers"] = headers or {}
        if query:
            event["queryStringParameters"] = query
    elif kind == "MESSAGE":
        event["body"] = body
    else:
        rc["disconnectStatusCode"] = close_code
    return event


class Ctx:
    function_name = "realtime"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:realtime"
    aws_request_id = "00000000-0000-4000-8000-000000000001"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 29_000


@pytest.fixture
def rt(aws, monkeypatch):
    """The handler, a collector for what is posted to `CONN`, and tasks run inline."""
    import importlib

    from llm_gateway.local import realtime as local
    from llm_gateway.realtime import launch

    local.install()
    handler = importlib.import_module("functions.realtime.handler").lambda_handler
    launched: list[dict[str, Any]] = []

    def inline(payload: dict[str, Any]) -> None:
        launched.append(payload)
        handler(payload, Ctx())

    monkeypatch.setattr(launch, "launch", inline)
    sent: list[dict[str, Any]] = []
    local.connections.register(CONN, sink=lambda data: sent.append(json.loads(data)))

    class RT:
        def __init__(self) -> None:
            self.sent = sent
            self.launched = launched

        def call(self, event: dict[str, Any]) -> dict[str, Any]:
            return handler(event, Ctx())

        def connect(self, model: str = "mock::realtime", **kw: Any) -> dict[str, Any]:
            kw.setdefault("headers", {"Authorization": f"Bearer {DEV_API_KEY}"})
            return self.call(ws_event("$connect", query={"model": model, **kw.pop("query", {})}, **kw))

        def send(self, event: dict[str, Any] | str) -> None:
            self.call(ws_event("$default", body=event if isinstance(event, str) else json.dumps(event)))

        def kinds(self) -> list[str]:
            return [e["type"] for e in self.sent]

    yield RT()
    local.connections.remove(CONN)


def meta_item(conn: str = CONN) -> dict[str, Any] | None:
    from llm_gateway.stores.sessions import SessionStore

    return SessionStore().get(conn)


# ---------------------------------------------------------------- $connect


def test_connect_creates_the_session_with_a_ttl_and_greets(rt):
    assert rt.connect()["statusCode"] == 200
    meta = meta_item()
    assert meta["tenant_id"] == DEV_TENANT and meta["model"] == "mock::realtime"
    assert meta["ttl"] == int(meta["expires_at"]) + 3600
    assert meta["expires_at"] - meta["connected_at"] == pytest.approx(7200)
    assert meta["endpoint"] == f"https://{DOMAIN}/{STAGE}"
    assert rt.kinds() == ["session.created"]
    session = rt.sent[0]["session"]
    assert session["id"] == meta["session_id"] and session["input_audio_format"] == "pcm16" and session["voice"]


def test_connect_with_an_authorizer_context_needs_no_key(rt):
    ctx = {"principalId": "u", "tenant_id": DEV_TENANT, "user_id": "from-authorizer", "key_id": "k1"}
    assert rt.connect(headers={}, authorizer=ctx)["statusCode"] == 200
    assert meta_item()["user_id"] == "from-authorizer"


def test_connect_refusals_are_problem_answers(rt):
    from llm_gateway.stores.keys import ApiKeyStore
    from llm_gateway.stores.tenants import TenantConfig, TenantStore

    cases = [({"headers": {}}, "mock::realtime", 401, "unauthorized"),
             ({"query": {"api_key": "llmgw_bad00000_nope-nope-nope"}, "headers": {}}, "mock::realtime", 401, "unauthorized"),
             ({}, "mock::echo", 422, "capability_not_supported"),
             ({}, "mock::old", 410, "model_deprecated"),
             ({}, "", 400, "validation_error")]
    ApiKeyStore().put("llmgw_models00_only-the-models-scope-key", DEV_TENANT, "u2", key_id="models00", scopes=["models"])
    cases.append(({"headers": {"Authorization": "Bearer llmgw_models00_only-the-models-scope-key"}}, "mock::realtime", 403, "forbidden"))
    TenantStore().put(TenantConfig.from_dict("acme", {"approved_models": ["mock::echo"]}))
    ApiKeyStore().put("llmgw_acme0000_acme-key-for-realtime-tests", "acme", "u3", key_id="acme0000")
    cases.append(({"headers": {"x-api-key": "llmgw_acme0000_acme-key-for-realtime-tests"}}, "mock::realtime", 403, "model_not_approved"))
    for kw, model, status, code in cases:
        old = meta_item()
        result = rt.call(ws_event("$connect", query={"model": model, **kw.get("query", {})} if model else kw.get("query", {}),
                                  headers=kw.get("headers", {"Authorization": f"Bearer {DEV_API_KEY}"})))
        assert result["statusCode"] == status, (kw, model, result)
        body = json.loads(result["body"])
        assert body["code"] == code and body["detail"]
        assert meta_item() == old  # nothing stored
    assert rt.sent == []


# ---------------------------------------------------------------- a turn, end to end in-process


def test_a_turn_and_the_close_record_usage_and_clean_up(rt):
    from llm_gateway.media import samples
    from llm_gateway.stores.sessions import SessionStore
    from llm_gateway.stores.usage import UsageStore

    rt.connect()
    rt.send({"type": "session.update", "session": {"input_audio_format": "wav", "output_audio_format": "wav",
                                                    "modalities": ["audio", "text"]}})
    wav = samples.speech_wav("Is anyone there")
    for i in range(0, len(wav), 10_000):
        rt.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(wav[i:i + 10_000]).decode()})
    rt.send({"type": "input_audio_buffer.commit", "event_id": "c1"})
    rt.send({"type": "response.create"})
    kinds = rt.kinds()
    assert kinds[:3] == ["session.created", "session.updated", "input_audio_buffer.committed"]
    assert kinds[3:5] == ["response.created", "conversation.item.input_audio_transcription.completed"]
    assert kinds[-3:] == ["response.audio.done", "response.audio_transcript.done", "response.done"]
    audio = b"".join(base64.b64decode(e["delta"]) for e in rt.sent if e["type"] == "response.audio.delta")
    assert audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"  # output_audio_format wav: the TTS file itself
    done = rt.sent[-1]["response"]
    assert done["status"] == "completed" and done["output"][0]["content"][0]["transcript"] == "You said: Is anyone there"
    [turn] = [p for p in rt.launched if p["realtime_task"] == "turn"]
    meta = meta_item()
    assert meta.get("active_turn") is None and meta["u_turns_ok"] == 1
    assert meta["u_input_tokens"] == done["usage"]["input_tokens"]
    assert SessionStore().history(CONN) == [{"role": "user", "text": "Is anyone there"},
                                            {"role": "assistant", "text": "You said: Is anyone there"}]
    assert SessionStore().read_audio(CONN, 0, 10) == b""  # the turn's audio is deleted after it ran
    [record] = [r for r in UsageStore().list_for_tenant(DEV_TENANT) if r.get("route") == "realtime"]
    assert record["conversation_id"] == meta["session_id"] and record["response_id"] == turn["turn_id"]
    assert record["outcome"] == "ok" and int(record["input_tokens"]) == done["usage"]["input_tokens"]
    rt.call(ws_event("$disconnect", close_code=1001))
    meta = meta_item()
    assert meta["closed_at"] and meta["close_reason"] == "disconnect:1001"
    assert SessionStore().history(CONN) == []
    [summary] = UsageStore().list_sessions(DEV_TENANT)
    assert summary["session_id"] == meta["session_id"] and summary["turns"] == "1" and summary["route"] == "realtime"
    rt.call(ws_event("$disconnect"))  # a second close changes nothing
    assert len(UsageStore().list_sessions(DEV_TENANT)) == 1
    rt.send({"type": "ping"})
    rt.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\0\0").decode()})
    assert rt.sent[-1]["error"]["code"] == "session_closed"


def test_rate_limits_apply_per_turn_and_refused_turns_are_recorded(rt):
    from llm_gateway.stores.tenants import TenantConfig, TenantStore
    from llm_gateway.stores.usage import UsageStore

    TenantStore().put(TenantConfig.from_dict(DEV_TENANT, {"approved_models": ["*"], "limits": {"user": {"rpm": 1}}}))
    from llm_gateway.pipeline.governance import reset_governance

    reset_governance()
    rt.connect()
    for _ in range(2):
        rt.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(4800)).decode()})
        rt.send({"type": "input_audio_buffer.commit"})
        rt.send({"type": "response.create"})
    dones = [e["response"] for e in rt.sent if e["type"] == "response.done"]
    assert [d["status"] for d in dones] == ["completed", "failed"]
    err = [e for e in rt.sent if e["type"] == "error"][0]["error"]
    assert err["code"] == "rate_limited" and err["type"] == "rate_limit_error" and err["retry_after_s"] >= 1
    records = [r for r in UsageStore().list_for_tenant(DEV_TENANT) if r.get("route") == "realtime"]
    assert sorted((r["outcome"], r.get("error_code")) for r in records) == [("error", "rate_limited"), ("ok", None)]


def test_an_expired_session_is_closed_with_an_error(rt):
    from llm_gateway.stores.aws import client
    from llm_gateway.stores.usage import UsageStore

    rt.connect()
    client("dynamodb").update_item(TableName="llmgw-sessions", Key={"pk": {"S": f"C#{CONN}"}, "sk": {"S": "META"}},
                                   UpdateExpression="SET expires_at = :t", ExpressionAttributeValues={":t": {"N": str(time.time() - 1)}})
    rt.send({"type": "session.update", "session": {"voice": "ash"}})
    assert rt.kinds()[-2:] == ["error", "session.closed"]
    assert rt.sent[-2]["error"]["code"] == "session_expired"
    assert rt.sent[-1]["reason"] == "max_duration"
    [summary] = UsageStore().list_sessions(DEV_TENANT)
    assert summary["reason"] == "max_duration"


def test_routes_launch_the_worker_function_asynchronously_on_aws(aws, monkeypatch):
    import importlib

    from llm_gateway.config import reset_settings
    from llm_gateway.realtime import launch
    from llm_gateway.stores import sessions

    monkeypatch.setenv("LLMGW_REALTIME_WORKER", "lambda")
    monkeypatch.setenv("LLMGW_REALTIME_WORKER_FUNCTION", "llmgw-realtime-worker-test")
    reset_settings()
    calls: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(sessions, "invoke_worker", lambda fn, payload: calls.append((fn, payload)))
    importlib.reload(launch)  # not the inline fixture: the real launcher
    handler = importlib.import_module("functions.realtime.handler").lambda_handler
    assert handler(ws_event("$connect", query={"model": "mock::realtime"},
                            headers={"Authorization": f"Bearer {DEV_API_KEY}"}), Ctx())["statusCode"] == 200
    assert calls == [("llmgw-realtime-worker-test", {"realtime_task": "greet", "connection_id": CONN,
                                                      "endpoint": f"https://{DOMAIN}/{STAGE}"})]
    assert handler({"realtime_task": "bogus"}, Ctx()) == {"ok": False, "error": "unknown task"}


def test_invoke_worker_is_an_event_invocation(monkeypatch):
    from llm_gateway.stores import sessions

    seen: dict[str, Any] = {}

    class FakeLambda:
        def invoke(self, **kw: Any) -> dict[str, Any]:
            seen.update(kw)
            return {"StatusCode": 202}

    monkeypatch.setattr(sessions, "client", lambda name: FakeLambda())
    sessions.invoke_worker("fn", {"realtime_task": "turn", "x": 1})
    assert seen["InvocationType"] == "Event" and seen["FunctionName"] == "fn"
    assert json.loads(seen["Payload"]) == {"realtime_task": "turn", "x": 1}


# ---------------------------------------------------------------- audio formats


def test_g711_round_trips_within_quantization():
    from array import array

    from llm_gateway.realtime import audio as au

    pcm = array("h", [0, 100, -100, 1000, -1000, 8000, -8000, 32000, -32000]).tobytes()
    for alaw in (False, True):
        back = array("h", au.g711_decode(au.g711_encode(pcm, alaw), alaw))
        for a, b in zip(array("h", pcm), back):
            assert abs(a - b) <= max(16, abs(a) // 16)


def test_resampler_is_continuous_across_chunks():
    from llm_gateway.realtime import audio as au
    from tests.fakes.openai_realtime import tone_pcm16

    pcm = tone_pcm16(0.3, rate=16000)
    for src, dst in ((16000, 24000), (24000, 8000), (8000, 24000), (44100, 24000)):
        whole = au.resample(pcm, src, dst)
        r = au.Resampler(src, dst)
        pieces = b"".join(r.feed(pcm[i:i + 777]) for i in range(0, len(pcm), 777))
        assert pieces == whole
        assert abs(len(whole) // 2 - len(pcm) // 2 * dst / src) <= 2


def test_wav_stream_reader_matches_the_whole_file_and_checks_it():
    from llm_gateway.media import samples
    from llm_gateway.realtime import audio as au

    wav = samples.speech_wav("one two three")
    pcm, rate = au.wav_pcm(wav)
    reader = au.WavStreamReader()
    out = b"".join(reader.feed(wav[i:i + 5]) for i in range(0, len(wav), 5))
    assert out == pcm and reader.rate == rate  # the LIST/INFO chunk after the data is not audio
    with pytest.raises(au.AudioFormatError):
        au.WavStreamReader().feed(b"OggS" + bytes(40))
    with pytest.raises(au.AudioFormatError):
        au.to_pcm16(b"\0\0\0", "pcm16")
    enc = au.PcmEncoder("wav", 8000)
    first = enc.feed(pcm[:100])
    import struct

    assert first[:4] == b"RIFF" and first[36:40] == b"data" and struct.unpack("<I", first[24:28])[0] == 8000
    assert first[44:] == pcm[:100] and enc.feed(pcm[100:200]) == pcm[100:200]  # the header once
    assert au.sniff_container(wav[:16]) == "a WAV (RIFF) file" and au.sniff_container(bytes(16)) is None


# ---------------------------------------------------------------- protocol and sender


def test_session_config_is_validated_field_by_field():
    from llm_gateway.realtime.protocol import DEFAULT_CONFIG, ProtocolError, merge_config

    ok = merge_config(DEFAULT_CONFIG, {"modalities": ["text"], "temperature": 0.6, "max_response_output_tokens": 200,
                                       "input_audio_format": "g711_alaw", "model": "mock::realtime"}, "mock::realtime")
    assert ok["modalities"] == ["text"] and ok["input_audio_format"] == "g711_alaw"
    for bad, param in [({"modalities": []}, "session.modalities"), ({"temperature": 5}, "session.temperature"),
                       ({"output_audio_format": "mp3"}, "session.output_audio_format"), ({"model": "other::x"}, "session.model"),
                       ({"max_response_output_tokens": 0}, "session.max_response_output_tokens"), ({"colour": 1}, "session.colour"),
                       ({"turn_detection": "yes"}, "session.turn_detection")]:
        with pytest.raises(ProtocolError) as info:
            merge_config(DEFAULT_CONFIG, bad, "mock::realtime")
        assert info.value.code == "invalid_event" and info.value.param == param


def test_messages_over_128_kb_are_refused():
    from llm_gateway.realtime.protocol import ProtocolError, parse_client_event

    with pytest.raises(ProtocolError) as info:
        parse_client_event("x" * (128 * 1024 + 1))
    assert info.value.code == "message_too_large"


def test_sender_fits_every_post_in_one_frame_merges_and_stops_when_gone():
    from llm_gateway.realtime.sender import EventSender, fit
    from llm_gateway.stores.connections import ConnectionGone

    posted: list[bytes] = []

    class Conns:
        gone_after: int | None = None

        def post(self, conn: str, data: bytes) -> None:
            if self.gone_after is not None and len(posted) >= self.gone_after:
                raise ConnectionGone(conn)
            posted.append(data)

    conns = Conns()
    s = EventSender(conns, "c")
    base = {"response_id": "r", "item_id": "i", "output_index": 0, "content_index": 0}
    audio = bytes(range(256)) * 1000  # 256 000 bytes
    s.audio(base, audio)
    s.text("response.audio_transcript.delta", base, "é" * 20_000)
    assert s.flush(10)
    assert all(len(p) <= 32 * 1024 for p in posted)
    events = [json.loads(p) for p in posted]
    assert b"".join(base64.b64decode(e["delta"]) for e in events if e["type"] == "response.audio.delta") == audio
    assert "".join(e["delta"] for e in events if e["type"] == "response.audio_transcript.delta") == "é" * 20_000
    conns.gone_after = len(posted)
    s.audio(base, b"\0\0")
    s.event({"type": "response.done"})
    s.close(5)
    assert s.gone
    big = {"type": "response.done", "response": {"output": [{"content": [{"transcript": "w " * 100_000}]}]}}
    cut = fit(big)
    assert len(json.dumps(cut)) < 128 * 1024 and cut["response"]["output"][0]["content"][0]["truncated"] is True


def test_sender_posts_audio_after_the_events_queued_before_it_but_not_after_text_deltas():
    from llm_gateway.realtime.sender import EventSender

    posted: list[str] = []

    class SlowConns:  # main-lane posts take a while, as @connections does under load
        def post(self, conn: str, data: bytes) -> None:
            event = json.loads(data)
            if event["type"] == "response.audio_transcript.delta":
                time.sleep(1.0)  # far longer than the audio lane needs to wake up, even on a busy machine
            elif event["type"] != "response.audio.delta":
                time.sleep(0.05)
            posted.append(event["type"])

    s = EventSender(SlowConns(), "c")
    base = {"response_id": "r", "item_id": "i", "output_index": 0, "content_index": 0}
    s.event({"type": "response.created"})
    s.event({"type": "conversation.item.input_audio_transcription.completed"})
    s.text("response.audio_transcript.delta", base, "hello")
    s.audio(base, b"\0\0" * 10)
    assert s.flush(10)
    assert posted.index("response.audio.delta") > posted.index("conversation.item.input_audio_transcription.completed")
    assert posted.index("response.audio.delta") < posted.index("response.audio_transcript.delta")  # text never holds audio back
    s.close(5)


def test_a_turn_whose_worker_died_does_not_block_the_session(rt, monkeypatch):
    from llm_gateway.realtime import launch
    from llm_gateway.stores.aws import client

    rt.connect()
    rt.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(4800)).decode()})
    rt.send({"type": "input_audio_buffer.commit"})
    # the worker cannot be started: the client is told, the turn slot is freed
    monkeypatch.setattr(launch, "launch", lambda payload: (_ for _ in ()).throw(RuntimeError("throttled")))
    rt.send({"type": "response.create"})
    assert rt.sent[-1]["error"]["code"] == "internal_error" and "RuntimeError" in rt.sent[-1]["error"]["message"]
    assert meta_item().get("active_turn") is None
    # a turn marked running long after its worker must have ended (Lambda timeout) is replaced
    client("dynamodb").update_item(
        TableName="llmgw-sessions", Key={"pk": {"S": f"C#{CONN}"}, "sk": {"S": "META"}},
        UpdateExpression="SET active_turn = :t, active_since = :old",
        ExpressionAttributeValues={":t": {"S": "resp_dead"}, ":old": {"N": str(time.time() - 10_000)}})
    started: list[dict[str, Any]] = []
    monkeypatch.setattr(launch, "launch", started.append)
    rt.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(4800)).decode()})
    rt.send({"type": "response.create"})
    assert started and started[0]["turn_id"] != "resp_dead" and meta_item()["active_turn"] == started[0]["turn_id"]
