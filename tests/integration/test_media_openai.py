"""OpenAI embeddings and media through the Lambda handlers, against the fake OpenAI server in
OpenAI's wire format (tests/fakes/openai_media.py)."""

from __future__ import annotations

import base64
import struct

import pytest

from llm_gateway.media import samples
from llm_gateway.media.sniff import sniff
from tests.conftest import user
from tests.contract.schema_check import assert_valid
from tests.fakes.openai_media import FakeOpenAIMedia, parse_multipart, vector
from tests.integration.test_media_out import sse, stored


@pytest.fixture
def fake(api, use_catalog):
    server = FakeOpenAIMedia().start()
    provider, models = server.media_catalog()
    use_catalog([provider], models)
    server.pid = provider["id"]
    yield server
    server.stop()
    assert server.violations == []


def m(fake, name):
    return f"{fake.pid}::{name}"


def test_embeddings_float_and_base64_in_order_with_dimensions(api, fake):
    texts = [f"document {i} about {'cats' if i % 2 else 'dogs'}" for i in range(5)]
    resp = api.call("POST", "/embeddings", json_body={"model": m(fake, "text-embedding-3-small"), "input": texts, "dimensions": 64})
    assert resp.status == 200, resp.body
    body = resp.json()
    assert_valid("embedding_response", body)
    assert [d["index"] for d in body["data"]] == list(range(5))
    for text, item in zip(texts, body["data"]):
        assert item["embedding"] == pytest.approx(vector(text, 64), abs=1e-6)  # float32 on the wire
    assert body["usage"]["input_tokens"] == sum(len(t.split()) for t in texts)
    b64 = api.call("POST", "/embeddings", json_body={"model": m(fake, "text-embedding-3-small"), "input": texts[2],
                                                     "encoding_format": "base64", "dimensions": 8}).json()
    assert struct.unpack("<8f", base64.b64decode(b64["data"][0]["embedding"])) == pytest.approx(vector(texts[2], 8), abs=1e-6)
    sent = fake.requests[-1].json()
    assert sent == {"model": "text-embedding-3-small", "input": [texts[2]], "encoding_format": "base64", "dimensions": 8}


def test_gpt_image_and_dalle(api, fake):
    body = api.chat({"model": m(fake, "gpt-image-1"), "messages": [user("a red fox")], "media": {"n": 2, "size": "64x64", "quality": "low"}}).json()
    assert [p["type"] for p in body["content"]] == ["image", "image"]
    assert all(sniff(stored(p["url"])) == "image/png" for p in body["content"])
    assert body["usage"]["images"] == 2 and body["usage"]["output_tokens"] == 2112
    assert body["usage"]["cost_estimate"] == pytest.approx((3 * 5.0 + 2112 * 40.0) / 1e6)
    sent = [r for r in fake.requests if r.path == "/v1/images/generations"][-1].json()
    assert sent == {"model": "gpt-image-1", "prompt": "a red fox", "n": 2, "size": "64x64", "quality": "low"}

    dalle = api.chat({"model": m(fake, "dall-e-3"), "messages": [user("a blue whale")]}).json()
    assert dalle["usage"]["images"] == 1 and dalle["usage"]["cost_estimate"] == pytest.approx(0.04)
    assert [r for r in fake.requests if r.path == "/v1/images/generations"][-1].json()["response_format"] == "b64_json"


def test_speech_buffered_and_streamed_over_sse_and_raw(api, fake):
    text = "Hello from the gateway."
    body = api.chat({"model": m(fake, "gpt-4o-mini-tts"), "messages": [{"role": "system", "content": [{"type": "text", "text": "Cheerful."}]}, user(text)],
                     "media": {"format": "wav", "voice": "nova"}}).json()
    audio = stored(body["content"][0]["url"])
    assert samples.wav_text(audio) == text and body["media"][0]["media_type"] == "audio/wav"
    assert body["usage"]["characters"] == len(text)
    sent = [r for r in fake.requests if r.path == "/v1/audio/speech"][-1].json()
    assert sent == {"model": "gpt-4o-mini-tts", "input": text, "voice": "nova", "response_format": "wav", "instructions": "Cheerful."}

    events = sse(api.chat({"model": m(fake, "gpt-4o-mini-tts"), "stream": True, "messages": [user(text)], "media": {"format": "wav"}}).body)
    chunks = [d["delta"]["audio"] for _, d in events if isinstance(d, dict) and "audio" in d.get("delta", {})]
    assert samples.wav_text(b"".join(base64.b64decode(c["data"]) for c in chunks)) == text
    assert events[-2][1]["usage"]["output_tokens"] == 100 and events[-1][1] == "[DONE]"
    assert [r for r in fake.requests if r.path == "/v1/audio/speech"][-1].json()["stream_format"] == "sse"

    raw = sse(api.chat({"model": m(fake, "tts-1"), "stream": True, "messages": [user(text)]}).body)
    mp3 = b"".join(base64.b64decode(d["delta"]["audio"]["data"]) for _, d in raw if isinstance(d, dict) and "audio" in d.get("delta", {}))
    assert sniff(mp3) == "audio/mpeg" and raw[-1][1] == "[DONE]"


def test_transcription_multipart_and_usage(api, fake):
    wav = samples.wav(2.0, text="the words that were said")
    msg = {"role": "user", "content": [{"type": "audio", "url": "data:audio/wav;base64," + base64.b64encode(wav).decode()}]}
    body = api.chat({"model": m(fake, "whisper-1"), "messages": [msg], "media": {"language": "en"}}).json()
    assert body["content"] == [{"type": "text", "text": "the words that were said [en]"}]
    assert body["usage"]["seconds"] == 2.0 and body["usage"]["cost_estimate"] == pytest.approx(0.0002)
    form = parse_multipart([r for r in fake.requests if r.path == "/v1/audio/transcriptions"][-1])
    assert form["file"][0] == "audio.wav" and form["file"][1] == wav and form["model"][1] == b"whisper-1"
    assert form["response_format"][1] == b"json" and form["language"][1] == b"en"
    tokens = api.chat({"model": m(fake, "gpt-4o-mini-transcribe"), "messages": [msg]}).json()
    assert tokens["usage"]["input_tokens"] == 40 and tokens["usage"]["seconds"] == 2.0


def test_video_polled_inline_and_downloaded(api, fake, monkeypatch):
    monkeypatch.setenv("LLMGW_SYNC_POLL_INTERVAL_S", "0.02")
    from llm_gateway.config import reset_settings

    reset_settings()
    body = api.chat({"model": m(fake, "sora-2"), "messages": [user("a paper boat")], "media": {"duration": 4, "size": "720x1280"}}).json()
    [part] = body["content"]
    video = stored(part["url"])
    assert sniff(video) == "video/mp4" and samples.mp4_duration(video) == 4.0
    assert body["usage"]["seconds"] == 4.0 and body["usage"]["cost_estimate"] == pytest.approx(0.4)
    paths = [(r.method, r.path.split("/")[-1] if "video_" in r.path else r.path) for r in fake.requests if "/v1/videos" in r.path]
    assert paths[0] == ("POST", "/v1/videos") and paths[-1] == ("GET", "content") and len(paths) == 4


def test_video_failure_is_a_provider_error(api, fake, monkeypatch):
    monkeypatch.setenv("LLMGW_SYNC_POLL_INTERVAL_S", "0.02")
    fake.video_fail = "The prompt was blocked."
    resp = api.chat({"model": m(fake, "sora-2"), "messages": [user("something")]})
    assert resp.status == 502 and "The prompt was blocked." in resp.json()["detail"]
