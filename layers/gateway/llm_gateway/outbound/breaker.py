"""A circuit breaker per upstream (provider id + origin), kept by the outbound client.

    closed ──(N consecutive failures, or failure rate ≥ R over the last W calls)──▶ open
    open ──(cool-down elapsed)──▶ half-open: exactly one trial call is let through
    half-open ──trial succeeds──▶ closed          half-open ──trial fails──▶ open (new cool-down)

While open (and while a half-open trial is in flight) calls fail fast with `provider_error`
("circuit open"), so the fallback chain moves on without waiting for a sick upstream.

What counts: transport errors (connection refused, reset), timeouts (connect, TTFT, total), HTTP
5xx/408, and a stream that breaks after a 2xx (cut, malformed chunk) are failures. Any other
answer (2xx, 4xx other than 408/429) is a success: the upstream is alive, the request was the
problem. 429 is neutral (a quota signal, handled by `Retry-After` and fallback, not an outage),
as is a call the gateway itself cancelled (client gone, parallel-fallback loser).

Settings (environment, read when the outbound client is created; one breaker set per process):
`LLMGW_BREAKER_ENABLED` (default 1), `LLMGW_BREAKER_FAILURES` (consecutive failures, default 5),
`LLMGW_BREAKER_FAILURE_RATE` (0–1, default 0.5; 0 disables the rate rule),
`LLMGW_BREAKER_WINDOW` (calls in the rate window, default 20), `LLMGW_BREAKER_MIN_CALLS`
(calls needed before the rate rule applies, default 10), `LLMGW_BREAKER_COOLDOWN_S` (default 30).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from llm_gateway.api.errors import GatewayError

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    enabled: bool = True
    failures: int = 5
    failure_rate: float = 0.5
    window: int = 20
    min_calls: int = 10
    cooldown_s: float = 30.0

    @classmethod
    def from_env(cls) -> "BreakerSettings":
        env = os.environ.get
        return cls(
            enabled=env("LLMGW_BREAKER_ENABLED", "1").strip().lower() not in ("0", "false", "no", "off"),
            failures=max(1, int(env("LLMGW_BREAKER_FAILURES", "5"))),
            failure_rate=min(1.0, max(0.0, float(env("LLMGW_BREAKER_FAILURE_RATE", "0.5")))),
            window=max(1, int(env("LLMGW_BREAKER_WINDOW", "20"))),
            min_calls=max(1, int(env("LLMGW_BREAKER_MIN_CALLS", "10"))),
            cooldown_s=max(0.0, float(env("LLMGW_BREAKER_COOLDOWN_S", "30"))),
        )


class Permit:
    """One admitted call. Report its outcome exactly once (later reports are ignored)."""

    __slots__ = ("_breaker", "_trial", "_done")

    def __init__(self, breaker: "CircuitBreaker | None", trial: bool) -> None:
        self._breaker = breaker
        self._trial = trial
        self._done = breaker is None

    def success(self) -> None:
        self._report(True)

    def failure(self) -> None:
        self._report(False)

    def neutral(self) -> None:
        """The call says nothing about the upstream's health (cancelled, 429)."""
        self._report(None)

    @property
    def reported(self) -> bool:
        return self._done

    def _report(self, ok: bool | None) -> None:
        if self._done:
            return
        self._done = True
        assert self._breaker is not None
        self._breaker._record(ok, self._trial)


NO_BREAKER_PERMIT = Permit(None, False)


