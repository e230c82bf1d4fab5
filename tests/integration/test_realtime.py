"""Realtime voice sessions over a real WebSocket: the local server (uvicorn in a thread, embedded
moto, `ws://…/realtime` running `functions/realtime/handler.py` with the local `@connections`
emulation), a `websockets` client, the mock provider's speech chain and a fake OpenAI Realtime
server on loopback."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.conftest import DEV_API_KEY
from tests.fakes.openai_realtime import FakeOpenAIRealtime
from tests.local_support import embedded_aws, serve

FRAME = 32 * 1024
AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}
FAKE_KEY_ENV = "FAKE_OPENAI_REALTIME_KEY"


@pytest.fixture(scope="module")
def gateway():
    """The local gateway on loopback with an embedded moto: its ws:// base URL."""
    with embedded_aws():
        from llm_gateway.local.server import LocalGateway

        with serve(LocalGateway()) as url:
            yield "ws://" + url.removeprefix("http://")


@pytest.fixture
def fake(gateway, monkeypatch, use_catalog):
    """A fake OpenAI Realtime server, and a catalog whose `openai` provider points at it."""
    from llm_gateway.registry.catalog import DEFAULT_CATALOG

    with FakeOpenAIRealtime() as server:
        monkeypatch.setenv(FAKE_KEY_ENV, server.api_key)
        data = json.loads(DEFAULT_CATALOG.read_text())
        for p in data["providers"]:
            if p["id"] == "openai":
                p["base_url"] = server.base_url
                p["credential"] = {"env": FAKE_KEY_ENV}
        use_catalog(data["providers"], data["models"])
        yield server


