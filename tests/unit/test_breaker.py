"""Circuit breaker state transitions (outbound/breaker.py), on a fake clock."""

from __future__ import annotations

import threading

import pytest

from llm_gateway.api.errors import GatewayError
from llm_gateway.outbound.breaker import CLOSED, HALF_OPEN, OPEN, BreakerRegistry, BreakerSettings, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(**kw) -> tuple[CircuitBreaker, Clock]:
    clock = Clock()
    settings = BreakerSettings(**{"failures": 3, "failure_rate": 0.0, "cooldown_s": 10.0, **kw})
    return CircuitBreaker("p|http://x", "p", settings, clock), clock


def fail(b: CircuitBreaker, n: int = 1) -> None:
    for _ in range(n):
        b.acquire().failure()


def test_opens_after_n_consecutive_failures_and_fails_fast():
    b, _ = breaker()
    fail(b, 2)
    assert b.state == CLOSED
    b.acquire().success()  # a success resets the count
    fail(b, 2)
    assert b.state == CLOSED
    fail(b)
    assert b.state == OPEN
    with pytest.raises(GatewayError) as info:
        b.acquire()
    err = info.value
    assert err.code == "provider_error" and err.provider == "p" and "circuit open" in err.detail
    assert err.extra["circuit"] == "open" and 0 < err.retry_after_s <= 10


def test_half_open_after_cooldown_admits_exactly_one_trial():
    b, clock = breaker()
    fail(b, 3)
    clock.now += 9.9
    assert b.state == OPEN
    clock.now += 0.2
    assert b.state == HALF_OPEN
    trial = b.acquire()
    with pytest.raises(GatewayError):  # a second call while the trial is in flight fails fast
        b.acquire()
    trial.success()
    assert b.state == CLOSED
    b.acquire().success()


def test_failed_trial_reopens_for_a_new_cooldown():
    b, clock = breaker()
    fail(b, 3)
    clock.now += 10
    b.acquire().failure()
    assert b.state == OPEN
    clock.now += 5
    assert b.state == OPEN
    clock.now += 5
    assert b.state == HALF_OPEN


def test_inconclusive_trial_lets_the_next_call_try():
    b, clock = breaker()
    fail(b, 3)
    clock.now += 10
    b.acquire().neutral()  # e.g. the client went away during the trial
    assert b.state == HALF_OPEN
    b.acquire().success()
    assert b.state == CLOSED


def test_abandoned_trial_is_replaced_after_a_cooldown():
    b, clock = breaker()
    fail(b, 3)
    clock.now += 10
    b.acquire()  # never reports
    with pytest.raises(GatewayError):
        b.acquire()
    clock.now += 10
    b.acquire().success()
    assert b.state == CLOSED


def test_failure_rate_rule():
    b, _ = breaker(failures=100, failure_rate=0.5, window=10, min_calls=10)
    for i in range(9):
        (b.acquire().failure if i % 2 else b.acquire().success)()
    assert b.state == CLOSED  # 4 of 9: below the minimum number of calls anyway
    b.acquire().failure()
    assert b.state == OPEN  # 5 of 10 failed


def test_neutral_outcomes_do_not_count_and_reports_are_idempotent():
    b, _ = breaker()
    for _ in range(10):
        b.acquire().neutral()
    p = b.acquire()
    p.failure()
    p.failure()
    p.failure()
    assert b.state == CLOSED and b.snapshot()["consecutive_failures"] == 1


def test_late_reports_of_calls_admitted_before_opening_are_ignored():
    b, clock = breaker()
    early = [b.acquire() for _ in range(3)]
    fail(b, 3)
    assert b.state == OPEN
    for p in early:
        p.success()
    assert b.state == OPEN
    clock.now += 10
    trial = b.acquire()
    early_fail = b  # noqa: F841
    trial.success()
    assert b.state == CLOSED


def test_registry_keys_by_provider_and_origin_and_can_be_disabled(monkeypatch):
    reg = BreakerRegistry(BreakerSettings(failures=1))
    a = reg.get("openai", "https://api.openai.com/v1/chat/completions")
    assert reg.get("openai", "https://api.openai.com/v1/embeddings") is a
    assert reg.get("openai", "https://other.example/v1/chat/completions") is not a
    assert reg.get("backup", "https://api.openai.com/v1/chat/completions") is not a
    reg.acquire("openai", "https://api.openai.com/v1/x").failure()
    assert reg.states()["openai|https://api.openai.com"] == OPEN
    off = BreakerRegistry(BreakerSettings(enabled=False))
    for _ in range(10):
        off.acquire("p", "http://x/").failure()
    assert off.get("p", "http://x/") is None


def test_settings_from_env(monkeypatch):
    monkeypatch.setenv("LLMGW_BREAKER_FAILURES", "7")
    monkeypatch.setenv("LLMGW_BREAKER_COOLDOWN_S", "2.5")
    monkeypatch.setenv("LLMGW_BREAKER_FAILURE_RATE", "0")
    monkeypatch.setenv("LLMGW_BREAKER_ENABLED", "false")
    s = BreakerSettings.from_env()
    assert (s.failures, s.cooldown_s, s.failure_rate, s.enabled) == (7, 2.5, 0.0, False)


def test_thread_safe_under_concurrent_reports():
    b, _ = breaker(failures=10_000)
    def work():
        for _ in range(500):
            b.acquire().failure()
            b.acquire().success()
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert b.state == CLOSED and len(b.snapshot()["window"]) == b.settings.window


def test_the_outbound_client_never_keeps_or_sends_provider_cookies():
    """One pooled client serves every tenant: a cookie a provider sets must not ride along on
    the next call (another tenant's, possibly)."""
    import httpx

    from llm_gateway.outbound.client import OutboundClient

    seen: list[str | None] = []

    def provider(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, json={}, headers={"set-cookie": "__cf_bm=tenant-a-session; Path=/; HttpOnly"})

    out = OutboundClient(httpx.Client(transport=httpx.MockTransport(provider)))
    for _ in range(2):
        assert out.request("p", "GET", "https://provider.test/v1/models").status_code == 200
    assert seen == [None, None]
    assert len(out.raw.cookies) == 0
