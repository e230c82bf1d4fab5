"""Gemini Live's building blocks without a socket: the 16 kHz input conversion, the endpoint, the
usage mapping, the setup message, the history, and which Gemini models take the socket."""

from __future__ import annotations

from typing import Any

import pytest


def model(options: dict[str, Any] | None = None, base_url: str | None = "https://generativelanguage.googleapis.com/v1beta",
          kind: str = "gemini", provider_model: str = "gemini-live-x") -> Any:
    from llm_gateway.registry.catalog import ModelSpec, ProviderSpec

    provider = ProviderSpec(id=kind, kind=kind, base_url=base_url, credential=None)
    return ModelSpec(id=f"{kind}::{provider_model}", provider=provider, provider_model=provider_model,
                     capabilities=frozenset({"realtime"}), lifecycle="preview", options=options or {})


def test_pcm16_at_converts_every_input_format_to_the_asked_rate():
    from llm_gateway.media import samples
    from llm_gateway.realtime import audio as au
    from tests.fakes.gemini_live import tone_pcm16

    pcm24 = tone_pcm16(0.3)
    out = au.pcm16_at(pcm24, "pcm16", 16000)
    assert out == au.resample(pcm24, 24000, 16000) and len(out) == len(pcm24) * 2 // 3
    ulaw = bytes([0xFF, 0x7F]) * 800  # 0.2 s at 8 kHz
    assert au.pcm16_at(ulaw, "g711_ulaw", 16000) == au.resample(au.g711_decode(ulaw), 8000, 16000)
    assert len(au.pcm16_at(ulaw, "g711_alaw", 16000)) == 2 * 2 * len(ulaw)
    wav = samples.speech_wav("sixteen kilohertz")
    pcm, rate = au.wav_pcm(wav)
    assert au.pcm16_at(wav, "wav", 16000) == au.resample(pcm, rate, 16000)
    assert au.pcm16_at(pcm24, "pcm16", 24000) == pcm24  # already at the rate: unchanged
    with pytest.raises(au.AudioFormatError):
        au.pcm16_at(b"\0\0\0", "pcm16", 16000)


@pytest.mark.parametrize("base_url, expected", [
    ("https://generativelanguage.googleapis.com/v1beta",
     "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"),
    (None, "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"),
    ("http://127.0.0.1:8123/v1alpha", "ws://127.0.0.1:8123/ws/google.ai.generativelanguage.v1alpha.GenerativeService.BidiGenerateContent"),
    ("https://proxy.example.com/google/", "wss://proxy.example.com/google/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"),
])
def test_the_live_endpoint_comes_from_the_providers_base_url(base_url, expected):
    from llm_gateway.realtime.upstream.gemini import live_url

    assert live_url(model(base_url=base_url)) == expected
    assert live_url(model({"realtime_url": "wss://elsewhere.example/live"}, base_url=base_url)) == "wss://elsewhere.example/live"


