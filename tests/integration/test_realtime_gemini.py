"""Realtime turns on Gemini Live: the local gateway (uvicorn in a thread, embedded moto, the
`ws://…/realtime` route with its local `@connections` emulation and thread workers), a
`websockets` client, and a fake Gemini Live server on loopback (`tests/fakes/gemini_live.py`).
The last tests run the upstream alone against the fake, for what a session cannot easily ask."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.fakes.gemini_live import KEY_ENV, PATH, FakeGeminiLive, tone_pcm16
from tests.integration.test_realtime import (
    audio_of,
    close_session,
    of,
    open_session,
    session_summary,
    transcript_of,
    turn,
    turn_records,
)
from tests.local_support import embedded_aws, serve

MODEL = "gemini::gemini-2.5-flash-native-audio-preview-12-2025"
PROVIDER_MODEL = "gemini-2.5-flash-native-audio-preview-12-2025"


@pytest.fixture(scope="module")
def gateway():
    """The local gateway on loopback with an embedded moto: its ws:// base URL."""
    with embedded_aws():
        from llm_gateway.local.server import LocalGateway

        with serve(LocalGateway()) as url:
            yield "ws://" + url.removeprefix("http://")


def live_catalog(use_catalog: Any, server: FakeGeminiLive, **model_fields: Any) -> None:
    """The packaged catalog, its `gemini` provider pointed at the fake (the Live model's entry
    updated with `model_fields`)."""
    from llm_gateway.registry.catalog import DEFAULT_CATALOG

    data = json.loads(DEFAULT_CATALOG.read_text())
    for p in data["providers"]:
        if p["id"] == "gemini":
            p["base_url"] = server.base_url
            p["credential"] = {"env": KEY_ENV}
    for m in data["models"]:
        if m["id"] == MODEL:
            m.update(model_fields)
    use_catalog(data["providers"], data["models"])


@pytest.fixture
def live(gateway, monkeypatch, use_catalog):
    with FakeGeminiLive() as server:
        monkeypatch.setenv(KEY_ENV, server.api_key)
        live_catalog(use_catalog, server)
        yield server


def wait_for(check: Any, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.05)
    return True


# ---------------------------------------------------------------- a turn, end to end


