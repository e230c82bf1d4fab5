"""Governance without a DynamoDB round trip on the hot path while a tenant is far from its
limits: per-instance leases on the global rate-limit counters, and a short-lived view of
budget spend.

Rate limits. Instead of one conditional update per request, a busy instance claims a *lease*
(N requests and T tokens) with the same atomic conditional `UpdateItem` that admits a single
request, and admits from it locally. N and T follow the instance's own traffic over the last
`LLMGW_RATE_LEASE_S` (default 1 s), at most 1 % of the limit; the next lease is claimed in the
background when half of the current one is used, so a busy instance does not wait. The
counter sees every claim, so the sum of all leases never exceeds the limit: the limit still
holds across every instance. What a lease leaves unused when its minute ends expires with the
window (about one lease horizon of that instance's traffic). An instance that sees fewer than
two requests per horizon, a limit under 200, or a window without room for a whole lease falls
back to one conditional update per request: exact to the last request.

Budgets. The strongly consistent read of a budget's spend is reused for `LLMGW_BUDGET_FRESH_S`
(default 1 s) while the spend is below `LLMGW_BUDGET_CACHE_BELOW` (default 80 %) of the limit,
refreshed in the background after half that time; this instance's own charges are added to it
at once. Near the limit every request reads it strongly consistent, as without the view. So a
budget can be overshot only by what other instances spend within one freshness window while it
is under 80 % — on top of the requests in flight, the bound without the view.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from llm_gateway.config import settings
from llm_gateway.observability import logger
from llm_gateway.pipeline import parallel
from llm_gateway.stores.ratelimit import RateCheck, RateOutcome

LEASE_SHARE = 100  # a lease holds at most 1/100 of a limit


@dataclass(slots=True)
class _Lease:
    window: int = -1
    req: int = 0  # requests left in this window's lease
    tok: int = 0  # tokens left
    seen_req: int = 0  # the global counters after this instance's last claim
    seen_tok: int = 0
    exact: bool = False  # no room for a whole lease in this window: one request at a time
    refilling: bool = False
    # this instance's traffic: the current and the previous horizon
    since: float = 0.0
    cur_req: int = 0
    cur_tok: int = 0
    prev_req: int = 0
    prev_tok: int = 0

    def count(self, now: float, horizon: float, tokens: int) -> None:
        if now - self.since >= horizon:
            fresh = now - self.since < 2 * horizon
            self.prev_req, self.prev_tok = (self.cur_req, self.cur_tok) if fresh else (0, 0)
            self.since, self.cur_req, self.cur_tok = now, 0, 0
        self.cur_req += 1
        self.cur_tok += tokens


@dataclass(frozen=True, slots=True)
class _Size:
    requests: int
    tokens: int

    @property
    def single(self) -> bool:
        return self.requests <= 1


class RateLeases:
    def __init__(self, store: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.clock = clock
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()

    @staticmethod
    def horizon() -> float:
        return settings().rate_lease_s

    def _size(self, lease: _Lease, check: RateCheck) -> _Size:
        if self.horizon() <= 0:
            return _Size(1, check.tokens)
        cap_req = max(1, check.rpm // LEASE_SHARE) if check.rpm is not None else 1_000
        want = max(lease.prev_req, lease.cur_req)
        requests = max(1, min(want, cap_req))
        if requests <= 1:
            return _Size(1, check.tokens)
        tokens = check.tokens
        if check.tpm is not None:
            want_tok = max(lease.prev_tok, lease.cur_tok)
            tokens = max(check.tokens, min(want_tok, check.tpm // LEASE_SHARE))
        return _Size(requests, tokens)

    def _lease(self, ident: str, window: int) -> _Lease:
        lease = self._leases.get(ident)
        if lease is None:
            if len(self._leases) > 50_000:
                self._leases.clear()
            lease = self._leases[ident] = _Lease(since=self.clock())
        if lease.window != window:
            lease.window, lease.req, lease.tok, lease.exact = window, 0, 0, False
        return lease

    def try_local(self, check: RateCheck, window: int) -> RateOutcome | None:
        """Admit from this instance's lease, or None when a claim is needed."""
        if self.horizon() <= 0:
            return None
        refill = None
        with self._lock:
            lease = self._lease(check.ident, window)
            lease.count(self.clock(), self.horizon(), check.tokens)
            if not ((check.rpm is None or lease.req >= 1) and (check.tpm is None or lease.tok >= check.tokens)):
                return None
            lease.req -= 1
            lease.tok -= check.tokens
            outcome = RateOutcome(check, True, lease.seen_req - lease.req, lease.seen_tok - lease.tok, leased=True)
            size = self._size(lease, check)
            low = (check.rpm is not None and lease.req * 2 <= size.requests) or \
                  (check.tpm is not None and lease.tok * 2 <= size.tokens)
            if low and not size.single and not lease.exact and not lease.refilling:
                lease.refilling = True
                refill = size
        if refill is not None:
            parallel.background(self._refill, check, window, refill)
        return outcome

    def claim(self, check: RateCheck, window: int) -> RateOutcome:
        """Admit this request with a round trip: a whole lease when the instance is busy, else
        (or when the window has no room for a lease) this one request."""
        with self._lock:
            lease = self._lease(check.ident, window)
            size = _Size(1, check.tokens) if lease.exact else self._size(lease, check)
        if not size.single:
            got = self.store.hit(RateCheck(check.scope, check.key, check.rpm, check.tpm, size.tokens, check.ident),
                                 window, requests=size.requests)
            if got.allowed:
                with self._lock:
                    lease = self._lease(check.ident, window)
                    lease.req += size.requests - 1
                    lease.tok += size.tokens - check.tokens
                    lease.seen_req, lease.seen_tok = got.requests, got.tokens
                    return RateOutcome(check, True, got.requests - lease.req, got.tokens - lease.tok, leased=True)
            with self._lock:
                self._lease(check.ident, window).exact = True
        return self.store.hit(check, window)

    def _refill(self, check: RateCheck, window: int, size: _Size) -> None:
        try:
            got = self.store.hit(RateCheck(check.scope, check.key, check.rpm, check.tpm, size.tokens, check.ident),
                                 window, requests=size.requests)
        except Exception as exc:  # noqa: BLE001 - the next request claims synchronously instead
            logger.warning("rate-limit lease refill failed", extra={"error": type(exc).__name__})
            got = None
        with self._lock:
            lease = self._lease(check.ident, window)
            lease.refilling = False
            if got is None or lease.window != window:
                return
            if got.allowed:
                lease.req += size.requests
                lease.tok += size.tokens
                lease.seen_req, lease.seen_tok = got.requests, got.tokens
            else:
                lease.exact = True

    def give_back(self, outcome: RateOutcome, window: int) -> Callable[[], Any] | None:
        """Return an admitted request's slot (another scope or a budget refused it): to the lease
        it came from, or — for a single claim — a DynamoDB task."""
        check = outcome.check
        if outcome.leased:
            with self._lock:
                lease = self._leases.get(check.ident)
                if lease is not None and lease.window == window:
                    lease.req += 1
                    lease.tok += check.tokens
            return None
        return lambda: self.store.adjust(check.key, requests=-1, tokens=-check.tokens if check.tpm else 0)

    def correct(self, outcome: RateOutcome, window: int, delta: int) -> Callable[[], Any] | None:
        """Correct the token reservation by `delta` (actual − estimate): from the lease when the
        request came from one and its window is current, else on the counter."""
        check = outcome.check
        if outcome.leased:
            with self._lock:
                lease = self._leases.get(check.ident)
                if lease is not None and lease.window == window:
                    lease.tok -= delta
                    if lease.tok >= 0:
                        return None
                    delta, lease.tok = -lease.tok, 0  # used more than leased: count the rest
        return lambda: self.store.adjust(check.key, tokens=delta)


