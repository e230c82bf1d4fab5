"""`POST /embeddings` through its Lambda handler, with the mock provider."""

import base64
import struct

import pytest

from tests.contract.schema_check import assert_valid


def embed(api, payload, **kw):
    return api.call("POST", "/embeddings", json_body=payload, **kw)


def test_single_string_gives_one_unit_vector_with_usage_and_cost(api):
    resp = embed(api, {"model": "mock::embed", "input": "hello world"})
    assert resp.status == 200, resp.body
    body = resp.json()
    assert_valid("embedding_response", body)
    [item] = body["data"]
    assert item["index"] == 0 and len(item["embedding"]) == 256
    assert sum(v * v for v in item["embedding"]) == pytest.approx(1.0)
    assert body["usage"]["input_tokens"] == 2 and body["usage"]["cost_estimate"] == pytest.approx(2 * 0.02 / 1e6)


def test_many_inputs_are_batched_and_rejoined_in_order(api):
    texts = [f"text number {i}" for i in range(150)]  # 3 provider batches of <=64
    body = embed(api, {"model": "mock::embed", "input": texts}).json()
    assert [d["index"] for d in body["data"]] == list(range(150))
    single = embed(api, {"model": "mock::embed", "input": texts[97]}).json()["data"][0]["embedding"]
    assert body["data"][97]["embedding"] == single  # same text, same vector, right position


def test_dimensions_and_base64(api):
    floats = embed(api, {"model": "mock::embed", "input": "abc", "dimensions": 8}).json()["data"][0]["embedding"]
    encoded = embed(api, {"model": "mock::embed", "input": "abc", "dimensions": 8, "encoding_format": "base64"}).json()["data"][0]["embedding"]
    decoded = struct.unpack("<8f", base64.b64decode(encoded))
    assert decoded == pytest.approx(floats, rel=1e-6)


@pytest.mark.parametrize("payload,status,code", [
    ({"model": "mock::embed", "input": []}, 400, "validation_error"),
    ({"model": "mock::embed", "input": [""]}, 400, "validation_error"),
    ({"model": "mock::embed", "input": "x", "encoding_format": "int8"}, 400, "validation_error"),
    ({"model": "mock::embed", "input": "x", "dimensions": 0}, 400, "validation_error"),
    ({"model": "mock::echo", "input": "x"}, 422, "capability_not_supported"),
    ({"model": "nope", "input": "x"}, 404, "model_not_found"),
])
def test_bad_embedding_requests(api, payload, status, code):
    resp = embed(api, payload)
    assert (resp.status, resp.json()["code"]) == (status, code)


def test_embeddings_need_a_key(api):
    assert embed(api, {"model": "mock::embed", "input": "x"}, key=None).status == 401
