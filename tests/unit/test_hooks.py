"""The hook chain: built-ins, external (Lambda) hooks with their failure policy, and streams."""

import time

import pytest

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.models import ChatRequest
from llm_gateway.pipeline.hooks import HookChain, HookConfigError, HookContext, LambdaHook, guard_deltas
from llm_gateway.pipeline.hooks.chain import HOLD_CHARS
from llm_gateway.providers.base import StreamDelta, TokenUsage

CTX = HookContext(tenant_id="t1", user_id="u1", request_id="req_1", model="mock::echo")


def req(*texts):
    return ChatRequest.model_validate({"model": "mock::echo", "messages": [
        {"role": "user", "content": [{"type": "text", "text": t} for t in texts]}]})


def chain(**config):
    return HookChain.from_config(config)


def test_pii_redacts_the_request_without_touching_the_original():
    c = chain(pre_call=[{"type": "pii"}])
    original = req("mail me: a@b.io", "nothing here")
    record = []
    out = c.run_pre(CTX, original, record)
    assert out.messages[0].content[0].text == "mail me: [EMAIL]"
    assert out.messages[0].content[1].text == "nothing here"
    assert original.messages[0].content[0].text == "mail me: a@b.io"
    assert record == [{"stage": "pre_call", "hook": "pii", "action": "modify", "reason": "redacted 1 email"}]


def test_pii_block_mode_and_moderation_block():
    with pytest.raises(GatewayError) as e:
        chain(pre_call=[{"type": "pii", "action": "block", "entities": ["card"]}]).run_pre(CTX, req("4111 1111 1111 1111"), [])
    assert e.value.code == "request_blocked" and e.value.status == 403
    assert "1 card number" in e.value.detail and "4111" not in e.value.detail
    mod = chain(pre_call=[{"type": "moderation", "blocklist": ["Forbidden Topic"], "patterns": [r"secret\s+plan"]}])
    with pytest.raises(GatewayError) as e:
        mod.run_pre(CTX, req("tell me the SECRET   plan"), [])
    assert e.value.code == "request_blocked" and e.value.extra["hook"] == "moderation"
    assert mod.run_pre(CTX, req("forbidden topics are fine as a longer word"), []) is not None


def test_post_response_buffered_modify_and_block():
    c = chain(post_response=[{"type": "pii"}])
    content = [{"type": "text", "text": "reach me at a@b.io"}]
    assert c.apply_to_content(CTX, content, []) == [{"type": "text", "text": "reach me at [EMAIL]"}]
    blocker = chain(post_response=[{"type": "moderation", "blocklist": ["kaboom"]}])
    with pytest.raises(GatewayError) as e:
        blocker.apply_to_content(CTX, [{"type": "text", "text": "and then kaboom"}], [])
    assert e.value.code == "response_blocked" and e.value.status == 451


@pytest.mark.parametrize("spec,msg", [
    ({"type": "nope"}, "unknown hook type"),
    ({"type": "pii", "entities": ["dna"]}, "entities"),
    ({"type": "moderation"}, "blocklist"),
    ({"type": "moderation", "patterns": ["(unclosed"]}, "not a valid regex"),
    ({"type": "lambda", "function": "not a name!"}, "function"),
    ({"type": "lambda", "function": "f", "timeout_ms": 0}, "timeout_ms"),
    ({"type": "pii", "on_error": "maybe"}, "on_error"),
])
def test_invalid_configuration_is_refused(spec, msg):
    with pytest.raises(HookConfigError, match=msg):
        HookChain.from_config({"pre_call": [spec]})


# ---------------------------------------------------------------- external hooks


class FakeLambda:
    def __init__(self, answer=None, delay=0.0, error=None):
        self.answer, self.delay, self.error, self.calls = answer, delay, error, []

    def __call__(self, function, payload, timeout_ms):
        self.calls.append((function, payload, timeout_ms))
        if self.delay:
            time.sleep(self.delay)
        if self.error:
            raise self.error
        return self.answer


def lambda_chain(fake, stage="pre_call", **spec):
    hook = LambdaHook({"type": "lambda", "function": "arn:aws:lambda:us-east-1:123456789012:function:policy", **spec}, invoker=fake)
    return HookChain([hook], []) if stage == "pre_call" else HookChain([], [hook])


