"""The provider conformance suite: every registered fake provider × every feature, through the
real chat handler, held to the one normalized expectation in `scenarios.py`.

- supported request feature → the expected text / tool calls / finish / usage / cost, and the
  provider received what was asked (system prompt, parts, tools, schema, params);
- unsupported request feature → 422 `capability_not_supported` before any provider call, even
  with a catalog entry claiming every capability;
- report features (usage detail) → the exact value when the provider reports it;
- every error class → the same gateway code and status (Retry-After carried on 429);
- a streamed and a buffered answer to the same request → identical text, tool calls, finish, usage;
- a stream cut by the provider → never a clean `[DONE]`: an `event: error` (or a 502 when nothing
  had been sent yet).

Add a provider by registering its fake in `tests/fakes/registry.py`; nothing here changes.
"""

from __future__ import annotations

import json

import pytest

from tests.conformance.conftest import Result, expected_cost, fake_classes
from tests.conformance.scenarios import (
    CUT_STREAM, ERROR_EXPECT, FEATURES, LONG_TEXT, PARITY, PARITY_NEEDS, RETRY_AFTER_S, Expect, Scenario, Step,
    scenarios, usage_expect,
)
from tests.fakes.script import ERROR_CLASSES, Script

FAKES = fake_classes()
SCENARIOS = scenarios()


def _supports(provider: str) -> frozenset[str]:
    cls = FAKES[provider]
    return frozenset() if isinstance(cls, Exception) else frozenset(cls.supports)


def _reports(provider: str) -> set[str]:
    return {f for f in _supports(provider) if FEATURES[f].kind == "report"}


def _check_importable(provider: str) -> None:
    if isinstance(FAKES[provider], Exception):
        pytest.fail(f"fake for {provider!r} does not import: {FAKES[provider]!r}")


FEATURE_CELLS = [(p, f) for p in FAKES for f in SCENARIOS]


# ---------------------------------------------------------------- assertions (one place)


def assert_answer(res: Result, expect: Expect, usage: dict[str, int], *, stream: bool) -> None:
    assert res.status == 200, res.raw[:2000]
    if stream:
        assert res.error_event is None, res.error_event
        assert res.done, "the stream did not end with data: [DONE]"
        assert res.chunks[0]["delta"].get("role") == "assistant"
        last = res.chunks[-1]
        assert last.get("finish_reason") and last.get("usage"), "the last chunk must carry finish_reason and usage"
        assert all(c.get("usage") is None for c in res.chunks[:-1]), "usage belongs to the last chunk only"
    if expect.json is not None:
        assert json.loads(res.text) == expect.json, res.text
        if res.parsed is not None:
            assert res.parsed == expect.json
    elif expect.text is not None:
        assert res.text == expect.text
    got_calls = [{"name": t["name"], "arguments": t["arguments"]} for t in res.tool_calls]
    assert got_calls == list(expect.tool_calls)
    for t in res.tool_calls:
        assert isinstance(t.get("id"), str) and t["id"], f"tool call without an id: {t}"
    assert res.finish == expect.finish
    assert res.usage is not None
    got_usage = {k: v for k, v in res.usage.items() if k != "cost_estimate"}
    assert got_usage == usage
    assert res.usage["cost_estimate"] == pytest.approx(expected_cost(usage), rel=1e-9, abs=1e-12)


def assert_received(fake, req, expected: dict) -> None:
    if not expected or not hasattr(fake, "received"):
        return
    got = fake.received(req)
    for key, value in expected.items():
        if key in got:
            assert got[key] == value, f"provider received {key}={got[key]!r}, expected {value!r}"


def assert_no_violations(fake) -> None:
    assert not getattr(fake, "violations", []), f"the fake rejected the gateway's request: {fake.violations}"


def run_scenario(gw, scenario: Scenario) -> list[Result]:
    fake = gw.fake
    reports = _reports_of(fake)
    prev = None
    results = []
    for step in scenario.steps:
        fake.script(step.script)
        before = len(fake.requests)
        body = step.request(prev)
        res = gw.chat(body)
        assert_no_violations(fake)
        assert_answer(res, step.expect, usage_expect(step.script, reports), stream=bool(body.get("stream")))
        sent = fake.requests[before:]
        assert len(sent) == 1, f"expected one provider call, got {len(sent)}"
        assert_received(fake, sent[0], step.received)
        assert not any(s in res.raw for s in gw.secrets)
        prev = {"text": res.text, "tool_calls": res.tool_calls}
        results.append(res)
    return results


def _reports_of(fake) -> set[str]:
    return {f for f in fake.supports if f in FEATURES and FEATURES[f].kind == "report"}


# ---------------------------------------------------------------- provider × feature


