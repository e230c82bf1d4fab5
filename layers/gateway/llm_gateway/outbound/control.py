"""Deadlines and cancellation for one provider attempt, enforced however the provider behaves.

httpx timeouts are per socket operation, so a provider that trickles a byte every second never
trips them. A `CallControl` holds the attempt's two deadlines — time to first token (until the
first content delta) and total — and a process-wide watchdog thread aborts the attempt when one
passes: it marks the reason (`ttft`, `total`) and runs the attempt's abort callbacks. The
outbound client registers one that shuts the response's socket down, which wakes a read blocked
in another thread at once. Cancellation (a client that went away, a parallel-fallback loser)
uses the same path with the reason `cancelled`.

The outbound client finds the attempt's control through a context variable the invoker binds
around every step of the adapter, so adapters need no change to be bounded.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

from llm_gateway.api.errors import GatewayError

TTFT, TOTAL, CANCELLED = "ttft", "total", "cancelled"
SLACK_S = 0.05  # a socket timeout may fire a hair early; within this, the deadline counts as passed


class CallControl:
    """Deadlines, first-token flag and abort callbacks of one provider attempt (thread-safe)."""

    __slots__ = ("provider_id", "model_id", "started", "ttft_at", "total_at", "ttft_ms", "total_ms",
                 "first_token_at", "reason", "released", "_aborts", "_lock")

    def __init__(self, *, ttft_s: float, total_s: float, provider_id: str = "", model_id: str = "",
                 started: float | None = None, total_ms: float | None = None) -> None:
        now = time.monotonic() if started is None else started
        self.provider_id = provider_id
        self.model_id = model_id
        self.started = now
        self.total_at = now + max(0.0, total_s)
        self.ttft_at = min(now + max(0.0, ttft_s), self.total_at)
        self.ttft_ms = round(ttft_s * 1000)
        self.total_ms = round(total_ms if total_ms is not None else total_s * 1000)
        self.first_token_at: float | None = None
        self.reason: str | None = None
        self.released = False
        self._aborts: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------ deadlines
    def mark_first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()

    @property
    def first_token(self) -> bool:
        return self.first_token_at is not None

    def next_deadline(self) -> float:
        return self.total_at if self.first_token_at is not None else self.ttft_at

    def due(self, now: float | None = None, slack: float = 0.0) -> str | None:
        """The deadline that has passed at `now`, if any."""
        now = time.monotonic() if now is None else now
        if now + slack >= self.total_at:
            return TOTAL
        if self.first_token_at is None and now + slack >= self.ttft_at:
            return TTFT
        return None

    def remaining(self) -> float:
        return self.total_at - time.monotonic()

    def wait_budget(self) -> float:
        """Seconds a blocking wait may last now (until the next deadline), at least 1 ms."""
        return max(0.001, self.next_deadline() - time.monotonic())

    # ------------------------------------------------------------ abort
    def on_abort(self, fn: Callable[[], None]) -> Callable[[], None]:
        """Run `fn` when the attempt is aborted (now, if it already was). Returns a remover."""
        with self._lock:
            if self.reason is None:
                self._aborts.append(fn)

                def remove() -> None:
                    with self._lock:
                        try:
                            self._aborts.remove(fn)
                        except ValueError:
                            pass

                return remove
        _safe(fn)
        return _noop

    def abort(self, reason: str) -> bool:
        """Mark the attempt aborted (first reason wins) and run the abort callbacks once."""
        with self._lock:
            if self.reason is not None or self.released:
                if self.reason is None:
                    self.reason = reason
                return False
            self.reason = reason
            fns, self._aborts = self._aborts, []
        for fn in fns:
            _safe(fn)
        return True

    def release(self) -> None:
        """The attempt is over: the watchdog forgets it and no callback runs any more."""
        with self._lock:
            self.released = True
            self._aborts = []

    def check(self) -> None:
        """Raise the timeout/cancel error if the attempt was aborted or a deadline passed."""
        reason = self.reason
        if reason is None:
            reason = self.due()
            if reason is None:
                return
            self.abort(reason)
            reason = self.reason or reason
        raise self.error(reason)

    # ------------------------------------------------------------ errors
    def error(self, reason: str | None = None) -> GatewayError:
        reason = reason or self.reason or TOTAL
        pid = self.provider_id or "provider"
        if reason == CANCELLED:
            return GatewayError("provider_error", f"The call to provider '{pid}' was cancelled.", provider=self.provider_id or None,
                                cancelled=True)
        if reason == TTFT:
            return GatewayError(
                "provider_timeout",
                f"Provider '{pid}' sent no content within the time-to-first-token limit of {self.ttft_ms} ms"
                + (f" (model {self.model_id})." if self.model_id else "."),
                provider=self.provider_id or None, timeout=TTFT, timeout_ms=self.ttft_ms,
            )
        return GatewayError(
            "provider_timeout",
            f"Provider '{pid}' did not finish within the total time limit of {self.total_ms} ms"
            + (f" (model {self.model_id})." if self.model_id else "."),
            provider=self.provider_id or None, timeout=TOTAL, timeout_ms=self.total_ms,
        )

    def translate(self, exc: GatewayError) -> GatewayError:
        """An error raised while this attempt ran, named after the deadline that caused it."""
        if exc.extra.get("cancelled") or exc.extra.get("timeout") in (TTFT, TOTAL):
            return exc
        reason = self.reason
        if reason is None and (exc.code == "provider_timeout" or _looks_aborted(exc)):
            reason = self.due(slack=SLACK_S)
        if reason is None:
            return exc
        return self.error(reason)


def _looks_aborted(exc: GatewayError) -> bool:
    return exc.code == "provider_error" and exc.extra.get("transport") is True


def _safe(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - an abort callback must never break the watchdog
        pass


def _noop() -> None:
    return None


# ---------------------------------------------------------------- binding (context variable)

_current: ContextVar[CallControl | None] = ContextVar("llmgw_call_control", default=None)


def current_control() -> CallControl | None:
    return _current.get()


def bind(control: CallControl | None) -> Token:
    return _current.set(control)


def unbind(token: Token) -> None:
    _current.reset(token)


@contextmanager
def bound(control: CallControl | None) -> Iterator[CallControl | None]:
    token = _current.set(control)
    try:
        yield control
    finally:
        _current.reset(token)


# ---------------------------------------------------------------- cancel scope (transport -> attempts)


class CancelScope:
    """Everything one client request started; `cancel()` aborts all of it (client disconnected).

    A transport binds a scope around the service call; the invoker registers each attempt's
    control in the bound scope, so a cancel reaches whatever attempt is running, in any thread.
    """

    __slots__ = ("cancelled", "_controls", "_lock")

    def __init__(self) -> None:
        self.cancelled = False
        self._controls: list[CallControl] = []
        self._lock = threading.Lock()

    def add(self, control: CallControl) -> None:
        with self._lock:
            if not self.cancelled:
                self._controls = [c for c in self._controls if not c.released]
                self._controls.append(control)
                return
        control.abort(CANCELLED)

    def cancel(self) -> None:
        with self._lock:
            if self.cancelled:
                return
            self.cancelled = True
            controls, self._controls = self._controls, []
        for c in controls:
            c.abort(CANCELLED)


_scope: ContextVar[CancelScope | None] = ContextVar("llmgw_cancel_scope", default=None)


def current_scope() -> CancelScope | None:
    return _scope.get()


@contextmanager
def cancel_scope(scope: CancelScope | None) -> Iterator[CancelScope | None]:
    token = _scope.set(scope)
    try:
        yield scope
    finally:
        _scope.reset(token)


# ---------------------------------------------------------------- watchdog


class Watchdog:
    """One daemon thread per process that aborts attempts whose deadline passed."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, CallControl]] = []
        self._cv = threading.Condition(threading.Lock())
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._compact_at = 4096

    def watch(self, control: CallControl) -> None:
        when = control.next_deadline()
        with self._cv:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="llmgw-watchdog", daemon=True)
                self._thread.start()
            if len(self._heap) >= self._compact_at:  # finished attempts linger until their deadline: drop them
                self._heap = [e for e in self._heap if not e[2].released]
                heapq.heapify(self._heap)
                self._compact_at = max(4096, 2 * len(self._heap))
            heapq.heappush(self._heap, (when, next(self._seq), control))
            if self._heap[0][2] is control:
                self._cv.notify()

    def pending(self) -> int:
        with self._cv:
            return sum(1 for _, _, c in self._heap if not c.released)

    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    while self._heap and self._heap[0][2].released:
                        heapq.heappop(self._heap)
                    if not self._heap:
                        self._cv.wait()
                        continue
                    when = self._heap[0][0]
                    delay = when - time.monotonic()
                    if delay <= 0:
                        _, _, control = heapq.heappop(self._heap)
                        break
                    self._cv.wait(delay)
            if control.released or control.reason is not None:
                continue
            reason = control.due()
            if reason is not None:
                control.abort(reason)
            else:  # the first token came in time: watch the total deadline next
                with self._cv:
                    heapq.heappush(self._heap, (control.next_deadline(), next(self._seq), control))


_watchdog = Watchdog()


def watchdog() -> Watchdog:
    return _watchdog
