"""The OpenAI- and Anthropic-compatible front doors, driven by the official SDKs.

The local server runs in a thread (uvicorn + `LocalGateway`, embedded moto, the dev key); each
SDK is pointed at it by base URL and nothing else changes. Models are the catalog's mock ones
(`mock::echo`, `mock::embed`, `mock::image`, `mock::tts`, `mock::stt`); timeouts, fallback and
true streaming are checked against a fake OpenAI-wire provider (`tests/fakes/openai.py`) that
answers slowly, fails, or streams slowly on demand.
"""

from __future__ import annotations

import io
import json
import os
import time
import wave
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from pydantic import BaseModel

from tests.conftest import DEV_API_KEY, DEV_TENANT
from tests.fakes.openai import FakeOpenAI
from tests.fakes.script import Script
from tests.fakes.server import Reply
from tests.local_support import embedded_aws, serve

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ANTHROPIC_WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


class FakeUpstream(FakeOpenAI):
    """An OpenAI-wire provider on loopback (a slow or failing upstream on demand)."""

    provider_id = "upstream"
    key_env = "FAKE_UPSTREAM_API_KEY"
    api_key = "sk-proj-fake-upstream-key-0123456789abcdef"
    model = "gpt-fake-upstream"


UPSTREAM = "upstream::gpt-fake-upstream"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    """The local gateway on loopback (embedded moto, dev key); the catalog is the default one
    plus `upstream::gpt-fake-upstream`, a fake OpenAI-wire provider."""
    from llm_gateway.registry.catalog import DEFAULT_CATALOG
    from tests.conftest import reset_process_state
    from tests.jobs_support import FAST_POLLS

    with embedded_aws(), FakeUpstream() as fake:
        os.environ.update(FAST_POLLS)  # batches: moto's Wait states really wait
        catalog = json.loads(Path(DEFAULT_CATALOG).read_text())
        provider, models = fake.catalog(["chat", "stream", "tools"])
        catalog["providers"].append(provider)
        catalog["models"].extend(models)
        path = tmp_path_factory.mktemp("compat") / "catalog.json"
        path.write_text(json.dumps(catalog))
        os.environ["LLMGW_CATALOG"] = str(path)
        reset_process_state()  # the catalog and settings above
        from llm_gateway.compat.stream import with_doors
        from llm_gateway.local.server import LocalGateway
        from llm_gateway.service.asgi import ChatStreamApp

        # the bare app is what the Function URL serves
        with serve(LocalGateway()) as url, serve(with_doors(ChatStreamApp())) as bare_url:
            yield url, fake, bare_url


@pytest.fixture
def base_url(servers) -> str:
    return servers[0]


@pytest.fixture
def upstream(servers) -> FakeUpstream:
    fake = servers[1]
    fake.script(Script())
    yield fake
    fake.script(Script())


@pytest.fixture
def oai(base_url) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url + "/openai/v1", api_key=DEV_API_KEY, max_retries=0, timeout=30)


@pytest.fixture
def claude(base_url) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url + "/anthropic", api_key=DEV_API_KEY, max_retries=0, timeout=30)


def usage_record(request_id: str, timeout: float = 3.0) -> dict[str, Any]:
    from llm_gateway.stores.usage import UsageStore

    end = time.monotonic() + timeout
    while True:
        found = [r for r in UsageStore().list_for_tenant(DEV_TENANT) if r["request_id"] == request_id]
        if found or time.monotonic() > end:
            assert found, f"no usage record for {request_id}"
            return found[0]
        time.sleep(0.05)


# ================================================================ OpenAI SDK


def test_openai_chat(oai):
    raw = oai.chat.completions.with_raw_response.create(
        model="mock::echo", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
        max_completion_tokens=50, temperature=0.2, top_p=0.9, seed=7, user="alice", metadata={"team": "search"},
        extra_headers={"x-llmgw-conversation-id": "conv-42"},
    )
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.model == "mock::echo"
    choice = completion.choices[0]
    assert choice.index == 0 and choice.finish_reason == "stop"
    assert choice.message.role == "assistant" and choice.message.content == "You said: Hello there"
    assert choice.message.tool_calls is None
    usage = completion.usage
    assert usage.prompt_tokens > 0 and usage.completion_tokens == 5
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert usage.prompt_tokens_details.cached_tokens == 0 and usage.completion_tokens_details.reasoning_tokens == 0
    assert raw.headers["x-llmgw-provider"] == "mock"
    record = usage_record(raw.headers["x-request-id"])  # metered exactly like a native request
    assert record["route"] == "chat" and record["outcome"] == "ok" and record["conversation_id"] == "conv-42"
    assert int(record["input_tokens"]) == usage.prompt_tokens and int(record["output_tokens"]) == 5


