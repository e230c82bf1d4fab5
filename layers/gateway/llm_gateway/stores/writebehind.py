"""Write-behind for long-running processes: the post-call writes of many requests merged into
a few calls, sent by one flusher thread every `LLMGW_WRITE_BEHIND_MS` (default 100 ms).

On with `LLMGW_USAGE_ASYNC=1` (the local server, where post-call writes already run after the
response). Never in Lambda: an environment may freeze, or be discarded, once it has answered,
so there every write is made before the invocation returns.

- Counter `ADD`s on one item — budget charges, day aggregates, token corrections — are summed
  and sent as one `UpdateItem` per item per flush (DynamoDB adds them exactly as it would
  have added each: no read-modify-write).
- Usage records go out 25 to a `BatchWriteItem` (unprocessed items retried).
- Audit events go out 10 to a `PutEvents`.

What a crash loses is at most one interval of these writes; `flush()` (called by
`parallel.drain`, i.e. on shutdown) sends what is pending.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

MAX_BATCH_WRITE = 25


def active() -> bool:
    return os.environ.get("LLMGW_USAGE_ASYNC") == "1" and os.environ.get("LLMGW_WRITE_BEHIND_MS", "100") != "0"


class WriteBehind:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._counters: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[dict[str, Any], dict[str, float], dict[str, Any]]] = {}
        self._puts: dict[str, list[dict[str, Any]]] = {}
        self._events: list[dict[str, Any]] = []
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ enqueue

    def add(self, table: str, key: dict[str, Any], figures: dict[str, float], set_if_absent: dict[str, Any]) -> None:
        """`ADD figures` (numbers; floats kept as floats) and `SET name = if_not_exists(name, value)`."""
        ident = (table, tuple(sorted((k, next(iter(v.values()))) for k, v in key.items())))
        with self._lock:
            entry = self._counters.get(ident)
            if entry is None:
                self._counters[ident] = (key, dict(figures), dict(set_if_absent))
            else:
                sums = entry[1]
                for name, value in figures.items():
                    sums[name] = sums.get(name, 0) + value
        self._start()

    def put(self, table: str, item: dict[str, Any]) -> None:
        with self._lock:
            self._puts.setdefault(table, []).append(item)
        self._start()

    def event_entries(self, entries: list[dict[str, Any]]) -> None:
        with self._lock:
            self._events.extend(entries)
        self._start()

    # ------------------------------------------------------------------ flushing

    def _start(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="llmgw-write-behind", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        _lower_thread_priority()
        while True:
            time.sleep(self.interval_s)
            self.flush()

    def pending(self) -> int:
        with self._lock:
            return len(self._counters) + sum(len(v) for v in self._puts.values()) + len(self._events)

    def flush(self) -> None:
        """Send everything pending now; failures are logged, never raised."""
        with self._flush_lock:
            with self._lock:
                counters, self._counters = self._counters, {}
                puts, self._puts = self._puts, {}
                events, self._events = self._events, []
            if not (counters or puts or events):
                return
            from llm_gateway.observability import logger

            for name, send in (("counters", lambda: self._send_counters(counters)), ("records", lambda: self._send_puts(puts)),
                               ("events", lambda: self._send_events(events))):
                try:
                    send()
                except Exception as exc:  # noqa: BLE001 - a lost interval is logged, the process goes on
                    logger.error(f"write-behind {name} failed", extra={"error": type(exc).__name__})

    @staticmethod
    def _send_counters(counters: dict[Any, tuple[dict[str, Any], dict[str, float], dict[str, Any]]]) -> None:
        from llm_gateway.stores.aws import client
        from llm_gateway.stores.budgets import usd

        ddb = client("dynamodb")
        for (table, _), (key, sums, absent) in counters.items():
            names: dict[str, str] = {}
            values: dict[str, Any] = {}
            adds, sets = [], []
            for i, (name, value) in enumerate(sums.items()):
                if not value:
                    continue
                names[f"#a{i}"] = name
                values[f":a{i}"] = {"N": usd(value) if isinstance(value, float) else str(int(value))}
                adds.append(f"#a{i} :a{i}")
            for i, (name, value) in enumerate(absent.items()):
                names[f"#s{i}"] = name
                values[f":s{i}"] = value
                sets.append(f"#s{i} = if_not_exists(#s{i}, :s{i})")
            if not adds:
                continue
            expression = ("SET " + ", ".join(sets) + " " if sets else "") + "ADD " + ", ".join(adds)
            ddb.update_item(TableName=table, Key=key, UpdateExpression=expression,
                            ExpressionAttributeNames=names, ExpressionAttributeValues=values)

    @staticmethod
    def _send_puts(puts: dict[str, list[dict[str, Any]]]) -> None:
        from llm_gateway.stores.aws import client

        ddb = client("dynamodb")
        for table, items in puts.items():
            for start in range(0, len(items), MAX_BATCH_WRITE):
                request: dict[str, Any] = {table: [{"PutRequest": {"Item": item}} for item in items[start:start + MAX_BATCH_WRITE]]}
                for attempt in range(5):
                    request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
                    if not request:
                        break
                    time.sleep(0.05 * (attempt + 1))

    @staticmethod
    def _send_events(entries: list[dict[str, Any]]) -> None:
        from llm_gateway.observability import logger
        from llm_gateway.stores.events import put_entries

        failed = put_entries(entries)
        if failed:
            logger.error("write-behind audit events not delivered", extra={"count": failed})


_instance: WriteBehind | None = None
_instance_lock = threading.Lock()


def _lower_thread_priority(nice: int = 10) -> None:
    """The flusher yields the CPU to request threads when both want it (Linux: a thread is a task
    with its own nice value). Its work is off every request's path; it should not delay one."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except (OSError, AttributeError):  # not permitted, or not Linux
        pass


def writer() -> WriteBehind | None:
    """The process's write-behind, or None when writes must be made directly."""
    global _instance
    if not active():
        return None
    if _instance is None:
        with _instance_lock:
            if _instance is None:
                _instance = WriteBehind(float(os.environ.get("LLMGW_WRITE_BEHIND_MS", "100")) / 1000)
    return _instance


def flush() -> None:
    if _instance is not None:
        _instance.flush()
