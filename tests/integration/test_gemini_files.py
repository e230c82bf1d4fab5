"""Gemini Files API uploads for media too large to go inline, through the chat handler against the
fake Gemini API's resumable upload endpoints (tests/fakes/gemini.py)."""

from __future__ import annotations

import base64
import json

import pytest

from llm_gateway.media import samples
from llm_gateway.providers import gemini_files
from tests.fakes.gemini import API_KEY, MODEL, FakeGemini
from tests.fakes.gemini_media import FakeGeminiMedia
from tests.fakes.script import Script
from tests.fakes.server import Reply

MODEL_ID = f"gemini::{MODEL}"
VIDEO = samples.mp4(1.0)  # ~2.4 KB
IMAGE = samples.png(8, 8)  # ~180 bytes
SMALL_BUDGET = {"inline_media_max_bytes": 1000}


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    monkeypatch.setattr(gemini_files, "POLL_FIRST_S", 0.01)
    monkeypatch.setattr(gemini_files, "POLL_MAX_S", 0.02)


@pytest.fixture
def gemini(use_catalog):
    with FakeGemini() as fake:
        def use(options=None):
            provider, models = fake.catalog(options=options)
            use_catalog([provider], models)

        fake.use = use
        fake.use(SMALL_BUDGET)
        yield fake


def data_url(mime: str, raw: bytes) -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


def video_request(**extra) -> dict:
    return {"model": MODEL_ID, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What happens in this clip?"},
        {"type": "video", "url": data_url("video/mp4", VIDEO)},
        {"type": "image", "url": data_url("image/png", IMAGE)}]}], **extra}


def generate_calls(fake: FakeGemini) -> list:
    return [r for r in fake.requests if ":generateContent" in r.path or ":streamGenerateContent" in r.path]


def test_large_video_is_uploaded_waited_for_and_referenced_by_file_uri(api, gemini):
    gemini.script(Script(text="A clip.", input_tokens=300, output_tokens=20))
    resp = api.chat(video_request())
    assert resp.status == 200, resp.body
    body = resp.json()
    assert body["content"] == [{"type": "text", "text": "A clip."}]

    start, finalize = gemini.uploads()
    assert start.method == "POST" and start.query == "" and start.headers["x-goog-api-key"] == API_KEY
    assert start.headers["x-goog-upload-protocol"] == "resumable" and start.headers["x-goog-upload-command"] == "start"
    assert start.headers["x-goog-upload-header-content-length"] == str(len(VIDEO))
    assert start.headers["x-goog-upload-header-content-type"] == "video/mp4"
    display = start.json()["file"]["display_name"]
    assert display.startswith("llmgw-") and "clip" not in display  # no content in the file's name
    assert finalize.query.startswith("upload_id=") and finalize.headers["x-goog-upload-command"] == "upload, finalize"
    assert finalize.headers["x-goog-upload-offset"] == "0" and finalize.body == VIDEO

    polls = [r for r in gemini.requests if r.method == "GET" and r.path.startswith("/v1beta/files/")]
    assert len(polls) == gemini.file_processing_polls  # PROCESSING until the 2nd get, then ACTIVE
    name = polls[0].path.removeprefix("/v1beta/")

    (call,) = generate_calls(gemini)
    parts = call.json()["contents"][0]["parts"]
    assert parts[0] == {"text": "What happens in this clip?"}
    assert parts[1] == {"fileData": {"mimeType": "video/mp4", "fileUri": f"{gemini.url}/v1beta/{name}"}}
    assert parts[2] == {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(IMAGE).decode()}}  # the rest fits inline
    # upload, processing and delete count in no usage: exactly what generateContent reported
    assert (body["usage"]["input_tokens"], body["usage"]["output_tokens"]) == (300, 20)
    assert body["usage"]["cost_estimate"] == pytest.approx((300 * 0.30 + 20 * 2.50) / 1e6)
    assert gemini.deleted_files == [name] and gemini.files == {}  # deleted after the call
    assert gemini.violations == []


def test_small_parts_stay_inline(api, gemini):
    gemini.use(None)  # the default budget (14 MB)
    gemini.script(Script(text="ok"))
    assert api.chat(video_request()).status == 200
    assert gemini.uploads() == []
    parts = generate_calls(gemini)[0].json()["contents"][0]["parts"]
    assert [next(iter(p)) for p in parts] == ["text", "inlineData", "inlineData"]
    assert gemini.violations == []