class Client:
    """A websockets client that keeps every server event (and checks each fits one frame)."""

    def __init__(self, url: str, **kw: Any) -> None:
        self.ws = connect(url, **kw)
        self.events: list[dict[str, Any]] = []

    def send(self, event: dict[str, Any]) -> None:
        self.ws.send(json.dumps(event))

    def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        raw = self.ws.recv(timeout=timeout)
        assert len(raw.encode("utf-8") if isinstance(raw, str) else raw) <= FRAME, "a server event larger than a frame"
        event = json.loads(raw)
        self.events.append(event)
        return event

    def until(self, kind: str, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Events up to and including the first of `kind`."""
        out = []
        end = time.monotonic() + timeout
        while True:
            event = self.recv(max(0.1, end - time.monotonic()))
            out.append(event)
            if event["type"] == kind:
                return out

    def append(self, audio: bytes, piece: int = 16_000) -> None:
        for i in range(0, len(audio), piece):
            self.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(audio[i:i + piece]).decode()})

    def close(self) -> None:
        self.ws.close()


def open_session(gateway: str, model: str = "mock::realtime", **session: Any) -> Client:
    c = Client(f"{gateway}/realtime?model={model}", additional_headers=AUTH)
    created = c.recv()
    assert created["type"] == "session.created"
    assert created["session"]["model"] == model
    if session:
        c.send({"type": "session.update", "session": session})
        updated = c.recv()
        assert updated["type"] == "session.updated", updated
        for k, v in session.items():
            assert updated["session"][k] == v
    return c


def turn(c: Client, audio: bytes) -> list[dict[str, Any]]:
    c.append(audio)
    c.send({"type": "input_audio_buffer.commit"})
    c.send({"type": "response.create"})
    return c.until("response.done")


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def audio_of(events: list[dict[str, Any]]) -> bytes:
    return b"".join(base64.b64decode(e["delta"]) for e in of(events, "response.audio.delta"))


def transcript_of(events: list[dict[str, Any]]) -> str:
    return "".join(e["delta"] for e in of(events, "response.audio_transcript.delta"))


def close_session(c: Client) -> dict[str, Any]:
    c.send({"type": "session.close"})
    closed = c.until("session.closed")[-1]
    with pytest.raises(ConnectionClosed) as info:
        c.recv(timeout=5)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1000
    return closed


def turn_records(session_id: str, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    from llm_gateway.stores.usage import UsageStore

    end = time.monotonic() + timeout
    while True:
        found = [r for r in UsageStore().list_for_tenant("dev-tenant", limit=500)
                 if r.get("route") == "realtime" and r.get("conversation_id") == session_id]
        if len(found) >= n or time.monotonic() > end:
            return sorted(found, key=lambda r: r["sk"])
        time.sleep(0.05)


def session_summary(session_id: str, timeout: float = 5.0) -> dict[str, Any]:
    from llm_gateway.stores.usage import UsageStore

    end = time.monotonic() + timeout
    while True:
        found = [r for r in UsageStore().list_sessions("dev-tenant") if r.get("session_id") == session_id]
        if found or time.monotonic() > end:
            assert found, f"no usage summary for {session_id}"
            return found[0]
        time.sleep(0.05)


# ---------------------------------------------------------------- two-turn conversations


def test_two_turn_voice_conversation_with_the_mock(gateway):
    """WAV in (mock speech, its text read back by the mock STT), PCM16 out, usage at close."""
    from llm_gateway.media import samples
    from llm_gateway.realtime.audio import wav_pcm

    c = open_session(gateway, input_audio_format="wav", instructions="Answer briefly.")
    said = ["Hello gateway, can you hear me?", "Tell me about realtime audio"]
    turns = [turn(c, samples.speech_wav(text)) for text in said]
    for text, events in zip(said, turns):
        kinds = [e["type"] for e in events]
        assert kinds[:2] == ["input_audio_buffer.committed", "response.created"]
        heard = of(events, "conversation.item.input_audio_transcription.completed")
        assert heard and heard[0]["transcript"] == text
        assert heard[0]["item_id"] == events[0]["item_id"]  # the committed item's transcript
        assert transcript_of(events) == f"You said: {text}"
        # the answer is real speech: the mock TTS's WAV, as pcm16 24 kHz (3x its 8 kHz samples)
        pcm, rate = wav_pcm(samples.speech_wav(f"You said: {text}"))
        assert rate == 8000 and len(audio_of(events)) == 3 * len(pcm)
        done = events[-1]["response"]
        assert done["status"] == "completed" and done["output"][0]["content"][0]["transcript"] == f"You said: {text}"
        usage = done["usage"]
        assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
        assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
        assert usage["audio_in_seconds"] > 0 and usage["audio_out_seconds"] > 0 and usage["cost_usd"] > 0
        assert kinds.index("response.audio_transcript.delta") < kinds.index("response.done")
    closed = close_session(c)
    summary = closed["usage"]
    dones = [t[-1]["response"]["usage"] for t in turns]
    assert summary["turns"] == 2 and summary["turns_completed"] == 2
    assert summary["input_tokens"] == sum(u["input_tokens"] for u in dones)
    assert summary["output_tokens"] == sum(u["output_tokens"] for u in dones)
    assert summary["cost_usd"] == pytest.approx(sum(u["cost_usd"] for u in dones))
    sid = closed["session_id"]
    records = turn_records(sid, 2)
    assert len(records) == 2 and all(r["outcome"] == "ok" and r["model"] == "mock::realtime" for r in records)
    assert sum(int(r["input_tokens"]) for r in records) == summary["input_tokens"]
    stored = session_summary(sid)
    assert stored["route"] == "realtime" and int(stored["turns"]) == 2 and stored["reason"] == "client_close"
    assert int(stored["input_tokens"]) == summary["input_tokens"]


def test_two_turn_voice_conversation_with_openai_realtime(gateway, fake):
    """PCM16 both ways through a provider socket per turn; the second socket is told the first turn."""
    from tests.fakes.openai_realtime import tone_pcm16

    c = open_session(gateway, "openai::gpt-4o-realtime-preview", instructions="Be kind.", voice="verse")
    speech = tone_pcm16(0.4, freq=440)
    turns = [turn(c, speech), turn(c, speech)]
    assert len(fake.connections) == 2
    for i, (events, conn) in enumerate(zip(turns, fake.connections), 1):
        assert conn.path == "/v1/realtime?model=gpt-4o-realtime-preview"
        assert conn.headers["authorization"] == f"Bearer {fake.api_key}" and conn.headers["openai-beta"] == "realtime=v1"
        update = conn.of("session.update")[0]["session"]
        assert update["instructions"] == "Be kind." and update["voice"] == "verse" and update["turn_detection"] is None
        assert update["input_audio_format"] == update["output_audio_format"] == "pcm16"
        sent = b"".join(base64.b64decode(e["audio"]) for e in conn.of("input_audio_buffer.append"))
        assert sent == speech
        assert [e["type"] for e in conn.events][-2:] == ["input_audio_buffer.commit", "response.create"]
        assert audio_of(events) == tone_pcm16(fake.audio_seconds)
        assert transcript_of(events) == fake.reply
        heard = of(events, "conversation.item.input_audio_transcription.completed")
        assert heard[0]["transcript"] == f"fake transcript {i} ({len(speech)} bytes)"
        done = events[-1]["response"]
        assert done["status"] == "completed"
        assert done["usage"]["input_token_details"]["audio_tokens"] == len(speech) // 480
        assert done["usage"]["output_token_details"]["audio_tokens"] == fake.deltas * 10
    # the second socket was told the first turn, as text
    items = fake.connections[1].of("conversation.item.create")
    assert [(i["item"]["role"], i["item"]["content"][0]["text"]) for i in items] == [
        ("user", f"fake transcript 1 ({len(speech)} bytes)"), ("assistant", fake.reply)]
    assert not fake.connections[0].of("conversation.item.create")
    closed = close_session(c)
    usage = [t[-1]["response"]["usage"] for t in turns]
    assert closed["usage"]["turns"] == 2
    assert closed["usage"]["input_token_details"]["audio_tokens"] == sum(u["input_token_details"]["audio_tokens"] for u in usage)
    # audio tokens are priced at the model's audio prices (catalog: 40 / 80 USD per million)
    u = usage[0]
    expected = (u["input_token_details"]["text_tokens"] * 5 + u["input_token_details"]["audio_tokens"] * 40
                + u["output_token_details"]["text_tokens"] * 20 + u["output_token_details"]["audio_tokens"] * 80) / 1e6
    assert u["cost_usd"] == pytest.approx(expected)
    records = turn_records(closed["session_id"], 2)
    assert [r["outcome"] for r in records] == ["ok", "ok"] and records[0]["realtime_transport"] == "socket"


def test_api_key_in_the_query_string_and_g711_output(gateway, fake):
    c = Client(f"{gateway}/realtime?model=gpt-4o-realtime&api_key={DEV_API_KEY}")
    assert c.recv()["type"] == "session.created"
    c.send({"type": "session.update", "session": {"input_audio_format": "g711_ulaw", "output_audio_format": "g711_ulaw"}})
    assert c.recv()["type"] == "session.updated"
    events = turn(c, bytes([0xFF]) * 1600)
    assert fake.connections[-1].of("session.update")[0]["session"]["output_audio_format"] == "g711_ulaw"
    assert audio_of(events) == bytes([0xFF]) * int(fake.audio_seconds * 8000)
    close_session(c)


# ---------------------------------------------------------------- refusals at connect


@pytest.mark.parametrize("url, headers, status", [
    ("/realtime?model=mock::realtime", {}, 401),
    ("/realtime?model=mock::realtime", {"Authorization": "Bearer llmgw_nope0000_not-a-real-key"}, 401),
    ("/realtime?model=mock::realtime&api_key=llmgw_nope0000_not-a-real-key", {}, 401),
    ("/realtime?model=mock::echo", AUTH, 422),  # no realtime capability
    ("/realtime?model=mock::nope", AUTH, 404),
    ("/realtime", AUTH, 400),
    ("/elsewhere?model=mock::realtime", AUTH, 404),
])
def test_connect_is_refused_with_an_http_status(gateway, url, headers, status):
    with pytest.raises(InvalidStatus) as info:
        connect(gateway + url, additional_headers=headers, open_timeout=10)
    assert info.value.response.status_code == status
    if status != 404 or "model=" in url:
        body = json.loads(info.value.response.body)
        assert body["status"] == status and body["code"] and body["detail"]


# ---------------------------------------------------------------- bad input: error events, session goes on


def test_bad_events_are_error_events_and_the_session_goes_on(gateway):
    from llm_gateway.media import samples

    c = open_session(gateway)
    cases = [
        ("{not json", "invalid_json", None),
        (json.dumps([1, 2]), "invalid_json", None),
        (json.dumps({"type": "conversation.teleport"}), "unknown_event", "type"),
        (json.dumps({"type": "session.update", "session": {"voice": 7}}), "invalid_event", "session.voice"),
        (json.dumps({"type": "session.update", "session": {"tools": [{"type": "function"}]}}), "invalid_event", "session.tools"),
        (json.dumps({"type": "input_audio_buffer.append", "audio": "***"}), "invalid_audio", "audio"),
        (json.dumps({"type": "input_audio_buffer.append"}), "invalid_event", "audio"),
        # a WAV file where the session says raw pcm16
        (json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(samples.wav(0.1)).decode()}),
         "invalid_audio_format", "audio"),
        (json.dumps({"type": "input_audio_buffer.commit"}), "input_audio_buffer_commit_empty", None),
        (json.dumps({"type": "response.create"}), "no_input", None),
        (json.dumps({"type": "response.cancel", "event_id": "evt_client_7"}), "response_cancel_not_active", None),
    ]
    for raw, code, param in cases:
        c.ws.send(raw)
        err = c.recv()
        assert err["type"] == "error", (raw, err)
        assert err["error"]["code"] == code, (raw, err)
        assert err["error"]["param"] == param
        assert err["error"]["message"]
    assert c.events[-1]["error"]["event_id"] == "evt_client_7"
    c.send({"type": "ping"})
    assert c.recv()["type"] == "pong"
    # the refused WAV did not stay in the buffer: a good turn still works
    events = turn(c, bytes(4800))
    assert events[-1]["response"]["status"] == "completed"
    close_session(c)


def test_a_wav_session_refuses_raw_audio(gateway):
    c = open_session(gateway, input_audio_format="wav")
    c.append(bytes(3200))
    err = c.recv()
    assert err["error"]["code"] == "invalid_audio_format"
    close_session(c)


def test_an_oversized_message_closes_the_connection_with_1009_and_usage_is_kept(gateway):
    c = open_session(gateway)
    c.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(bytes(100_000)).decode()})  # 133 KB
    with pytest.raises(ConnectionClosed) as info:
        c.recv(timeout=5)
    assert info.value.rcvd.code == 1009
    sid = c.events[0]["session"]["id"]
    summary = session_summary(sid)
    assert summary["reason"] == "disconnect:1009"


def test_buffered_audio_per_turn_is_bounded(gateway, monkeypatch):
    from llm_gateway.config import reset_settings

    monkeypatch.setenv("LLMGW_REALTIME_MAX_TURN_AUDIO_BYTES", "20000")
    reset_settings()
    try:
        c = open_session(gateway)
        c.append(bytes(16_000))
        c.append(bytes(8_000))
        err = c.recv()
        assert err["error"]["code"] == "input_audio_buffer_full" and err["error"]["limit_bytes"] == 20000
        events = turn(c, b"")  # what fitted is still a turn
        assert events[-1]["response"]["usage"]["audio_in_seconds"] == pytest.approx(16_000 / 2 / 24000, abs=1e-3)
        close_session(c)
    finally:
        monkeypatch.delenv("LLMGW_REALTIME_MAX_TURN_AUDIO_BYTES")
        reset_settings()


def test_response_create_without_commit_commits_and_a_late_commit_is_acknowledged(gateway):
    c = open_session(gateway)
    c.append(bytes(4800))
    c.send({"type": "response.create"})
    events = c.until("response.done")
    assert events[-1]["response"]["status"] == "completed"
    c.send({"type": "input_audio_buffer.commit"})  # arrived "late": acknowledged, not refused
    ack = c.recv()
    assert ack["type"] == "input_audio_buffer.committed"
    c.send({"type": "input_audio_buffer.commit"})
    assert c.recv()["error"]["code"] == "input_audio_buffer_commit_empty"
    close_session(c)


def test_turn_detection_create_response_starts_the_turn_on_commit(gateway):
    c = open_session(gateway, turn_detection={"type": "server_vad", "create_response": True})
    c.append(bytes(4800))
    c.send({"type": "input_audio_buffer.commit"})
    events = c.until("response.done")
    assert [e["type"] for e in events][:2] == ["input_audio_buffer.committed", "response.created"]
    close_session(c)


# ---------------------------------------------------------------- one turn at a time, cancel, faults


def test_one_turn_at_a_time_and_cancel(gateway, fake):
    from tests.fakes.openai_realtime import tone_pcm16

    fake.deltas, fake.delta_delay_s = 40, 0.05
    c = open_session(gateway, "openai::gpt-4o-realtime-preview")
    c.append(tone_pcm16(0.2))
    c.send({"type": "input_audio_buffer.commit"})
    c.send({"type": "response.create"})
    c.until("response.audio.delta")
    c.append(tone_pcm16(0.2))
    c.send({"type": "input_audio_buffer.commit"})  # allowed: it waits for the next response
    c.send({"type": "response.create"})
    events = c.until("error")
    assert events[-1]["error"]["code"] == "conversation_already_has_active_response"
    c.send({"type": "response.cancel"})
    events = c.until("response.done")
    done = events[-1]["response"]
    assert done["status"] == "cancelled" and done["status_details"]["reason"] == "client_cancelled"
    assert done["usage"]["output_tokens"] > 0  # what was generated before the cancel is counted
    assert fake.connections[0].of("response.cancel")
    fake.deltas, fake.delta_delay_s = 3, 0.0
    c.send({"type": "response.create"})  # the audio committed during the first turn
    assert c.until("response.done")[-1]["response"]["status"] == "completed"
    closed = close_session(c)
    assert closed["usage"]["turns_cancelled"] == 1 and closed["usage"]["turns_completed"] == 1
    records = turn_records(closed["session_id"], 2)
    assert sorted(r["outcome"] for r in records) == ["cancelled", "ok"]


@pytest.mark.parametrize("fault, message", [
    ({"drop_after": 2}, "closed in the middle of the turn"),
    ({"error_after": 1}, "fake_failure"),
    ({"fail_response": True}, "failed the response"),
    ({"reject_status": 503}, "refused the connection"),
])
def test_provider_faults_are_error_events_with_usage_and_the_session_survives(gateway, fake, fault, message):
    from tests.fakes.openai_realtime import tone_pcm16

    c = open_session(gateway, "openai::gpt-4o-realtime-preview")
    for k, v in fault.items():
        setattr(fake, k, v)
    events = turn(c, tone_pcm16(0.3))
    err = of(events, "error")
    assert err and err[0]["error"]["code"] == "provider_error" and message in err[0]["error"]["message"]
    done = events[-1]["response"]
    assert done["status"] == "failed" and done["status_details"]["error"]["code"] == "provider_error"
    if "drop_after" in fault:  # no usage from the provider: estimated from what was seen
        assert done["usage"]["estimated"] is True and done["usage"]["input_token_details"]["audio_tokens"] == 3
    for k in fault:
        setattr(fake, k, None if k != "fail_response" else False)
    assert turn(c, tone_pcm16(0.3))[-1]["response"]["status"] == "completed"
    closed = close_session(c)
    assert closed["usage"]["turns_failed"] == 1 and closed["usage"]["turns_completed"] == 1
    records = turn_records(closed["session_id"], 2)
    assert sorted((r["outcome"], r.get("error_code")) for r in records) == [("error", "provider_error"), ("ok", None)]


def test_a_client_that_vanishes_mid_turn_stops_the_provider_and_usage_is_recorded(gateway, fake):
    from tests.fakes.openai_realtime import tone_pcm16

    fake.deltas, fake.delta_delay_s = 60, 0.05
    c = open_session(gateway, "openai::gpt-4o-realtime-preview")
    sid = c.events[0]["session"]["id"]
    c.append(tone_pcm16(0.2))
    c.send({"type": "input_audio_buffer.commit"})
    c.send({"type": "response.create"})
    c.until("response.audio.delta")
    c.ws.socket.shutdown(2)  # gone, no close frame
    c.ws.socket.close()
    summary = session_summary(sid, timeout=10)
    assert summary["reason"].startswith("disconnect")
    records = turn_records(sid, 1, timeout=10)
    assert records and records[0]["outcome"] == "cancelled" and int(records[0]["output_tokens"]) > 0
    assert fake.turns == 1 and len(fake.first_delta_times) == 1
    end = time.monotonic() + 5  # the provider was told to stop (or its socket closed) long before 60 deltas
    while time.monotonic() < end and not fake.connections[0].of("response.cancel"):
        time.sleep(0.05)
    assert fake.connections[0].of("response.cancel")


def test_idle_connections_are_closed_and_pings_keep_them_open(gateway, monkeypatch):
    from llm_gateway.config import reset_settings

    monkeypatch.setenv("LLMGW_REALTIME_IDLE_S", "2")
    reset_settings()
    try:
        kept = open_session(gateway)
        idle = open_session(gateway)
        end = time.monotonic() + 3.5
        while time.monotonic() < end:
            kept.send({"type": "ping"})
            assert kept.recv()["type"] == "pong"
            time.sleep(0.5)
        with pytest.raises(ConnectionClosed) as info:
            idle.recv(timeout=5)
        assert info.value.rcvd.code == 1001
        assert session_summary(idle.events[0]["session"]["id"])["reason"] == "disconnect:1001"
        kept.send({"type": "ping"})
        assert kept.recv()["type"] == "pong"
        close_session(kept)
    finally:
        monkeypatch.delenv("LLMGW_REALTIME_IDLE_S")
        reset_settings()


def test_sessions_end_at_the_maximum_duration(gateway, monkeypatch):
    from llm_gateway.config import reset_settings

    monkeypatch.setenv("LLMGW_REALTIME_MAX_S", "2")
    reset_settings()
    try:
        c = open_session(gateway)
        assert c.events[0]["session"]["expires_at"] - time.time() <= 2
        with pytest.raises(ConnectionClosed) as info:
            while True:
                c.recv(timeout=6)
        assert info.value.rcvd.code == 1001
        assert session_summary(c.events[0]["session"]["id"])["reason"] == "disconnect:1001"
    finally:
        monkeypatch.delenv("LLMGW_REALTIME_MAX_S")
        reset_settings()


def test_text_only_sessions_and_per_response_overrides(gateway):
    from llm_gateway.media import samples

    c = open_session(gateway, modalities=["text"], input_audio_format="wav")
    events = turn(c, samples.speech_wav("just text please"))
    assert not of(events, "response.audio.delta")
    assert "".join(e["delta"] for e in of(events, "response.text.delta")) == "You said: just text please"
    assert of(events, "response.text.done")[0]["text"] == "You said: just text please"
    assert events[-1]["response"]["output"][0]["content"][0] == {"type": "text", "text": "You said: just text please"}
    # one response with audio, in a wav container, without changing the session
    c.append(samples.speech_wav("and now speak"))
    c.send({"type": "response.create", "response": {"modalities": ["audio", "text"], "output_audio_format": "wav"}})
    events = c.until("response.done")
    wav = audio_of(events)
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    c.send({"type": "response.create", "response": {"voice": 3}})
    err = c.until("error")[-1]["error"]
    assert err["code"] == "invalid_event" and err["param"] == "response.voice"
    close_session(c)
