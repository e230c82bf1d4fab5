"""Every sample event in events/ through the real Lambda handler its route deploys to.

events/index.json maps each file to the expected status and body shape; a new route adds its
event file and one index line. The events are the ones `sam local invoke`-style tools and the
README use, so they must stay valid for the deployed API: their route keys are checked against
the CDK route table (infra/spec.py).
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from infra import spec
from llm_gateway.local.aws import DEV_API_KEY
from tests.contract.schema_check import assert_valid

EVENTS = Path(__file__).resolve().parents[2] / "events"
INDEX: dict[str, dict[str, Any]] = {
    name: expect for name, expect in json.loads((EVENTS / "index.json").read_text()).items() if not name.startswith("_")
}


def load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def path_pattern(route_path: str) -> re.Pattern[str]:
    """`/jobs/{id}` -> one segment, `/openai/{proxy+}` -> the rest of the path (HTTP API semantics)."""
    parts = re.split(r"(\{[^}]+\})", route_path)
    out = "".join(("(?P<%s>.+)" % p[1:-2]) if p.endswith("+}") else ("(?P<%s>[^/]+)" % p[1:-1]) if p.startswith("{")
                  else re.escape(p) for p in parts)
    return re.compile(out + "$")


def family_for(event: dict[str, Any]) -> str:
    """The family whose function the deployed HTTP API routes this event to."""
    for fs in spec.FUNCTIONS:
        if event["routeKey"] in {f"{m} {p}" for m, p in fs.routes}:
            return fs.family
    raise AssertionError(f"route {event['routeKey']!r} is not in infra/spec.py")


class Context:
    function_name = "sample-event"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sample-event"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/sample-event"
    log_stream_name = "sample"
    function_version = "$LATEST"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 29_000


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    handler = importlib.import_module(f"functions.{family_for(event)}.handler").lambda_handler
    return handler(event, Context())


def test_index_lists_every_event_file_and_nothing_else():
    files = {p.name for p in EVENTS.glob("*.json")} - {"index.json"}
    assert files == set(INDEX)


@pytest.mark.parametrize("name", sorted(INDEX))
def test_event_is_a_well_formed_http_api_event_for_a_deployed_route(name):
    event = load(name)
    assert event["version"] == "2.0"
    method, path = event["routeKey"].split(" ", 1)
    assert event["routeKey"] in spec.route_keys()
    assert event["requestContext"]["http"]["method"] == method
    assert event["rawPath"] == event["requestContext"]["http"]["path"]
    match = path_pattern(path).match(event["rawPath"])
    assert match, (event["rawPath"], path)
    assert event.get("pathParameters", {}) == match.groupdict()  # what API Gateway fills in
    assert event["requestContext"]["routeKey"] == event["routeKey"]
    assert all(k == k.lower() for k in event["headers"])  # HTTP API lower-cases header names
    if "body" in event:
        assert event["isBase64Encoded"] is False and json.loads(event["body"])
        assert event["headers"]["content-length"] == str(len(event["body"].encode()))
    auth = event["headers"].get("authorization")
    assert auth in (None, f"Bearer {DEV_API_KEY}")  # only the documented development key
    assert event["headers"].get("x-api-key") in (None, DEV_API_KEY)
    lam = event["requestContext"].get("authorizer", {}).get("lambda")
    if lam is not None:  # what the deployed Lambda authorizer adds (infra/constructs/auth.py)
        assert set(lam) == {"tenant_id", "user_id", "key_id", "scopes"}


def test_every_deployed_route_has_a_sample_event():
    covered = {load(name)["routeKey"] for name in INDEX}
    assert covered == spec.route_keys()


@pytest.mark.parametrize("name", sorted(INDEX))
def test_event_through_its_handler(aws, name):
    expect = INDEX[name]
    result = invoke(load(name))
    assert result["statusCode"] == expect["status"], result.get("body")
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    body = result.get("body") or ""
    shape = expect["shape"]
    if shape == "stream":
        assert headers["content-type"].startswith("text/event-stream")
        frames = [f for f in body.split("\n\n") if f]
        assert frames[-1] == "data: [DONE]"
        chunks = [json.loads(f.removeprefix("data: ")) for f in frames[:-1]]
        for chunk in chunks:
            assert_valid("stream_chunk", chunk)
        assert chunks[-1]["finish_reason"] and chunks[-1]["usage"]["output_tokens"] > 0
        return
    data = json.loads(body)
    if shape == "response":
        assert headers["content-type"].startswith("application/json")
        assert_valid("response", data)
        assert data["content"][0]["type"] == "text" and data["usage"]["input_tokens"] > 0
    elif shape == "models":
        assert data["data"] and all({"id", "capabilities"} <= set(m) for m in data["data"])
    elif shape == "embeddings":
        assert_valid("embedding_response", data)
        assert [d["index"] for d in data["data"]] == list(range(len(json.loads(load(name)["body"])["input"])))
    elif shape == "usage":
        assert data["object"] == "usage" and data["tenant_id"] and {"data", "by_model", "totals"} <= set(data)
    elif shape == "job":
        assert data["id"].startswith("job_") and data["status"] == "pending"
        assert headers["location"] == f"/jobs/{data['id']}"
    elif shape == "batch":
        assert data["id"].startswith("batch_") and data["status"] == "pending"
        assert headers["location"] == f"/batches/{data['id']}"
    elif shape == "json":
        assert headers["content-type"].startswith("application/json")
        assert {k: data.get(k) for k in expect["fields"]} == expect["fields"]
    elif shape == "problem":
        assert headers["content-type"] == "application/problem+json"
        assert data["status"] == expect["status"] and data["code"] == expect["code"] and data["detail"]
    else:
        raise AssertionError(f"unknown shape {shape!r} in events/index.json")