def test_openai_chat_array_content_and_media_parts(oai):
    from llm_gateway.media import samples

    png = samples.png(8, 8, 3)
    import base64

    completion = oai.chat.completions.create(model="mock", messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode(), "detail": "low"}},
        {"type": "input_audio", "input_audio": {"data": base64.b64encode(samples.speech_wav("hi")).decode(), "format": "wav"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64," + base64.b64encode(b"%PDF-1.4\n%%EOF").decode()}},
    ]}])
    assert completion.choices[0].message.content == "You said: What is this? I received 3 attachment(s): image, audio, document."


def test_openai_stream_with_usage(oai):
    chunks = list(oai.chat.completions.create(model="mock::echo", stream=True, stream_options={"include_usage": True},
                                              messages=[{"role": "user", "content": "one two three"}]))
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: one two three"
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens == 6 and last.usage.total_tokens == last.usage.prompt_tokens + 6
    assert all(c.usage is None for c in chunks[:-1])


def test_openai_stream_without_usage_option_has_no_usage_chunk(oai):
    chunks = list(oai.chat.completions.create(model="mock::echo", stream=True, messages=[{"role": "user", "content": "hi"}]))
    assert all(c.choices for c in chunks) and chunks[-1].choices[0].finish_reason == "stop"


def test_openai_tool_round_trip(oai):
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = oai.chat.completions.create(model="mock::echo", messages=messages, tools=[WEATHER_TOOL], tool_choice="auto")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock"}
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18 C and sunny"})
    second = oai.chat.completions.create(model="mock::echo", messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == f"Based on the tool results ({call.id} -> 18 C and sunny), here is the answer."


def test_openai_streamed_tool_call(oai):
    stream = oai.chat.completions.create(model="mock::echo", stream=True, messages=[{"role": "user", "content": "Weather?"}],
                                         tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}})
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or ():
            entry = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            entry["id"] += tc.id or ""
            entry["name"] += (tc.function.name or "") if tc.function else ""
            entry["arguments"] += (tc.function.arguments or "") if tc.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and calls[0]["name"] == "get_weather" and json.loads(calls[0]["arguments"]) == {"city": "mock"}


class CalendarEvent(BaseModel):
    name: str
    date: str
    participants: list[str]


def test_openai_structured_output_parse(oai):
    completion = oai.chat.completions.parse(model="mock::echo", response_format=CalendarEvent,
                                            messages=[{"role": "user", "content": "Alice and Bob go to a fair on Friday."}])
    event = completion.choices[0].message.parsed
    assert isinstance(event, CalendarEvent) and event.participants == ["mock"]


def test_openai_json_object_mode(oai):
    completion = oai.chat.completions.create(model="mock::echo", response_format={"type": "json_object"},
                                             messages=[{"role": "user", "content": "JSON please"}])
    assert json.loads(completion.choices[0].message.content) == {}