def test_usage_metadata_maps_by_modality():
    from llm_gateway.realtime.upstream.gemini import usage_from_gemini

    u = usage_from_gemini({"promptTokenCount": 130, "responseTokenCount": 210, "totalTokenCount": 352, "thoughtsTokenCount": 12,
                           "cachedContentTokenCount": 20,
                           "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 30}, {"modality": "AUDIO", "tokenCount": 100}],
                           "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 200}, {"modality": "TEXT", "tokenCount": 10}]})
    assert (u.input_text_tokens, u.input_audio_tokens, u.cached_tokens) == (30, 100, 20)
    assert (u.output_text_tokens, u.output_audio_tokens) == (10 + 12, 200)  # thinking is billed as output text
    assert not u.estimated
    bare = usage_from_gemini({"promptTokenCount": 40, "responseTokenCount": 9})  # no details: all text
    assert (bare.input_text_tokens, bare.input_audio_tokens, bare.output_text_tokens, bare.output_audio_tokens) == (40, 0, 9, 0)
    assert usage_from_gemini(None) is None and usage_from_gemini("nope") is None
    odd = usage_from_gemini({"promptTokenCount": "x", "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 5}]})
    assert odd.input_tokens == 0  # never more audio than the total


def test_the_setup_follows_the_session_and_the_model_options():
    from llm_gateway.realtime.protocol import DEFAULT_CONFIG
    from llm_gateway.realtime.upstream.gemini import GeminiLive

    up = GeminiLive(model({"voice": "Aoede"}))
    setup = up._setup({**DEFAULT_CONFIG, "instructions": "Be kind.", "max_response_output_tokens": 200})
    assert setup == {"model": "models/gemini-live-x",
                     "generationConfig": {"responseModalities": ["AUDIO"],
                                          "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Aoede"}}},
                                          "temperature": 0.8, "maxOutputTokens": 200},
                     "systemInstruction": {"parts": [{"text": "Be kind."}]},
                     "inputAudioTranscription": {}, "outputAudioTranscription": {}}
    assert up._setup({**DEFAULT_CONFIG, "voice": "Charon"})["generationConfig"]["speechConfig"]["voiceConfig"] == {
        "prebuiltVoiceConfig": {"voiceName": "Charon"}}
    text = up._setup({**DEFAULT_CONFIG, "modalities": ["text"]})
    assert text["generationConfig"] == {"responseModalities": ["TEXT"], "temperature": 0.8}
    assert "outputAudioTranscription" not in text and "systemInstruction" not in text
    quiet = GeminiLive(model({"transcription": False, "live_audio_only": True}, provider_model="models/x"))
    setup = quiet._setup({**DEFAULT_CONFIG, "modalities": ["text"]})
    assert setup["model"] == "models/x" and setup["generationConfig"]["responseModalities"] == ["AUDIO"]
    assert "inputAudioTranscription" not in setup and setup["outputAudioTranscription"] == {}


def test_history_becomes_alternating_gemini_turns():
    from llm_gateway.realtime.upstream.gemini import GeminiLive

    history = [{"role": "user", "text": "one"}, {"role": "assistant", "text": "two"}, {"role": "user", "text": ""},
               {"role": "assistant", "text": "three"}, {"role": "user", "text": "four"}]
    assert GeminiLive._history(history) == [{"role": "user", "parts": [{"text": "one"}]},
                                           {"role": "model", "parts": [{"text": "two"}, {"text": "three"}]},
                                           {"role": "user", "parts": [{"text": "four"}]}]
    assert GeminiLive._history([]) == []


def test_only_gemini_models_that_opt_in_take_the_live_socket():
    from llm_gateway.realtime.upstream import transport_of, upstream_for
    from llm_gateway.realtime.upstream.gemini import GeminiLive

    assert transport_of(model()) == "chain"  # a Gemini model that has not opted in keeps the chain
    live = model({"realtime_transport": "socket"})
    assert transport_of(live) == "socket" and isinstance(upstream_for(live), GeminiLive)
    assert transport_of(model(kind="openai", provider_model="gpt-realtime")) == "socket"
    assert transport_of(model({"realtime_transport": "chain"}, kind="openai", provider_model="gpt-realtime")) == "chain"


def test_errors_never_carry_the_key():
    from llm_gateway.realtime.upstream.gemini import GeminiLive

    up = GeminiLive(model())
    up._key = "plain-secret-value-123"

    class Frame:
        code, reason = 1008, "bad request for key plain-secret-value-123 and AIzaSyA1234567890abcdefghijklmnop"

    class Closed(Exception):
        rcvd = Frame()

    err = up._closed(Closed(), "during the session setup")
    assert err.code == "provider_error" and "1008" in err.detail
    assert "plain-secret-value-123" not in err.detail and "AIzaSy" not in err.detail
    assert up._error({"status": "RESOURCE_EXHAUSTED", "message": "quota"}).code == "rate_limited"
    assert up._error({"status": "DEADLINE_EXCEEDED", "message": "slow"}).code == "provider_timeout"
    detail = up._error({"code": 400, "message": "key=plain-secret-value-123"}).detail
    assert "plain-secret-value-123" not in detail and "400" in detail
