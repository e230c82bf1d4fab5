"""Bedrock embeddings (Titan v2 one input per call, Cohere batches) and image generation (Nova
Canvas) through the Lambda handlers -> boto3 `invoke_model` -> the fake Bedrock Runtime
(tests/fakes/bedrock_media.py). See tests/integration/test_bedrock.py for why moto lets these
calls through to the fake."""

from __future__ import annotations

import pytest

from llm_gateway.media import samples
from tests.conftest import user
from tests.fakes.bedrock_media import FakeBedrockMedia
from tests.fakes.openai_media import vector
from tests.integration.test_media_out import stored


@pytest.fixture
def fake(api, use_catalog):
    server = FakeBedrockMedia().start()
    provider, models = server.media_catalog()
    use_catalog([provider], models)
    yield server
    server.stop()
    assert server.violations == []


def embed(api, payload):
    return api.call("POST", "/embeddings", json_body=payload)


def test_titan_v2_one_call_per_input_rejoined_in_order(api, fake):
    texts = [f"line {i} of the manual" for i in range(12)]
    resp = embed(api, {"model": "bedrock::amazon.titan-embed-text-v2:0", "input": texts, "dimensions": 256})
    assert resp.status == 200, resp.body
    body = resp.json()
    assert [d["index"] for d in body["data"]] == list(range(12))
    assert all(d["embedding"] == pytest.approx(vector(t, 256)) for t, d in zip(texts, body["data"]))
    assert len(fake.invocations) == 12 and all(b == {"inputText": b["inputText"], "normalize": True, "dimensions": 256} for _, b in fake.invocations)
    assert body["usage"]["input_tokens"] == 12 * 5


def test_titan_dimensions_must_be_allowed(api, fake):
    resp = embed(api, {"model": "bedrock::amazon.titan-embed-text-v2:0", "input": "x", "dimensions": 300})
    assert resp.status == 400 and "one of 256, 512, 1024" in resp.json()["detail"]
    assert fake.invocations == []


def test_cohere_batches_of_96_and_token_header(api, fake):
    texts = [f"t{i}" for i in range(100)]
    body = embed(api, {"model": "bedrock::cohere.embed-english-v3", "input": texts}).json()
    assert len(body["data"]) == 100 and body["data"][99]["embedding"] == pytest.approx(vector("t99", 1024))
    assert sorted(len(b["texts"]) for _, b in fake.invocations) == [4, 96]  # batches run concurrently
    assert fake.invocations[0][1]["input_type"] == "search_document"
    assert body["usage"]["input_tokens"] == 100


def test_nova_canvas_text_to_image(api, fake):
    resp = api.chat({"model": "bedrock::amazon.nova-canvas-v1:0", "messages": [user("a glass teapot")],
                     "media": {"n": 2, "size": "64x48", "seed": 7}})
    assert resp.status == 200, resp.body
    body = resp.json()
    assert [p["type"] for p in body["content"]] == ["image", "image"]
    png = stored(body["content"][0]["url"])
    assert samples.png_size(png) == (64, 48) and samples.png_text(png) == "a glass teapot"
    assert body["usage"]["images"] == 2 and body["usage"]["cost_estimate"] == pytest.approx(0.08)
    model, sent = fake.invocations[-1]
    assert model == "amazon.nova-canvas-v1:0"
    assert sent == {"taskType": "TEXT_IMAGE", "textToImageParams": {"text": "a glass teapot"},
                    "imageGenerationConfig": {"numberOfImages": 2, "width": 64, "height": 48, "seed": 7}}
