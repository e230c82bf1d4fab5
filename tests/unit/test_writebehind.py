"""The local server's write-behind (stores/writebehind.py): many requests' post-call writes merged
into few calls, and nothing lost or double-counted."""

import pytest

from llm_gateway.stores import writebehind
from llm_gateway.stores.aggregates import AggregateStore
from llm_gateway.stores.budgets import BudgetStore, budget_key
from llm_gateway.stores.ratelimit import RateLimitStore
from llm_gateway.stores.usage import UsageStore


@pytest.fixture
def behind(aws, monkeypatch):
    monkeypatch.setenv("LLMGW_USAGE_ASYNC", "1")
    monkeypatch.setenv("LLMGW_WRITE_BEHIND_MS", "60000")  # flushed by the test, not the thread
    monkeypatch.setattr(writebehind, "_instance", None)
    w = writebehind.writer()
    assert w is not None
    yield w
    monkeypatch.setattr(writebehind, "_instance", None)


def count_calls(monkeypatch):
    from llm_gateway.stores.aws import client

    calls: list[str] = []
    client("dynamodb").meta.events.register("before-call.dynamodb.*", lambda **kw: calls.append(kw["model"].name))
    client("events").meta.events.register("before-call.events.*", lambda **kw: calls.append(kw["model"].name))
    return calls


def test_counters_are_summed_per_item_and_sent_once(behind, monkeypatch):
    budgets, rates, aggregates = BudgetStore(), RateLimitStore(), AggregateStore()
    k = budget_key("acme", "M202611")
    calls = count_calls(monkeypatch)
    for _ in range(50):
        budgets.charge(k, 0.001, 2e9)
        rates.adjust("RL#acme#T#600", tokens=-3)
        aggregates.add("acme", "2026-11-26", "mock::echo", {"requests": 1, "input_tokens": 7, "cost_usd": 0.001, "errors": 0})
    assert calls == []  # nothing sent yet
    behind.flush()
    assert sorted(calls) == ["UpdateItem"] * 3
    assert budgets.spent([k])[k] == pytest.approx(0.05)
    assert rates.current("RL#acme#T#600") == (0, -150)
    rows = aggregates.query("acme", "2026-11-26", "2026-11-26")
    assert rows[0]["requests"] == 50 and rows[0]["input_tokens"] == 350 and rows[0]["cost_usd"] == pytest.approx(0.05)
    behind.flush()  # nothing pending: no call, nothing added twice
    assert len(calls) == 3 + 3  # the three reads above
    assert budgets.spent([k])[k] == pytest.approx(0.05)


def test_usage_records_go_out_in_batches_and_events_ten_at_a_time(behind, monkeypatch):
    from llm_gateway.stores.events import EventSink

    usage = UsageStore()
    calls = count_calls(monkeypatch)
    for i in range(30):
        usage.record({"tenant_id": "acme", "request_id": f"req_{i}", "model": "mock::echo", "input_tokens": i, "timestamp": 1.8e9 + i})
    EventSink().put([{"detail-type": "request.completed", "detail": {"request_id": f"req_{i}"}} for i in range(12)])
    assert calls == []
    behind.flush()
    assert sorted(calls) == ["BatchWriteItem", "BatchWriteItem", "PutEvents", "PutEvents"]
    stored = usage.list_for_tenant("acme", limit=100)
    assert sorted(int(r["input_tokens"]) for r in stored) == list(range(30))


def test_off_outside_long_running_processes(aws, monkeypatch):
    monkeypatch.delenv("LLMGW_USAGE_ASYNC", raising=False)
    monkeypatch.setattr(writebehind, "_instance", None)
    assert writebehind.writer() is None  # Lambda: every write before the invocation returns
    monkeypatch.setenv("LLMGW_USAGE_ASYNC", "1")
    monkeypatch.setenv("LLMGW_WRITE_BEHIND_MS", "0")
    assert writebehind.writer() is None  # turned off explicitly


def test_drain_flushes_what_is_pending(behind):
    from llm_gateway.pipeline import parallel

    k = budget_key("acme", "D20261126")
    BudgetStore().charge(k, 1.5, 2e9)
    assert behind.pending() == 1
    parallel.drain()
    assert behind.pending() == 0 and BudgetStore().spent([k])[k] == 1.5