@dataclass(slots=True)
class _Spend:
    spent: float
    read_at: float


@dataclass
class BudgetView:
    store: Any
    clock: Callable[[], float] = time.monotonic
    _cache: dict[str, _Spend] = field(default_factory=dict)
    _refreshing: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cached(self, limits: dict[str, float]) -> dict[str, float] | None:
        """Spend per budget key from the view, or None when any of them must be read now."""
        s = settings()
        fresh = s.budget_fresh_s
        if fresh <= 0:
            return None
        now = self.clock()
        out: dict[str, float] = {}
        stale: list[str] = []
        with self._lock:
            for key, limit in limits.items():
                entry = self._cache.get(key)
                if entry is None or now - entry.read_at > fresh or entry.spent >= limit * s.budget_cache_below:
                    return None
                out[key] = entry.spent
                if now - entry.read_at > fresh / 2 and key not in self._refreshing:
                    stale.append(key)
            self._refreshing.update(stale)
        if stale:
            parallel.background(self._refresh, stale)
        return out

    def read(self, keys: list[str]) -> dict[str, float]:
        """Strongly consistent spend (one BatchGetItem), remembered for the view."""
        now = self.clock()
        spent = self.store.spent(keys)
        with self._lock:
            if len(self._cache) > 50_000:
                self._cache.clear()
            for key, value in spent.items():
                self._cache[key] = _Spend(value, now)
        return spent

    def _refresh(self, keys: list[str]) -> None:
        try:
            self.read(keys)
        except Exception as exc:  # noqa: BLE001 - the entry goes stale and the next request reads it
            logger.warning("budget view refresh failed", extra={"error": type(exc).__name__})
        finally:
            with self._lock:
                self._refreshing.difference_update(keys)

    def charged(self, key: str, amount_usd: float) -> None:
        """This instance's own charge, visible to its next request at once."""
        with self._lock:
            entry = self._cache.get(key)
            if entry is not None:
                entry.spent += amount_usd