class CircuitBreaker:
    """Thread-safe; one per upstream. `acquire()` admits a call or raises `provider_error`."""

    def __init__(self, key: str, provider_id: str, settings: BreakerSettings | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.key = key
        self.provider_id = provider_id
        self.settings = settings or BreakerSettings()
        self._clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._consecutive = 0
        self._window: deque[bool] = deque(maxlen=self.settings.window)
        self._opened_at = 0.0
        self._trial_started: float | None = None
        self.last_reason = ""

    # ------------------------------------------------------------ inspection
    @property
    def state(self) -> str:
        with self._lock:
            self._advance(self._clock())
            return self._state

    def snapshot(self) -> dict[str, object]:
        with self._lock:
            now = self._clock()
            self._advance(now)
            return {"key": self.key, "state": self._state, "consecutive_failures": self._consecutive,
                    "window": list(self._window), "retry_in_s": round(self._retry_in(now), 3), "reason": self.last_reason}

    # ------------------------------------------------------------ calls
    def acquire(self) -> Permit:
        with self._lock:
            now = self._clock()
            self._advance(now)
            if self._state == CLOSED:
                return Permit(self, trial=False)
            if self._state == HALF_OPEN and self._trial_started is None:
                self._trial_started = now
                return Permit(self, trial=True)
            retry = self._retry_in(now)
        raise GatewayError(
            "provider_error",
            f"Provider '{self.provider_id}' circuit open ({self.last_reason}); calls fail fast for about {retry:.1f} s more.",
            provider=self.provider_id, circuit="open", retry_after_s=round(max(retry, 0.001), 3),
        )

    def _retry_in(self, now: float) -> float:
        if self._state == OPEN:
            return max(0.0, self._opened_at + self.settings.cooldown_s - now)
        if self._state == HALF_OPEN and self._trial_started is not None:
            # a trial is in flight; if it never reports, another one is allowed after a cool-down
            return max(0.0, self._trial_started + self.settings.cooldown_s - now)
        return 0.0

    def _advance(self, now: float) -> None:
        if self._state == OPEN and now - self._opened_at >= self.settings.cooldown_s:
            self._state = HALF_OPEN
            self._trial_started = None
        elif self._state == HALF_OPEN and self._trial_started is not None and now - self._trial_started >= max(self.settings.cooldown_s, 1.0):
            self._trial_started = None  # the trial was abandoned without a report: allow a new one

    def _record(self, ok: bool | None, trial: bool) -> None:
        with self._lock:
            now = self._clock()
            if ok is None:
                if trial and self._state == HALF_OPEN:
                    self._trial_started = None  # inconclusive: let the next call be the trial
                return
            if self._state == HALF_OPEN:
                if not trial:
                    return  # a call admitted before the circuit opened; the trial decides
                if ok:
                    self._close()
                else:
                    self._open(now, "half-open trial call failed")
                return
            if self._state == OPEN:
                return  # late report of a call admitted before opening
            self._window.append(ok)
            if ok:
                self._consecutive = 0
                return
            self._consecutive += 1
            s = self.settings
            if self._consecutive >= s.failures:
                self._open(now, f"{self._consecutive} consecutive failures")
                return
            if s.failure_rate > 0 and len(self._window) >= s.min_calls:
                failed = sum(1 for x in self._window if not x)
                if failed / len(self._window) >= s.failure_rate:
                    self._open(now, f"{failed} of the last {len(self._window)} calls failed")

    def _open(self, now: float, reason: str) -> None:
        self._state = OPEN
        self._opened_at = now
        self._trial_started = None
        self.last_reason = reason
        try:
            from llm_gateway.observability import logger

            logger.warning("circuit opened", extra={"upstream": self.key, "reason": reason})
        except Exception:  # noqa: BLE001 - logging must not break the breaker
            pass

    def _close(self) -> None:
        self._state = CLOSED
        self._consecutive = 0
        self._window.clear()
        self._trial_started = None
        self.last_reason = ""


class BreakerRegistry:
    """The breakers of one outbound client, created on first use per upstream key."""

    def __init__(self, settings: BreakerSettings | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or BreakerSettings.from_env()
        self._clock = clock
        self._breakers: dict[str, CircuitBreaker] = {}
        self._lock = threading.Lock()

    def get(self, provider_id: str, url: str) -> CircuitBreaker | None:
        if not self.settings.enabled:
            return None
        key = f"{provider_id}|{_origin(url)}"
        b = self._breakers.get(key)
        if b is None:
            with self._lock:
                b = self._breakers.get(key)
                if b is None:
                    b = self._breakers[key] = CircuitBreaker(key, provider_id, self.settings, self._clock)
        return b

    def acquire(self, provider_id: str, url: str) -> Permit:
        b = self.get(provider_id, url)
        return b.acquire() if b is not None else NO_BREAKER_PERMIT

    def states(self) -> dict[str, str]:
        return {k: b.state for k, b in list(self._breakers.items())}


def _origin(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    return f"{scheme}://{rest.split('/', 1)[0]}"