def test_stream_uploads_first_and_deletes_when_the_stream_ends(api, gemini):
    gemini.script(Script(text="A short clip.", input_tokens=300, output_tokens=20))
    resp = api.chat(video_request(stream=True))
    assert resp.status == 200, resp.body
    frames = [json.loads(f.removeprefix("data: ")) for f in resp.body.split("\n\n") if f and f != "data: [DONE]"]
    assert "".join(f["delta"].get("content", "") for f in frames) == "A short clip."
    assert (frames[-1]["usage"]["input_tokens"], frames[-1]["usage"]["output_tokens"]) == (300, 20)
    (call,) = generate_calls(gemini)
    assert call.path.endswith(":streamGenerateContent") and "fileData" in call.json()["contents"][0]["parts"][1]
    assert len(gemini.deleted_files) == 1 and gemini.files == {}
    assert gemini.violations == []


def test_failed_processing_is_a_provider_error_and_the_file_is_deleted(api, gemini):
    gemini.file_outcome = "FAILED"
    resp = api.chat(video_request())
    assert resp.status == 502, resp.body
    err = resp.json()
    assert err["code"] == "provider_error" and "FAILED" in err["detail"] and "could not be decoded" in err["detail"]
    assert generate_calls(gemini) == [] and len(gemini.deleted_files) == 1
    assert gemini.violations == []


