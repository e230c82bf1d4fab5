"""Rate-limit leases and the budget view (pipeline/leases.py) against the in-process moto:
the global limit holds whatever the instances lease, and quiet instances stay exact."""

import threading

import pytest

from llm_gateway.pipeline import parallel
from llm_gateway.pipeline.leases import BudgetView, RateLeases
from llm_gateway.stores.budgets import BudgetStore, budget_key
from llm_gateway.stores.ratelimit import RateCheck, RateLimitStore, rate_key

W = 600  # a window start


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def check(rpm=None, tpm=None, tokens=10, ident="tenant#acme#"):
    return RateCheck("tenant", rate_key("acme", W), rpm, tpm, tokens, ident)


def admit(leases: RateLeases, c: RateCheck, window: int = W):
    return leases.try_local(c, window) or leases.claim(c, window)


def test_a_quiet_instance_claims_one_request_at_a_time(aws):
    store = RateLimitStore()
    clock = Clock()
    leases = RateLeases(store, clock=clock)
    c = check(rpm=10_000, tpm=10**6)
    for i in range(5):  # one request every 1.5 s: never two within a lease horizon
        o = admit(leases, c)
        assert o.allowed and not o.leased and store.current(c.key) == (i + 1, 10 * (i + 1))
        clock.t += 1.5


def test_a_busy_instance_leases_and_admits_locally(aws):
    store = RateLimitStore()
    clock = Clock()
    leases = RateLeases(store, clock=clock)
    c = check(rpm=10_000, tpm=10**7)
    outcomes = [admit(leases, c) for _ in range(30)]
    parallel.drain()
    assert all(o.allowed for o in outcomes)
    assert any(o.leased for o in outcomes)
    req, tok = store.current(c.key)
    # the counter holds every admitted request, and at most one lease (100 = 1 % of the limit) more
    assert 30 <= req <= 30 + 100 and tok >= 300
    # remaining counts come from what the counter saw
    assert outcomes[-1].remaining_requests is not None and outcomes[-1].remaining_requests <= 10_000 - 30


@pytest.mark.parametrize("instances", [2, 3])
def test_the_limit_holds_across_instances_whatever_they_lease(aws, instances):
    """Several instances, each with its own leases, hammer one counter: never more admitted than
    the limit; and all but what the leases still hold is used."""
    limit = 400
    store = RateLimitStore()
    fleet = [RateLeases(store, clock=Clock()) for _ in range(instances)]
    admitted = [0] * instances
    lock = threading.Lock()

    def run(i: int) -> None:
        c = check(rpm=limit, ident=f"tenant#acme#{i}")  # the same counter; each instance its own lease
        for _ in range(limit):
            o = admit(fleet[i], c)
            if o.allowed:
                with lock:
                    admitted[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(instances)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    parallel.drain()
    held = sum(lease.req for f in fleet for lease in f._leases.values())
    assert sum(admitted) <= limit
    assert sum(admitted) + held == store.current(check().key)[0] <= limit
    assert sum(admitted) >= limit - instances * (limit // 100)  # stranded: at most one lease each


def test_small_limits_never_lease(aws):
    store = RateLimitStore()
    leases = RateLeases(store, clock=Clock())
    c = check(rpm=150)  # 1 % of it is one request
    results = [admit(leases, c) for _ in range(160)]
    assert sum(o.allowed for o in results) == 150
    assert not any(o.leased for o in results)


def test_a_new_window_starts_a_new_lease_and_give_back_returns_to_it(aws):
    store = RateLimitStore()
    leases = RateLeases(store, clock=Clock())
    c = check(rpm=10_000, tpm=10**7)
    for _ in range(10):
        admit(leases, c)
    parallel.drain()
    local = leases.try_local(c, W)
    assert local is not None and local.leased
    left = leases._leases[c.ident].req
    assert leases.give_back(local, W) is None and leases._leases[c.ident].req == left + 1
    nxt = RateCheck("tenant", rate_key("acme", W + 60), 10_000, 10**7, 10, c.ident)
    assert leases.try_local(nxt, W + 60) is None  # nothing leased in the new window yet
    assert leases._leases[c.ident].req == 0


def test_token_corrections_come_out_of_the_lease_then_the_counter(aws):
    store = RateLimitStore()
    leases = RateLeases(store, clock=Clock())
    c = check(rpm=10_000, tpm=10**7, tokens=10)
    for _ in range(10):
        admit(leases, c)
    parallel.drain()
    o = leases.try_local(c, W)
    assert o is not None and o.leased
    lease = leases._leases[c.ident]
    tok = lease.tok
    assert leases.correct(o, W, -5) is None and lease.tok == tok + 5  # used less: back to the lease
    before = store.current(c.key)[1]
    task = leases.correct(o, W, lease.tok + 7)  # used more than the lease holds: the rest on the counter
    assert task is not None and lease.tok == 0
    task()
    assert store.current(c.key)[1] == before + 7
    single = RateCheck("tenant", c.key, 10_000, 10**7, 10, "other")
    exact = leases.claim(single, W)
    assert not exact.leased and leases.correct(exact, W, 3) is not None


def test_leases_off_means_one_update_per_request(aws, monkeypatch):
    monkeypatch.setenv("LLMGW_RATE_LEASE_S", "0")
    from llm_gateway.config import reset_settings

    reset_settings()
    store = RateLimitStore()
    leases = RateLeases(store, clock=Clock())
    c = check(rpm=10_000)
    for _ in range(20):
        assert leases.try_local(c, W) is None
        assert not leases.claim(c, W).leased
    assert store.current(c.key)[0] == 20


def test_budget_view_is_used_while_far_from_the_limit_and_read_near_it(aws):
    store = BudgetStore()
    clock = Clock()
    view = BudgetView(store, clock=clock)
    k = budget_key("acme", "M202611")
    assert view.cached({k: 10.0}) is None  # never read
    assert view.read([k]) == {k: 0.0}
    assert view.cached({k: 10.0}) == {k: 0.0}
    store.charge(k, 5.0, 2e9)  # another instance spends
    view.charged(k, 3.0)  # this instance's own charge shows at once
    assert view.cached({k: 10.0}) == {k: 3.0}
    view.charged(k, 5.0)  # now at 80 % of the limit: the view is not trusted any more
    assert view.cached({k: 10.0}) is None
    assert view.read([k]) == {k: 5.0}
    clock.t += 1.5  # older than the freshness window
    assert view.cached({k: 100.0}) is None


def test_budget_view_refreshes_in_the_background_when_half_stale(aws):
    store = BudgetStore()
    clock = Clock()
    view = BudgetView(store, clock=clock)
    k = budget_key("acme", "M202611")
    view.read([k])
    store.charge(k, 2.0, 2e9)
    clock.t += 0.6
    assert view.cached({k: 100.0}) == {k: 0.0}  # served, and a refresh started
    parallel.drain()
    deadline = 50
    while view._refreshing and deadline:
        threading.Event().wait(0.02)
        deadline -= 1
    assert view._cache[k].spent == 2.0