def test_openai_embeddings(oai):
    result = oai.embeddings.create(model="mock::embed", input=["alpha", "beta"])  # the SDK asks for base64 and decodes it
    assert result.object == "list" and [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == 256 and abs(sum(v * v for v in result.data[0].embedding) - 1) < 1e-4
    floats = oai.embeddings.create(model="mock-embed", input="alpha", encoding_format="float", dimensions=8)
    assert len(floats.data[0].embedding) == 8
    assert result.usage.prompt_tokens == 2 and result.usage.total_tokens == 2


def test_openai_image_generation(oai):
    result = oai.images.generate(model="mock::image", prompt="a red circle", size="64x64", n=2)
    assert len(result.data) == 2
    png = httpx.get(result.data[0].url, timeout=10).content
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    inline = oai.images.generate(model="mock-image", prompt="a red circle", size="32x32", response_format="b64_json")
    import base64

    assert base64.b64decode(inline.data[0].b64_json).startswith(b"\x89PNG")
    assert inline.usage.input_tokens > 0


def test_openai_speech(oai):
    raw = oai.audio.speech.with_raw_response.create(model="mock::tts", voice="alloy", input="hello from the gateway")
    audio = raw.content
    assert raw.headers["content-type"] == "audio/wav" and audio[:4] == b"RIFF" and audio[8:12] == b"WAVE"
    with wave.open(io.BytesIO(audio)) as w:
        assert w.getnframes() > 0


def test_openai_transcription(oai):
    speech = oai.audio.speech.create(model="mock::tts", voice="alloy", input="transcribe me please", response_format="wav")
    transcript = oai.audio.transcriptions.create(model="mock::stt", file=("speech.wav", speech.read(), "audio/wav"), language="en")
    assert transcript.text == "transcribe me please"
    text = oai.audio.transcriptions.create(model="mock-stt", file=("speech.wav", speech.read()), response_format="text")
    assert text.strip() == "transcribe me please"


def test_openai_transcription_upload_is_stored_under_the_tenant_prefix(oai):
    from llm_gateway.config import settings
    from llm_gateway.stores.aws import client

    speech = oai.audio.speech.create(model="mock::tts", voice="alloy", input="stored upload")
    oai.audio.transcriptions.create(model="mock::stt", file=("speech.wav", speech.read()))
    keys = [o["Key"] for o in client("s3").list_objects_v2(Bucket=settings().files_bucket, Prefix=f"tenants/{DEV_TENANT}/").get("Contents", [])]
    assert any(k.endswith(".wav") for k in keys)


def test_openai_models(oai):
    ids = [m.id for m in oai.models.list()]
    assert "mock::echo" in ids and "mock::embed" in ids
    assert oai.models.retrieve("mock::echo").owned_by == "mock"
    assert oai.models.retrieve("mock").id == "mock::echo"  # aliases resolve
    with pytest.raises(openai.NotFoundError):
        oai.models.retrieve("nope::nothing")


def test_openai_batch_through_files(oai, upstream):
    lines = [{"custom_id": f"q-{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "mock::echo", "messages": [{"role": "user", "content": f"question {i}"}], "max_tokens": 50}}
             for i in range(3)]
    lines.append({"custom_id": "bad", "method": "POST", "url": "/v1/chat/completions",
                  "body": {"model": UPSTREAM, "messages": [{"role": "user", "content": "x"}]}})
    upstream.enqueue("POST", "/v1/chat/completions", Reply(400, json={"error": {"message": "bad input", "type": "invalid_request_error"}}))
    upload = oai.files.create(file=("batch.jsonl", "".join(json.dumps(x) + "\n" for x in lines).encode()), purpose="batch")
    assert upload.id.startswith("file-") and upload.purpose == "batch" and upload.bytes > 0
    assert oai.files.retrieve(upload.id).bytes == upload.bytes
    batch = oai.batches.create(input_file_id=upload.id, endpoint="/v1/chat/completions", completion_window="24h",
                               metadata={"job": "nightly"})
    assert batch.object == "batch" and batch.input_file_id == upload.id and batch.metadata == {"job": "nightly"}
    assert batch.request_counts.total == 4
    deadline = time.monotonic() + 60
    while batch.status not in ("completed", "failed", "cancelled", "expired"):
        assert time.monotonic() < deadline, batch
        time.sleep(0.5)
        batch = oai.batches.retrieve(batch.id)
    assert batch.status == "completed" and batch.request_counts.completed == 3 and batch.request_counts.failed == 1
    answers = [json.loads(line) for line in oai.files.content(batch.output_file_id).text.splitlines()]
    by_id = {a["custom_id"]: a for a in answers}
    for i in range(3):
        body = by_id[f"q-{i}"]["response"]["body"]
        assert by_id[f"q-{i}"]["response"]["status_code"] == 200 and body["object"] == "chat.completion"
        assert body["choices"][0]["message"]["content"] == f"You said: question {i}"
    assert set(by_id) == {"q-0", "q-1", "q-2"}
    failed = [json.loads(line) for line in oai.files.content(batch.error_file_id).text.splitlines()]
    assert [f["custom_id"] for f in failed] == ["bad"] and failed[0]["response"]["status_code"] >= 400
    assert failed[0]["response"]["body"]["error"]["message"]
    with pytest.raises(openai.NotFoundError):
        oai.files.retrieve("file-" + "bm9wZS5qc29ubA")


def test_openai_errors(oai, base_url):
    bad = openai.OpenAI(base_url=base_url + "/openai/v1", api_key="llmgw_nobody00_not-a-real-key-0000000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as auth:
        bad.chat.completions.create(model="mock::echo", messages=[{"role": "user", "content": "hi"}])
    assert auth.value.status_code == 401 and auth.value.code == "invalid_api_key" and "API key" in auth.value.message
    with pytest.raises(openai.NotFoundError) as missing:
        oai.chat.completions.create(model="nope::nothing", messages=[{"role": "user", "content": "hi"}])
    assert missing.value.code == "model_not_found" and missing.value.param == "model" and "nope::nothing" in missing.value.message
    with pytest.raises(openai.BadRequestError) as many:
        oai.chat.completions.create(model="mock::echo", n=2, messages=[{"role": "user", "content": "hi"}])
    assert many.value.param == "n" and many.value.type == "invalid_request_error" and "n must be 1" in many.value.message
    with pytest.raises(openai.BadRequestError) as bad_value:
        oai.chat.completions.create(model="mock::echo", temperature=5, messages=[{"role": "user", "content": "hi"}])
    assert bad_value.value.param == "temperature"
    with pytest.raises(openai.BadRequestError) as unknown:
        oai.chat.completions.create(model="mock::echo", messages=[{"role": "user", "content": "hi"}], extra_body={"bogus": 1})
    assert unknown.value.body["message"] == "Unrecognized request argument supplied: bogus"
    with pytest.raises(openai.BadRequestError) as cap:
        oai.chat.completions.create(model="mock::embed", messages=[{"role": "user", "content": "hi"}])
    assert cap.value.code == "capability_not_supported"
    # an unauthenticated request the door would refuse anyway still gets the 401 first
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="mock::echo", n=3, messages=[{"role": "user", "content": "hi"}])


def test_openai_timeout_and_fallback_headers(oai, upstream):
    upstream.script(Script(delay_s=1.5))
    with pytest.raises(openai.InternalServerError) as slow:
        oai.chat.completions.create(model=UPSTREAM, messages=[{"role": "user", "content": "hi"}],
                                    extra_headers={"x-llmgw-timeout-total-ms": "300"})
    assert slow.value.status_code == 504 and slow.value.code == "timeout" and "300 ms" in slow.value.message
    upstream.script(Script())
    upstream.enqueue("POST", "/v1/chat/completions", Reply(503, json={"error": {"message": "overloaded", "type": "server_error"}}))
    raw = oai.chat.completions.with_raw_response.create(
        model=UPSTREAM, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-llmgw-fallback": "mock::echo", "x-llmgw-fallback-strategy": "sequential"})
    assert raw.headers["x-llmgw-fallback-used"] == "true" and raw.parse().model == "mock::echo"
    with pytest.raises(openai.BadRequestError) as bad_header:
        oai.chat.completions.create(model="mock::echo", messages=[{"role": "user", "content": "hi"}],
                                    extra_headers={"x-llmgw-timeout-ttft-ms": "soon"})
    assert bad_header.value.param == "x-llmgw-timeout-ttft-ms"


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


def test_openai_stream_is_truly_streamed(oai, upstream):
    upstream.script(Script(text=words(30), chunk_delay_s=0.2, input_tokens=9, output_tokens=15))  # ~2 s
    t0 = time.monotonic()
    arrivals = []
    for chunk in oai.chat.completions.create(model=UPSTREAM, stream=True, stream_options={"include_usage": True},
                                             messages=[{"role": "user", "content": "count"}]):
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic() - t0, chunk.choices[0].delta.content))
        last = chunk
    assert "".join(t for _, t in arrivals) == words(30)
    assert arrivals[-1][0] - arrivals[0][0] > 1.0, "chunks arrived together: the door stream was buffered"
    assert last.usage.prompt_tokens == 9 and last.usage.completion_tokens == 15


# ================================================================ Anthropic SDK


def test_anthropic_message(claude):
    raw = claude.messages.with_raw_response.create(
        model="mock::echo", max_tokens=100, system="Be brief.", metadata={"user_id": "alice"}, stop_sequences=["zzz"],
        messages=[{"role": "user", "content": "Hello Claude"}], extra_headers={"x-llmgw-conversation-id": "conv-7"})
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant" and message.model == "mock::echo"
    assert message.content[0].type == "text" and message.content[0].text == "You said: Hello Claude"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens == 5
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    record = usage_record(raw.headers["x-request-id"])
    assert record["outcome"] == "ok" and record["conversation_id"] == "conv-7"


def test_anthropic_content_blocks(claude):
    import base64

    from llm_gateway.media import samples

    png = base64.b64encode(samples.png(8, 8, 1)).decode()
    pdf = base64.b64encode(b"%PDF-1.4\n%%EOF").decode()
    message = claude.messages.create(model="mock::echo", max_tokens=100, system=[{"type": "text", "text": "System block"}], messages=[
        {"role": "user", "content": [
            {"type": "text", "text": "Look"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": pdf}},
        ]}])
    assert message.content[0].text == "You said: Look I received 2 attachment(s): image, document."


def test_anthropic_stream_with_tool_use(claude):
    with claude.messages.stream(model="mock::echo", max_tokens=200, tools=[ANTHROPIC_WEATHER_TOOL],
                                messages=[{"role": "user", "content": "Weather in Paris?"}]) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_start" in events and "content_block_stop" in events and "message_delta" in events
    assert final.stop_reason == "tool_use"
    block = final.content[0]
    assert block.type == "tool_use" and block.name == "get_weather" and block.input == {"city": "mock"}
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
    # the tool round trip
    reply = claude.messages.create(model="mock::echo", max_tokens=200, tools=[ANTHROPIC_WEATHER_TOOL], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [b.model_dump() for b in final.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "18 C"}]},
    ])
    assert reply.content[0].text == f"Based on the tool results ({block.id} -> 18 C), here is the answer."