def test_a_turn_on_gemini_live_end_to_end(gateway, live):
    from llm_gateway.realtime.audio import resample

    c = open_session(gateway, MODEL, instructions="Answer in one sentence.", voice="Kore")
    speech = tone_pcm16(0.6, freq=440)  # the session's pcm16: 24 kHz
    events = turn(c, speech)
    [conn] = live.connections
    # the wire: the endpoint, the key in a header (not the URL), setup first, then 16 kHz audio, then the end
    assert conn.path == PATH and conn.headers["x-goog-api-key"] == live.api_key and "key" not in conn.query
    assert list(conn.messages[0]) == ["setup"]
    setup = conn.setup
    assert setup["model"] == f"models/{PROVIDER_MODEL}"
    assert setup["systemInstruction"] == {"parts": [{"text": "Answer in one sentence."}]}
    gen = setup["generationConfig"]
    assert gen["responseModalities"] == ["AUDIO"]
    assert gen["speechConfig"] == {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Kore"}}}
    assert setup["inputAudioTranscription"] == {} and setup["outputAudioTranscription"] == {}
    assert not conn.of("clientContent")  # a first turn has no history
    assert set(conn.mime_types) == {"audio/pcm;rate=16000"}
    assert bytes(conn.audio) == resample(speech, 24000, 16000) and len(conn.audio) == len(speech) * 2 // 3
    assert conn.realtime("audioStreamEnd") == [True] and conn.messages[-1] == {"realtimeInput": {"audioStreamEnd": True}}
    assert not live.violations
    # what the client got: the fake's 24 kHz PCM unchanged, its transcript, the user's words
    kinds = [e["type"] for e in events]
    assert kinds[:2] == ["input_audio_buffer.committed", "response.created"]
    assert audio_of(events) == tone_pcm16(live.audio_seconds)
    assert transcript_of(events) == live.reply
    heard = of(events, "conversation.item.input_audio_transcription.completed")
    assert [h["transcript"] for h in heard] == [f"fake heard {len(conn.audio)} bytes"]
    assert of(events, "response.audio_transcript.done")[0]["transcript"] == live.reply
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["output"][0]["content"][0]["transcript"] == live.reply
    usage = done["usage"]
    in_text, in_audio = len("Answer in one sentence.") // 4 + 10, len(conn.audio) // 1000
    out_audio = live.deltas * 10
    assert usage["input_token_details"]["audio_tokens"] == in_audio and usage["input_token_details"]["text_tokens"] == in_text
    assert usage["output_token_details"] == {"audio_tokens": out_audio, "text_tokens": 0}
    assert usage["total_tokens"] == in_text + in_audio + out_audio and "estimated" not in usage
    assert usage["audio_in_seconds"] == pytest.approx(0.6, abs=0.01)
    assert usage["audio_out_seconds"] == pytest.approx(live.audio_seconds, abs=0.01)
    # audio tokens at the model's audio prices (catalog: 3 / 12 USD per million; text 0.50 / 2)
    assert usage["cost_usd"] == pytest.approx((in_text * 0.5 + in_audio * 3.0 + out_audio * 12.0) / 1e6)
    closed = close_session(c)
    assert closed["usage"]["turns_completed"] == 1 and closed["usage"]["input_tokens"] == usage["input_tokens"]
    [record] = turn_records(closed["session_id"], 1)
    assert record["outcome"] == "ok" and record["model"] == MODEL and record["realtime_transport"] == "socket"
    assert int(record["input_tokens"]) == usage["input_tokens"] and int(record["output_tokens"]) == usage["output_tokens"]
    assert int(record["audio_input_tokens"]) == in_audio


def test_the_second_turn_sends_the_first_as_history_and_formats_are_converted(gateway, live):
    from llm_gateway.media import samples
    from llm_gateway.realtime.audio import resample, wav_pcm

    c = open_session(gateway, MODEL, input_audio_format="wav", output_audio_format="g711_ulaw")
    wav = samples.speech_wav("Good morning")
    pcm, rate = wav_pcm(wav)
    turns = [turn(c, wav), turn(c, wav)]
    assert len(live.connections) == 2
    for events, conn in zip(turns, live.connections):
        assert bytes(conn.audio) == resample(pcm, rate, 16000)  # the WAV's own rate → 16 kHz
        assert len(audio_of(events)) == int(live.audio_seconds * 8000)  # 24 kHz PCM → G.711 at 8 kHz, a byte a sample
        assert events[-1]["response"]["status"] == "completed"
    first, second = live.connections
    assert not first.of("clientContent")
    heard = f"fake heard {len(first.audio)} bytes"
    assert second.of("clientContent") == [{"turns": [{"role": "user", "parts": [{"text": heard}]},
                                                     {"role": "model", "parts": [{"text": live.reply}]}],
                                           "turnComplete": False}]
    order = [next(iter(m)) for m in second.messages]
    assert order[:2] == ["setup", "clientContent"] and order.index("clientContent") < order.index("realtimeInput")
    assert not live.violations
    closed = close_session(c)
    assert closed["usage"]["turns_completed"] == 2


# ---------------------------------------------------------------- cancel, faults, timeouts


def test_cancel_stops_the_answer_and_its_usage_is_recorded(gateway, live):
    live.deltas, live.delta_delay_s, live.audio_seconds = 100, 0.1, 10.0  # a ten-second answer, 0.1 s of audio a delta
    c = open_session(gateway, MODEL)
    sid = c.events[0]["session"]["id"]
    c.append(tone_pcm16(0.3))
    c.send({"type": "input_audio_buffer.commit"})
    c.send({"type": "response.create"})
    c.until("response.audio.delta", timeout=30)
    c.send({"type": "response.cancel"})
    done = c.until("response.done", timeout=30)[-1]["response"]
    assert done["status"] == "cancelled" and done["status_details"]["reason"] == "client_cancelled"
    usage = done["usage"]  # no usageMetadata came before the cancel: estimated from what was sent and received
    assert usage["estimated"] is True and usage["output_tokens"] > 0 and usage["audio_out_seconds"] > 0
    assert usage["input_token_details"]["audio_tokens"] == round(0.3 * 32)
    conn = live.connections[0]
    assert wait_for(lambda: conn.stopped_early), "the provider socket was not closed"
    assert conn.deltas_sent < 100
    [record] = turn_records(sid, 1, timeout=10)
    assert record["outcome"] == "cancelled" and int(record["output_tokens"]) == usage["output_tokens"]
    live.deltas, live.delta_delay_s, live.audio_seconds = 3, 0.0, 0.5
    assert turn(c, tone_pcm16(0.2))[-1]["response"]["status"] == "completed"  # the session goes on
    closed = close_session(c)
    assert closed["usage"]["turns_cancelled"] == 1 and closed["usage"]["turns_completed"] == 1


@pytest.mark.parametrize("fault, message", [
    ({"close_after": 1, "close_code": 1011, "close_reason": "Internal error encountered (key={key})."},
     "closed the socket before the turn completed: 1011 Internal error encountered"),
    ({"error_after": 1}, "Gemini Live error (INTERNAL): The fake failed mid-turn"),
    ({"reject_status": 503}, "refused the connection: 503"),
    ({"api_key": "another-key-entirely"}, "closed the socket during the session setup: 1008 API key not valid"),
])
def test_provider_failures_are_error_events_without_the_key(gateway, live, fault, message):
    key = live.api_key
    c = open_session(gateway, MODEL)
    saved = {k: getattr(live, k) for k in fault}
    for k, v in fault.items():
        setattr(live, k, v)
    events = turn(c, tone_pcm16(0.3))
    err = of(events, "error")
    assert err and err[0]["error"]["code"] == "provider_error" and message in err[0]["error"]["message"], err
    assert err[0]["error"]["type"] == "server_error"
    assert key not in json.dumps(events)  # the fake echoed it in some cases: the gateway never passes it on
    done = events[-1]["response"]
    assert done["status"] == "failed" and done["status_details"]["error"]["code"] == "provider_error"
    if "close_after" in fault or "error_after" in fault:  # the audio was sent: its usage is estimated, not lost
        assert done["usage"]["estimated"] is True and done["usage"]["input_token_details"]["audio_tokens"] > 0
    for k, v in saved.items():
        setattr(live, k, v)
    assert turn(c, tone_pcm16(0.3))[-1]["response"]["status"] == "completed"
    closed = close_session(c)
    assert closed["usage"]["turns_failed"] == 1 and closed["usage"]["turns_completed"] == 1
    records = turn_records(closed["session_id"], 2)
    assert sorted((r["outcome"], r.get("error_code")) for r in records) == [("error", "provider_error"), ("ok", None)]


@pytest.mark.parametrize("fault, message", [
    ({"no_setup_complete": True}, "did not confirm the session setup (setupComplete)"),
    ({"delay_s": 60.0}, "sent nothing within"),
])
def test_a_silent_provider_is_a_provider_timeout(gateway, live, use_catalog, fault, message):
    live_catalog(use_catalog, live, timeouts={"ttft_ms": 4000})  # ample for a loopback setup, short for a test
    for k, v in fault.items():
        setattr(live, k, v)
    c = open_session(gateway, MODEL)
    sid = c.events[0]["session"]["id"]
    c.append(tone_pcm16(0.2))
    c.send({"type": "input_audio_buffer.commit"})
    c.send({"type": "response.create"})
    events = c.until("response.done", timeout=60)
    err = of(events, "error")
    assert err and err[0]["error"]["code"] == "provider_timeout" and message in err[0]["error"]["message"], err
    assert events[-1]["response"]["status"] == "failed"
    [record] = turn_records(sid, 1, timeout=10)
    assert record["outcome"] == "error" and record["error_code"] == "provider_timeout"
    c.close()
    assert int(session_summary(sid, timeout=10)["turns_failed"]) == 1


def test_chat_only_gemini_models_keep_the_speech_chain():
    """A Gemini model without the Live option is not moved to the socket by the `gemini` kind."""
    from tests.conftest import reset_process_state

    reset_process_state()
    from llm_gateway.realtime.upstream import transport_of
    from llm_gateway.registry.catalog import get_catalog

    catalog = get_catalog()
    assert transport_of(catalog.resolve(MODEL)) == "socket"
    assert transport_of(catalog.resolve("gemini-live")) == "socket"
    for mid in ("gemini::gemini-2.5-flash", "gemini::gemini-2.5-flash-preview-tts", "gemini::gemini-2.5-flash-transcribe"):
        assert transport_of(catalog.resolve(mid)) == "chain", mid
    assert transport_of(catalog.resolve("openai::gpt-4o-realtime-preview")) == "socket"


# ---------------------------------------------------------------- the upstream alone


def run_direct(server: FakeGeminiLive, monkeypatch: Any, *, options: dict[str, Any] | None = None,
               config: dict[str, Any] | None = None, history: list[dict[str, str]] | None = None,
               audio: bytes | None = None) -> tuple[Any, list[Any], Any]:
    """One turn of `GeminiLive` against the fake: (upstream, events, the GatewayError or None)."""
    from llm_gateway.api.errors import GatewayError
    from llm_gateway.realtime.protocol import DEFAULT_CONFIG
    from llm_gateway.realtime.upstream import Turn
    from llm_gateway.realtime.upstream.gemini import GeminiLive
    from llm_gateway.registry.catalog import ModelSpec, ProviderSpec
    from tests.conftest import reset_process_state

    reset_process_state()
    monkeypatch.setenv(KEY_ENV, server.api_key)
    provider = ProviderSpec(id="gemini", kind="gemini", base_url=server.base_url, credential={"env": KEY_ENV})
    model = ModelSpec(id="gemini::live-test", provider=provider, provider_model="gemini-live-test",
                      capabilities=frozenset({"realtime"}), lifecycle="preview", timeouts={"ttft_ms": 20_000},
                      pricing={"input_per_mtok": 1.0, "output_per_mtok": 2.0}, options=options or {})
    cfg = {**DEFAULT_CONFIG, **(config or {})}
    up = GeminiLive(model)
    up.prepare(cfg)
    t = Turn(session_id="sess_direct", response_id="resp_direct", input_item_id="item_in", output_item_id="item_out",
             model=model, config=cfg, history=history or [], audio=tone_pcm16(0.2) if audio is None else audio,
             tenant_id="dev-tenant", request_id="req_direct", deadline_s=time.monotonic() + 120)
    events: list[Any] = []
    error = None
    try:
        events.extend(up.run(t))
    except GatewayError as exc:
        error = exc
    return up, events, error


def kinds_of(events: list[Any], kind: str) -> list[Any]:
    return [e for e in events if e.kind == kind]


def test_text_sessions_ask_for_text_or_read_the_transcript_of_an_audio_only_model(monkeypatch):
    with FakeGeminiLive() as server:
        up, events, error = run_direct(server, monkeypatch, config={"modalities": ["text"]})
        assert error is None and up.status == "completed"
        setup = server.connections[0].setup
        assert setup["generationConfig"]["responseModalities"] == ["TEXT"]
        assert "speechConfig" not in setup["generationConfig"] and "outputAudioTranscription" not in setup
        assert "".join(e.text for e in kinds_of(events, "text")) == server.reply and not kinds_of(events, "audio")
        assert events[-1].kind == "usage" and events[-1].usage.output_text_tokens == len(server.reply) // 4
        # a native-audio model answers only in audio: asked for AUDIO, its transcript is the text answer
        up, events, error = run_direct(server, monkeypatch, config={"modalities": ["text"]}, options={"live_audio_only": True})
        assert error is None
        setup = server.connections[1].setup
        assert setup["generationConfig"]["responseModalities"] == ["AUDIO"] and setup["outputAudioTranscription"] == {}
        assert "".join(e.text for e in kinds_of(events, "text")) == server.reply
        assert not kinds_of(events, "audio") and not kinds_of(events, "transcript")
        assert events[-1].usage.output_audio_tokens == server.deltas * 10 and events[-1].usage.audio_out_s > 0
        assert not server.violations


def test_manual_activity_wraps_the_audio_and_wav_output_gets_one_header(monkeypatch):
    with FakeGeminiLive() as server:
        up, events, error = run_direct(server, monkeypatch, options={"live_activity": "manual"},
                                       config={"output_audio_format": "wav", "voice": "alloy", "max_response_output_tokens": 300,
                                               "temperature": 0.6})
        assert error is None and up.status == "completed"
        conn = server.connections[0]
        assert conn.setup["realtimeInputConfig"] == {"automaticActivityDetection": {"disabled": True}}
        assert conn.setup["generationConfig"]["maxOutputTokens"] == 300 and conn.setup["generationConfig"]["temperature"] == 0.6
        # an OpenAI voice name is not a Gemini voice: the default one instead
        assert conn.setup["generationConfig"]["speechConfig"]["voiceConfig"]["prebuiltVoiceConfig"]["voiceName"] == "Puck"
        realtime = [next(iter(r)) for r in conn.of("realtimeInput")]
        assert realtime[0] == "activityStart" and realtime[-1] == "activityEnd" and "audioStreamEnd" not in realtime
        audio = b"".join(e.data for e in kinds_of(events, "audio"))
        assert audio[:4] == b"RIFF" and audio.count(b"RIFF") == 1 and audio[44:] == tone_pcm16(server.audio_seconds)
        assert not server.violations


def test_an_interrupted_answer_is_incomplete_and_a_go_away_is_named_when_the_socket_drops(monkeypatch):
    with FakeGeminiLive() as server:
        server.interrupt_after = 2
        up, events, error = run_direct(server, monkeypatch, history=[{"role": "user", "text": "hi"},
                                                                     {"role": "assistant", "text": "hello"},
                                                                     {"role": "user", "text": ""}])
        assert error is None and up.status == "incomplete"
        assert len(kinds_of(events, "audio")) == 2 and events[-1].kind == "usage"
        assert server.connections[0].of("clientContent")[0]["turns"] == [
            {"role": "user", "parts": [{"text": "hi"}]}, {"role": "model", "parts": [{"text": "hello"}]}]
        server.interrupt_after = None
        server.go_away, server.close_after, server.close_code, server.close_reason = True, 0, 1001, "going away"
        up, events, error = run_direct(server, monkeypatch)
        assert error is not None and error.code == "provider_error"
        assert "goAway, timeLeft 1s" in error.detail and "1001 going away" in error.detail
        assert up.usage is not None and up.usage.estimated and up.usage.input_audio_tokens == round(0.2 * 32)
