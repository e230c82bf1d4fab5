"""Output modalities on `POST /chat/completions` with the mock provider, through the chat Lambda
handler: images, speech (buffered and streamed), transcription, video — real files stored under
the tenant's `generated/` prefix, presigned URLs, media usage and cost."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlsplit

import pytest

from llm_gateway.media import samples
from llm_gateway.media.sniff import sniff
from tests.conftest import DEV_TENANT, user
from tests.contract.schema_check import assert_valid


def stored(url: str) -> bytes:
    """The bytes behind a presigned URL of the gateway's bucket (read from moto's S3)."""
    from llm_gateway.stores.aws import client
    from llm_gateway.stores.files import parse_gateway_url

    located = parse_gateway_url(url)
    assert located is not None, url
    bucket, key = located
    assert key.startswith(f"generated/{DEV_TENANT}/"), key
    return client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def sse(body: str) -> list[tuple[str | None, object]]:
    out = []
    for frame in body.split("\n\n"):
        if not frame.strip():
            continue
        name = None
        data = None
        for line in frame.split("\n"):
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                raw = line[5:].strip()
                data = raw if raw == "[DONE]" else json.loads(raw)
        out.append((name, data))
    return out


def test_image_generation_returns_a_stored_png_with_expiry_and_cost(api):
    resp = api.chat({"model": "mock::image", "messages": [user("a lighthouse at dusk")], "media": {"size": "64x32", "n": 2}})
    assert resp.status == 200, resp.body
    body = resp.json()
    assert_valid("response", body)
    assert [p["type"] for p in body["content"]] == ["image", "image"]
    assert len(body["media"]) == 2
    for part, meta in zip(body["content"], body["media"]):
        assert meta["url"] == part["url"] and meta["media_type"] == "image/png" and meta["expires_at"].endswith("+00:00")
        data = stored(part["url"])
        assert sniff(data) == "image/png" and samples.png_size(data) == (64, 32) and meta["bytes"] == len(data)
        assert samples.png_text(data) == "a lighthouse at dusk"
        assert urlsplit(part["url"]).query  # presigned
    usage = body["usage"]
    assert usage["images"] == 2 and usage["cost_estimate"] == pytest.approx(0.02)


def test_speech_buffered_returns_a_wav_the_mock_stt_reads_back(api):
    text = "The quick brown fox jumps over the lazy dog."
    resp = api.chat({"model": "mock::tts", "messages": [user(text)]})
    assert resp.status == 200, resp.body
    body = resp.json()
    [part] = body["content"]
    assert part["type"] == "audio" and body["media"][0]["media_type"] == "audio/wav"
    audio = stored(part["url"])
    assert samples.wav_text(audio) == text and samples.wav_duration(audio) > 2
    assert body["usage"]["characters"] == len(text)
    assert body["usage"]["cost_estimate"] == pytest.approx(len(text) * 0.000015)

    # round trip: send the stored file back by its (presigned) URL to the STT model
    back = api.chat({"model": "mock::stt", "messages": [{"role": "user", "content": [{"type": "audio", "url": part["url"]}]}]})
    assert back.status == 200, back.body
    tb = back.json()
    assert tb["content"] == [{"type": "text", "text": text}]
    assert tb["usage"]["seconds"] == pytest.approx(samples.wav_duration(audio), abs=1e-3)
    assert tb["usage"]["cost_estimate"] == pytest.approx(samples.wav_duration(audio) * 0.0001, rel=1e-3)


def test_speech_streams_audio_chunks_then_usage(api):
    text = "Streaming speech arrives in chunks, directly."
    resp = api.chat({"model": "mock::tts", "stream": True, "messages": [user(text)]})
    assert resp.status == 200, resp.body
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse(resp.body)
    assert events[0][1]["delta"] == {"role": "assistant"}
    audio_events = [d for _, d in events if isinstance(d, dict) and "audio" in d.get("delta", {})]
    assert len(audio_events) >= 2 and {e["delta"]["audio"]["format"] for e in audio_events} == {"wav"}
    audio = b"".join(base64.b64decode(e["delta"]["audio"]["data"]) for e in audio_events)
    assert samples.wav_text(audio) == text
    final = events[-2][1]
    assert final["finish_reason"] == "stop" and final["usage"]["characters"] == len(text)
    assert events[-1][1] == "[DONE]"


def test_transcription_of_other_audio_names_its_duration_and_streams_as_text(api):
    wav = "data:audio/wav;base64," + base64.b64encode(samples.wav(1.5)).decode()
    msg = {"role": "user", "content": [{"type": "audio", "url": wav}]}
    body = api.chat({"model": "mock::stt", "messages": [msg]}).json()
    assert body["content"][0]["text"] == "Mock transcript: 1.5 seconds of audio/wav audio."
    events = sse(api.chat({"model": "mock::stt", "stream": True, "messages": [msg]}).body)
    assert [d["delta"].get("content") for _, d in events[1:-2]] == ["Mock transcript: 1.5 seconds of audio/wav audio."]
    assert events[-2][1]["usage"]["seconds"] == pytest.approx(1.5)


def test_video_generation_stores_a_real_mp4(api, monkeypatch):
    from llm_gateway.registry.catalog import get_catalog
    from tests.conftest import reset_process_state

    if get_catalog().lookup("mock::video-gen") is None:
        pytest.skip("no mock video model in this catalog")
    monkeypatch.setenv("LLMGW_SYNC_POLL_INTERVAL_S", "0.05")
    reset_process_state()
    resp = api.chat({"model": "mock::video-gen", "messages": [user("waves on a beach")], "media": {"duration": 2}})
    if resp.status == 202:
        pytest.skip("the mock video model answered with a job (generation_s beyond the sync poll limit)")
    assert resp.status == 200, resp.body
    body = resp.json()
    [part] = body["content"]
    assert part["type"] == "video"
    data = stored(part["url"])
    assert sniff(data) == "video/mp4" and samples.mp4_duration(data) == pytest.approx(2.0)
    assert [b[0] for b in samples.mp4_boxes(data)] == ["ftyp", "mdat", "moov"]
    assert body["usage"]["seconds"] == pytest.approx(2.0)


@pytest.mark.parametrize("payload,status,code,needle", [
    ({"model": "mock::image", "messages": [user("x")], "media": {"voice": "alloy"}}, 400, "validation_error", "media.voice"),
    ({"model": "mock::image", "messages": [user("x")], "media": {"n": 11}}, 400, "validation_error", "media.n"),
    ({"model": "mock::image", "messages": [user("x")], "media": {"size": "huge"}}, 400, "validation_error", "media.size"),
    ({"model": "mock::image", "messages": [user("x")], "media": {"size": "4096x4096"}}, 400, "validation_error", "media.size"),
    ({"model": "mock::image", "messages": [user("x")], "media": {"bogus": 1}}, 400, "validation_error", "media.bogus"),
    ({"model": "mock::image", "messages": [{"role": "user", "content": [{"type": "image", "url": "s3://b/k.png"}]}]},
     422, "capability_not_supported", "vision"),
    ({"model": "mock::image", "stream": True, "messages": [user("x")]}, 422, "capability_not_supported", "stream"),
    ({"model": "mock::tts", "messages": [user("hi")], "media": {"format": "mp3"}}, 422, "capability_not_supported", "wav"),
    ({"model": "mock::stt", "messages": [user("no audio here")]}, 400, "validation_error", "audio"),
    ({"model": "mock::tts", "messages": [{"role": "user", "content": [{"type": "audio", "url": "data:audio/wav;base64,AAAA"}]}]},
     422, "capability_not_supported", "audio_in"),
])
def test_bad_media_generation_requests(api, payload, status, code, needle):
    resp = api.chat(payload)
    assert resp.status == status, resp.body
    problem = resp.json()
    assert problem["code"] == code and needle in problem["detail"] + json.dumps(problem.get("errors", []))


def test_models_list_media_prices(api):
    models = {m["id"]: m for m in api.call("GET", "/models").json()["data"]}
    assert models["mock::image"]["pricing"]["per_image"] == 0.01
    assert "tts" in models["mock::tts"]["capabilities"] and "stt" in models["mock::stt"]["capabilities"]