@pytest.mark.parametrize("step", ["start", "finalize"])
def test_upload_5xx_is_a_provider_error_and_nothing_is_generated(api, gemini, step):
    fault = Reply(503, json={"error": {"code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}})
    if step == "start":
        gemini.enqueue("POST", r"/upload/v1beta/files", fault)
    else:
        gemini.finalize_faults.append(fault)
    resp = api.chat(video_request())
    assert resp.status == 502, resp.body
    err = resp.json()
    assert err["code"] == "provider_error" and "UNAVAILABLE" in err["detail"]
    assert generate_calls(gemini) == [] and gemini.files == {}
    assert gemini.violations == []


def test_processing_longer_than_the_deadline_times_out_and_deletes(api, gemini):
    gemini.file_processing_polls = 10_000
    resp = api.chat(video_request(timeout={"total_ms": 600}))
    assert resp.status == 504, resp.body
    assert resp.json()["code"] == "provider_timeout"
    assert generate_calls(gemini) == [] and len(gemini.deleted_files) == 1


def test_files_api_always_and_never_options(api, gemini):
    gemini.use({"files_api": "always"})
    gemini.script(Script(text="ok"))
    assert api.chat(video_request()).status == 200
    parts = generate_calls(gemini)[-1].json()["contents"][0]["parts"]
    assert [next(iter(p)) for p in parts] == ["text", "fileData", "fileData"]
    assert parts[2]["fileData"]["mimeType"] == "image/png" and len(gemini.deleted_files) == 2

    gemini.use({"files_api": "never", "inline_media_max_bytes": 10})
    n = len(gemini.uploads())
    assert api.chat(video_request()).status == 200
    assert len(gemini.uploads()) == n
    assert [next(iter(p)) for p in generate_calls(gemini)[-1].json()["contents"][0]["parts"]] == ["text", "inlineData", "inlineData"]


def test_files_are_kept_when_deletion_is_off(api, gemini):
    gemini.use({**SMALL_BUDGET, "files_api_delete": False})
    gemini.script(Script(text="ok"))
    assert api.chat(video_request()).status == 200
    assert gemini.deleted_files == [] and len(gemini.files) == 1


def test_same_url_twice_is_uploaded_once(api, gemini):
    gemini.script(Script(text="ok"))
    video = {"type": "video", "url": data_url("video/mp4", VIDEO)}
    resp = api.chat({"model": MODEL_ID, "messages": [{"role": "user", "content": [{"type": "text", "text": "compare"}, video, video]}]})
    assert resp.status == 200, resp.body
    assert len(gemini.uploads()) == 2  # one start + one finalize
    parts = generate_calls(gemini)[0].json()["contents"][0]["parts"]
    assert parts[1] == parts[2] and "fileData" in parts[1]


def test_transcription_uploads_large_audio(api, use_catalog):
    with FakeGeminiMedia() as fake:
        provider, models = fake.media_catalog()
        for model in models:
            if model["id"].endswith("gemini-transcribe"):
                model["options"] = SMALL_BUDGET
        use_catalog([provider], models)
        wav = samples.wav(1.0, text="hello files")
        resp = api.chat({"model": f"{provider['id']}::gemini-transcribe",
                         "messages": [{"role": "user", "content": [{"type": "audio", "url": data_url("audio/wav", wav)}]}]})
        assert resp.status == 200, resp.body
        assert resp.json()["content"] == [{"type": "text", "text": "hello files"}]
        sent = [r for r in fake.requests if r.path.endswith(":generateContent")][-1].json()["contents"][0]["parts"]
        assert sent[1]["fileData"]["mimeType"] == "audio/wav"
        assert fake.uploads()[1].body == wav and len(fake.deleted_files) == 1
        assert fake.violations == []


def test_to_upload_picks_the_largest_until_the_rest_fits():
    from types import SimpleNamespace

    from llm_gateway.providers.gemini_files import Media, _upload_root, to_upload

    def call(**options):
        return SimpleNamespace(model=SimpleNamespace(id="g::m", options=options, provider=SimpleNamespace(id="g", options={})))

    items = [Media("a", "image", "image/png", 6_000_000, b""), Media("b", "video", "video/mp4", 9_000_000, b""),
             Media("c", "document", "application/pdf", 4_000_000, b""), Media("a", "image", "image/png", 6_000_000, b"")]
    assert [m.key for m in to_upload(call(), items)] == ["b"]  # 19 MB -> 10 MB left inline
    assert [m.key for m in to_upload(call(inline_media_max_bytes=5_000_000), items)] == ["b", "a"]
    assert to_upload(call(), items[:1]) == []
    assert [m.key for m in to_upload(call(files_api="always"), items)] == ["a", "b", "c"]
    assert to_upload(call(files_api="never", inline_media_max_bytes=1), items) == []
    assert _upload_root("https://generativelanguage.googleapis.com/v1beta") == "https://generativelanguage.googleapis.com/upload/v1beta"
    assert _upload_root("http://127.0.0.1:9/v1beta/") == "http://127.0.0.1:9/upload/v1beta"


def test_the_api_key_goes_to_the_upload_url_only_on_the_api_host(api, gemini):
    gemini.script(Script(text="ok"))
    assert api.chat(video_request()).status == 200
    assert gemini.uploads()[1].headers.get("x-goog-api-key") == API_KEY  # same host as the API
    gemini.upload_host = "localhost"  # the same fake under another name: another host for the gateway
    assert api.chat(video_request()).status == 200
    assert "x-goog-api-key" not in gemini.uploads()[-1].headers
    assert gemini.violations == []


def test_cancelling_the_call_stops_the_processing_wait_at_once(gemini, monkeypatch):
    import threading
    import time

    from llm_gateway.api.models import ChatRequest
    from llm_gateway.outbound.client import OutboundClient
    from llm_gateway.outbound.control import CANCELLED, CallControl, bound
    from llm_gateway.providers.base import Deadline, ProviderCall
    from llm_gateway.providers.gemini import GeminiAdapter
    from llm_gateway.registry.catalog import ModelSpec, ProviderSpec

    monkeypatch.setattr(gemini_files, "POLL_FIRST_S", 30.0)
    monkeypatch.setattr(gemini_files, "POLL_MAX_S", 30.0)
    provider_raw, (model_raw,) = gemini.catalog(options=SMALL_BUDGET)
    provider = ProviderSpec(id="gemini", kind="gemini", base_url=provider_raw["base_url"], credential=provider_raw["credential"])
    model = ModelSpec(id=MODEL_ID, provider=provider, provider_model=MODEL, capabilities=frozenset(model_raw["capabilities"]), lifecycle="production",
                      options=SMALL_BUDGET)
    request = ChatRequest.model_validate({"model": MODEL_ID, "messages": [{"role": "user", "content": [
        {"type": "video", "url": "https://example.com/clip.mp4"}]}]})
    media = {"https://example.com/clip.mp4": {"data": base64.b64encode(VIDEO).decode(), "media_type": "video/mp4", "size": len(VIDEO)}}
    call = ProviderCall(request=request, model=model, deadline=Deadline(ttft_s=60, total_s=60), request_id="req_cancel",
                        extra={"media": media})
    control = CallControl(ttft_s=60, total_s=60, provider_id="gemini")
    threading.Timer(0.3, control.abort, args=(CANCELLED,)).start()
    started = time.monotonic()
    with bound(control), pytest.raises(Exception) as caught:
        GeminiAdapter(provider, OutboundClient()).chat(call)
    assert time.monotonic() - started < 5
    assert getattr(caught.value, "extra", {}).get("cancelled") is True
    assert len(gemini.deleted_files) == 1 and generate_calls(gemini) == []