def test_anthropic_text_stream(claude):
    with claude.messages.stream(model="mock::echo", max_tokens=100, messages=[{"role": "user", "content": "stream me"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "You said: stream me" and final.stop_reason == "end_turn" and final.usage.output_tokens == 5


def test_anthropic_raw_event_sequence(base_url):
    """The exact wire order: message_start, content_block_start, ping, deltas, stop, message_delta, message_stop."""
    payload = {"model": "mock::echo", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "a b"}]}
    with httpx.Client(timeout=30) as client:
        body = client.post(base_url + "/anthropic/v1/messages", json=payload, headers={"x-api-key": DEV_API_KEY}).text
    names = [block.split("\n", 1)[0].removeprefix("event: ") for block in body.split("\n\n") if block]
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert set(names[3:-3]) == {"content_block_delta"}
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


def test_anthropic_count_tokens(claude):
    request = {"model": "mock::echo", "system": "Be brief.", "tools": [ANTHROPIC_WEATHER_TOOL],
               "messages": [{"role": "user", "content": "How many tokens is this?"}]}
    counted = claude.messages.count_tokens(**request)
    used = claude.messages.create(max_tokens=50, tool_choice={"type": "none"}, **request)
    assert counted.input_tokens == used.usage.input_tokens > 0


def test_anthropic_errors(claude, base_url):
    bad = anthropic.Anthropic(base_url=base_url + "/anthropic", api_key="llmgw_nobody00_not-a-real-key-0000000000", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as auth:
        bad.messages.create(model="mock::echo", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert auth.value.status_code == 401 and auth.value.body["error"]["type"] == "authentication_error"
    assert auth.value.body["type"] == "error" and "API key" in auth.value.body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.create(model="nope::nothing", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert missing.value.body["error"]["type"] == "not_found_error" and "nope::nothing" in missing.value.message
    with pytest.raises(anthropic.BadRequestError) as invalid:
        claude.messages.create(model="mock::echo", max_tokens=10, messages=[{"role": "user", "content": "hi"}], extra_body={"temperature": 5})
    assert invalid.value.body["error"]["type"] == "invalid_request_error" and invalid.value.body["request_id"]
    with pytest.raises(anthropic.BadRequestError) as no_max:
        claude.messages.create(model="mock::echo", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
                               extra_body={"max_tokens": None})
    assert "max_tokens" in no_max.value.message


def test_anthropic_fallback_and_timeout_headers(claude, upstream):
    upstream.enqueue("POST", "/v1/chat/completions", Reply(503, json={"error": {"message": "overloaded", "type": "server_error"}}))
    raw = claude.messages.with_raw_response.create(
        model=UPSTREAM, max_tokens=20, messages=[{"role": "user", "content": "hi"}], extra_headers={"x-llmgw-fallback": "mock::echo"})
    assert raw.headers["x-llmgw-fallback-used"] == "true" and raw.parse().model == "mock::echo"
    upstream.script(Script(delay_s=1.5))
    with pytest.raises(anthropic.InternalServerError) as slow:
        claude.messages.create(model=UPSTREAM, max_tokens=20, messages=[{"role": "user", "content": "hi"}],
                               extra_headers={"x-llmgw-timeout-ttft-ms": "300"})
    assert slow.value.status_code == 504 and slow.value.body["error"]["type"] == "timeout_error"


def test_anthropic_stream_is_truly_streamed(claude, upstream):
    upstream.script(Script(text=words(30), chunk_delay_s=0.2, input_tokens=9, output_tokens=15))
    t0 = time.monotonic()
    arrivals = []
    with claude.messages.stream(model=UPSTREAM, max_tokens=100, messages=[{"role": "user", "content": "count"}]) as stream:
        for text in stream.text_stream:
            arrivals.append((time.monotonic() - t0, text))
        final = stream.get_final_message()
    assert "".join(t for _, t in arrivals) == words(30)
    assert arrivals[-1][0] - arrivals[0][0] > 1.0, "events arrived together: the door stream was buffered"
    assert final.usage.input_tokens == 9 and final.usage.output_tokens == 15


# ================================================================ the streaming app (Function URL)


def test_streaming_app_serves_both_doors(servers, upstream):
    """`with_doors(ChatStreamApp())` — the Function URL's app — streams door chats truly and
    answers other door paths with the door's own 404."""
    url = servers[2]
    oai = openai.OpenAI(base_url=url + "/openai/v1", api_key=DEV_API_KEY, max_retries=0, timeout=30)
    claude = anthropic.Anthropic(base_url=url + "/anthropic", api_key=DEV_API_KEY, max_retries=0, timeout=30)
    upstream.script(Script(text=words(30), chunk_delay_s=0.15, input_tokens=9, output_tokens=15))
    t0 = time.monotonic()
    arrivals = [time.monotonic() - t0 for c in oai.chat.completions.create(
        model=UPSTREAM, stream=True, messages=[{"role": "user", "content": "x"}]) if c.choices and c.choices[0].delta.content]
    assert arrivals[-1] - arrivals[0] > 0.8
    assert oai.chat.completions.create(model="mock::echo", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content == "You said: hi"
    with claude.messages.stream(model="mock::echo", max_tokens=50, tools=[ANTHROPIC_WEATHER_TOOL],
                                messages=[{"role": "user", "content": "Weather?"}]) as stream:
        final = stream.get_final_message()
    assert final.content[0].type == "tool_use" and final.content[0].input == {"city": "mock"}
    with pytest.raises(openai.NotFoundError) as missing:
        oai.embeddings.create(model="mock::embed", input="x")
    assert "streaming endpoint" in missing.value.message
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=url + "/anthropic", api_key="llmgw_nobody00_not-a-real-key-0000000000", max_retries=0).messages.create(
            model="mock::echo", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    native = httpx.post(url + "/chat/completions", headers={"authorization": f"Bearer {DEV_API_KEY}"},
                        json={"model": "mock::echo", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]})
    assert native.status_code == 200 and native.json()["content"][0]["text"] == "You said: hi"  # the native route is untouched
