"""Gemini embeddings and media through the Lambda handlers, against the fake Gemini API in its
wire format (tests/fakes/gemini_media.py)."""

from __future__ import annotations

import base64

import pytest

from llm_gateway.media import samples
from llm_gateway.media.sniff import sniff
from tests.conftest import user
from tests.fakes.gemini_media import FakeGeminiMedia
from tests.fakes.openai_media import vector
from tests.integration.test_media_out import sse, stored


@pytest.fixture
def fake(api, use_catalog):
    server = FakeGeminiMedia().start()
    provider, models = server.media_catalog()
    use_catalog([provider], models)
    server.pid = provider["id"]
    yield server
    server.stop()
    assert server.violations == []


def m(fake, name):
    return f"{fake.pid}::{name}"


def sent(fake, suffix):
    return [r for r in fake.requests if r.path.endswith(suffix)][-1].json()


def test_batch_embeddings_are_split_by_100_and_rejoined(api, fake):
    texts = [f"passage {i}" for i in range(230)]
    body = api.call("POST", "/embeddings", json_body={"model": m(fake, "gemini-embedding-001"), "input": texts, "dimensions": 16}).json()
    assert [d["index"] for d in body["data"]] == list(range(230))
    assert body["data"][150]["embedding"] == pytest.approx(vector(texts[150], 16))
    calls = [r.json() for r in fake.requests if r.path.endswith(":batchEmbedContents")]
    assert sorted(len(c["requests"]) for c in calls) == [30, 100, 100]  # batches run concurrently: any arrival order
    first = next(c for c in calls if c["requests"][0]["content"]["parts"][0]["text"] == "passage 0")
    assert first["requests"][0] == {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "passage 0"}]},
                                       "outputDimensionality": 16}
    assert body["usage"]["input_tokens"] == sum(-(-len(t) // 4) for t in texts)


def test_imagen_predict(api, fake):
    body = api.chat({"model": m(fake, "imagen-4.0-generate-001"), "messages": [user("a teapot")], "media": {"n": 2, "aspect_ratio": "1:1"}}).json()
    assert [p["type"] for p in body["content"]] == ["image", "image"]
    assert samples.png_text(stored(body["content"][0]["url"])) == "a teapot"
    assert body["usage"]["images"] == 2 and body["usage"]["cost_estimate"] == pytest.approx(0.08)
    assert sent(fake, ":predict") == {"instances": [{"prompt": "a teapot"}], "parameters": {"sampleCount": 2, "aspectRatio": "1:1"}}


def test_gemini_image_model_answers_text_and_image(api, fake):
    body = api.chat({"model": m(fake, "gemini-2.5-flash-image"), "messages": [user("draw a kite")]}).json()
    assert [p["type"] for p in body["content"]] == ["text", "image"]
    assert sniff(stored(body["content"][1]["url"])) == "image/png"
    assert body["usage"]["images"] == 1 and body["usage"]["output_tokens"] == 1290
    assert sent(fake, ":generateContent")["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]


def test_tts_pcm_is_answered_as_wav_and_streams_in_one_chunk(api, fake):
    body = api.chat({"model": m(fake, "gemini-2.5-flash-preview-tts"), "messages": [user("Say hi")], "media": {"voice": "Puck"}}).json()
    audio = stored(body["content"][0]["url"])
    assert sniff(audio) == "audio/wav" and samples.wav_duration(audio) == pytest.approx(0.5)
    assert body["usage"]["seconds"] == pytest.approx(0.5) and body["usage"]["characters"] == 6
    cfg = sent(fake, ":generateContent")["generationConfig"]
    assert cfg == {"responseModalities": ["AUDIO"], "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": "Puck"}}}}
    events = sse(api.chat({"model": m(fake, "gemini-2.5-flash-preview-tts"), "stream": True, "messages": [user("Say hi")]}).body)
    chunks = [d for _, d in events if isinstance(d, dict) and "audio" in d.get("delta", {})]
    assert len(chunks) == 1 and chunks[0]["delta"]["audio"]["format"] == "wav" and events[-1][1] == "[DONE]"


def test_transcription_sends_inline_audio(api, fake):
    wav = samples.wav(1.0, text="hello gemini")
    body = api.chat({"model": m(fake, "gemini-transcribe"),
                     "messages": [{"role": "user", "content": [{"type": "audio", "url": "data:audio/wav;base64," + base64.b64encode(wav).decode()}]}]}).json()
    assert body["content"] == [{"type": "text", "text": "hello gemini"}]
    assert body["usage"]["seconds"] == pytest.approx(1.0) and body["usage"]["input_tokens"] == 40
    parts = sent(fake, "gemini-2.5-flash:generateContent")["contents"][0]["parts"]
    assert parts[0]["text"].startswith("Transcribe this audio") and parts[1]["inlineData"]["mimeType"] == "audio/wav"


def test_veo_long_running_operation(api, fake, monkeypatch):
    monkeypatch.setenv("LLMGW_SYNC_POLL_INTERVAL_S", "0.02")
    from llm_gateway.config import reset_settings

    reset_settings()
    body = api.chat({"model": m(fake, "veo-3.0-generate-001"), "messages": [user("a comet")], "media": {"duration": 4}}).json()
    video = stored(body["content"][0]["url"])
    assert sniff(video) == "video/mp4" and samples.mp4_duration(video) == 4.0
    assert body["usage"]["seconds"] == 4 and body["usage"]["cost_estimate"] == pytest.approx(1.6)
    assert sent(fake, ":predictLongRunning") == {"instances": [{"prompt": "a comet"}], "parameters": {"durationSeconds": 4}}
    assert [r.path.split("/")[1] for r in fake.requests][-2:] == ["v1beta", "storage"]