@pytest.mark.parametrize("provider,feature", FEATURE_CELLS, ids=[f"{p}-{f}" for p, f in FEATURE_CELLS])
def test_feature(gateway, provider, feature):
    _check_importable(provider)
    scenario = SCENARIOS[feature]
    kind = FEATURES[feature].kind
    supported = feature in _supports(provider)
    if not supported and kind == "report":
        pytest.skip(f"{provider} does not report {feature}")
    gw = gateway(provider)
    if supported:
        run_scenario(gw, scenario)
        return
    # unsupported request feature: a clear refusal, before any provider call
    step: Step = scenario.steps[0]
    gw.fake.script(step.script)
    before = len(gw.fake.requests)
    res = gw.chat(step.request(None))
    assert res.status == 422, res.raw[:2000]
    assert res.headers["content-type"] == "application/problem+json"
    assert res.body["code"] == "capability_not_supported" and res.body["detail"]
    assert len(gw.fake.requests) == before, "the provider was called for a request it cannot take"


# ---------------------------------------------------------------- errors

ERROR_CELLS = [(p, e, m) for p in FAKES for e in ERROR_CLASSES for m in ("buffered", "stream")]


@pytest.mark.parametrize("provider,error_class,mode", ERROR_CELLS, ids=[f"{p}-{e}-{m}" for p, e, m in ERROR_CELLS])
def test_error_class(gateway, provider, error_class, mode):
    _check_importable(provider)
    if mode == "stream" and "stream" not in _supports(provider):
        pytest.skip(f"{provider} does not stream")
    gw = gateway(provider)
    gw.fake.script(Script(error=error_class, retry_after=RETRY_AFTER_S))
    res = gw.chat({"messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}], "stream": mode == "stream"})
    code, status = ERROR_EXPECT[error_class]
    assert res.status == status, res.raw[:2000]
    assert res.headers["content-type"] == "application/problem+json"
    body = res.body
    assert body["code"] == code and body["status"] == status
    assert body["detail"] and body.get("provider") == gw.provider_id
    assert "Traceback" not in res.raw
    assert not any(s in res.raw for s in gw.secrets), "a credential leaked into the error"
    if error_class == "rate_limit":
        assert body["retry_after_s"] == RETRY_AFTER_S
        assert res.headers["retry-after"] == str(RETRY_AFTER_S)


# ---------------------------------------------------------------- stream / buffered parity

PARITY_CELLS = [(p, c) for p in FAKES for c in PARITY]


@pytest.mark.parametrize("provider,case", PARITY_CELLS, ids=[f"{p}-{c}" for p, c in PARITY_CELLS])
def test_streamed_and_buffered_agree(gateway, provider, case):
    _check_importable(provider)
    supports = _supports(provider)
    need = PARITY_NEEDS[case]
    if need not in supports or (case == "tools" and "tools" not in supports):
        pytest.skip(f"{provider} does not support {need}")
    if case == "text_and_cache" and "usage_cache" not in supports:
        pytest.skip(f"{provider} does not report cached tokens")
    request, script = PARITY[case]
    gw = gateway(provider)
    gw.fake.script(script)
    buffered = gw.chat(request)
    streamed = gw.chat({**request, "stream": True})
    assert_no_violations(gw.fake)
    assert buffered.status == streamed.status == 200, (buffered.raw[:500], streamed.raw[:500])
    assert streamed.done and streamed.error_event is None
    assert streamed.normalized() == buffered.normalized()
    # …and both are the expected answer
    expect = Expect(text=script.text or "",
                    tool_calls=tuple({"name": t["name"], "arguments": t["arguments"]} for t in script.tool_calls),
                    finish=script.finish)
    assert_answer(buffered, expect, usage_expect(script, _reports(provider)), stream=False)


# ---------------------------------------------------------------- stream faults


@pytest.mark.parametrize("provider", list(FAKES))
def test_stream_cut_by_the_provider_is_an_error_not_a_short_answer(gateway, provider):
    _check_importable(provider)
    if "stream" not in _supports(provider):
        pytest.skip(f"{provider} does not stream")
    request, script = CUT_STREAM
    gw = gateway(provider)
    gw.fake.script(script)
    res = gw.chat(request)
    if res.status != 200:  # cut before anything was sent to the client
        assert (res.status, res.body["code"]) == (502, "provider_error"), res.raw[:1000]
        return
    assert not res.done, "a cut stream must not end with [DONE]"
    assert res.error_event is not None and res.error_event["code"] in ("provider_error", "provider_timeout")
    assert res.error_event.get("provider") == gw.provider_id
    assert LONG_TEXT.startswith(res.text)


# ---------------------------------------------------------------- the registry itself


@pytest.mark.parametrize("provider", list(FAKES))
def test_fake_declares_only_known_features(provider):
    _check_importable(provider)
    unknown = _supports(provider) - set(FEATURES)
    assert not unknown, f"{provider}.supports names features the suite does not know: {sorted(unknown)}"


def test_matrix_renders_every_provider_and_feature():
    from tests.conformance.matrix import matrix

    table = matrix()
    assert all(f"`{p}`" in table for p in FAKES)
    assert all(f.title in table for f in FEATURES.values())