def test_external_hook_allow_block_modify():
    fake = FakeLambda({"action": "allow"})
    c = lambda_chain(fake, timeout_ms=500)
    r = req("hello")
    assert c.run_pre(CTX, r, []) is r
    function, payload, timeout = fake.calls[0]
    assert function.endswith(":policy") and timeout == 500
    assert payload["stage"] == "pre_call" and payload["tenant_id"] == "t1" and payload["request"]["model"] == "mock::echo"

    with pytest.raises(GatewayError) as e:
        lambda_chain(FakeLambda({"action": "block", "reason": "off-topic"})).run_pre(CTX, r, [])
    assert e.value.code == "request_blocked" and "off-topic" in e.value.detail and e.value.extra["hook"] == "lambda:policy"

    modified = {"model": "mock::echo", "messages": [{"role": "user", "content": [{"type": "text", "text": "rewritten"}]}]}
    out = lambda_chain(FakeLambda({"action": "modify", "request": modified})).run_pre(CTX, r, [])
    assert out.messages[0].content[0].text == "rewritten"

    post = lambda_chain(FakeLambda({"action": "modify", "text": "cleaned"}), stage="post")
    assert post.apply_to_content(CTX, [{"type": "text", "text": "raw"}], []) == [{"type": "text", "text": "cleaned"}]


@pytest.mark.parametrize("fake", [
    FakeLambda(delay=0.5, answer={"action": "allow"}),  # too slow
    FakeLambda(error=RuntimeError("boom")),  # invocation failed
    FakeLambda({"verdict": "yes"}),  # not an answer
    FakeLambda({"action": "modify", "request": {"model": 3}}),  # invalid modified request
])
def test_external_hook_failures_follow_the_policy(fake):
    r = req("hello")
    record = []
    started = time.monotonic()
    assert lambda_chain(fake, timeout_ms=100, on_error="open").run_pre(CTX, r, record) is r
    assert time.monotonic() - started < 0.4  # the timeout is enforced, not the hook's own pace
    assert record[0]["action"] == "error" and record[0]["on_error"] == "open"
    with pytest.raises(GatewayError) as e:
        lambda_chain(fake, timeout_ms=100, on_error="closed").run_pre(CTX, r, [])
    assert e.value.code == "request_blocked" and "fail-closed" in e.value.detail


def test_tenant_default_policy_applies_to_hooks_without_their_own():
    c = HookChain.from_config({"on_error": "open", "pre_call": [{"type": "lambda", "function": "f"}]})
    assert c.pre[0].on_error == "open"


# ---------------------------------------------------------------- streams


def stream(*texts, usage=TokenUsage(input_tokens=3, output_tokens=9)):
    for t in texts:
        yield StreamDelta(text=t)
    yield StreamDelta(finish_reason="stop", usage=usage)


def run(c, deltas):
    guard = c.stream_guard(CTX, [])
    out = list(guard_deltas(deltas, guard, StreamDelta))
    return "".join(d.text or "" for d in out), out


def test_stream_redaction_never_sends_a_partial_entity():
    c = chain(post_response=[{"type": "pii"}])
    words = "My card is 4111 1111 1111 1111 and mail is john@example.com, thanks a lot for asking me today".split(" ")
    pieces = [w + " " for w in words[:-1]] + [words[-1]]
    # split every piece into characters too: entities arrive across many deltas
    chars = [ch for p in pieces for ch in p]
    text, out = run(c, stream(*chars))
    assert text == "My card is [CARD] and mail is [EMAIL], thanks a lot for asking me today"
    sent_so_far = ""
    for d in out:
        sent_so_far += d.text or ""
        assert "4111" not in sent_so_far and "john@" not in sent_so_far
    assert out[-1].finish_reason == "stop" and out[-1].usage.output_tokens == 9


def test_stream_holds_back_at_most_the_window():
    c = chain(post_response=[{"type": "pii"}])
    guard = c.stream_guard(CTX, [])
    released = "".join(guard.feed("x") for _ in range(HOLD_CHARS + 10))
    assert len(released) == 10


def test_stream_block_raises_mid_stream_and_closes_the_provider():
    closed = []

    def provider():
        try:
            yield from stream("all ", "fine ", "until ", "kaboom", " happens")
        finally:
            closed.append(True)

    c = chain(post_response=[{"type": "moderation", "blocklist": ["kaboom"]}])
    guard = c.stream_guard(CTX, [])
    got = []
    with pytest.raises(GatewayError) as e:
        for d in guard_deltas(provider(), guard, StreamDelta):
            got.append(d.text)
    assert e.value.code == "response_blocked"
    assert "".join(t or "" for t in got) == "all fine until "
    assert closed == [True]


def test_stream_final_and_buffer_modes_for_external_hooks():
    fake = FakeLambda({"action": "block", "reason": "no"})
    with pytest.raises(GatewayError):
        run(lambda_chain(fake, stage="post"), stream("a ", "b"))
    assert fake.calls[0][1]["response"] == {"text": "a b", "final": True}
    # buffer: nothing leaves before the hook allowed it, and its modification is what is sent
    buffered = lambda_chain(FakeLambda({"action": "modify", "text": "A B"}), stage="post", stream="buffer")
    text, out = run(buffered, stream("a ", "b"))
    assert text == "A B" and [d.text for d in out if d.text] == ["A B"]
