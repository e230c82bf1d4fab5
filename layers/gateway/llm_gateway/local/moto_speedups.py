"""Two quadratic/per-request costs in moto's emulation removed, behaviour unchanged.

The local server's AWS is moto, and moto's CPU competes with the gateway's requests on a small
machine (on AWS that work runs elsewhere). Profiling the embedded moto under the local server's
post-call writes showed two avoidable costs:

- `LimitedSizeDict.__setitem__` (an item's attributes) re-measures every attribute already in
  the item on each insert, so building an item of n attributes costs O(n²) size computations.
  Here the running size is kept and the full check (moto's own) only runs when the running figure
  could be wrong: a key replaced, or the item near the 400 KB limit.
- `list_of_moto_modules()` lists moto's package directory on every request (to route it to a
  service); the directory never changes while the process runs, so it is listed once.
"""

from __future__ import annotations

from typing import Any

_applied = False
_LIMIT = 405_000  # moto's own figure (DynamoDB's 400 KB, as measured by moto's authors)


def apply() -> None:
    global _applied
    if _applied:
        return
    _cache_module_list()
    _incremental_item_size()
    _applied = True


def _cache_module_list() -> None:
    from moto import backends

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: iter(modules)  # type: ignore[assignment]


def _incremental_item_size() -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType, LimitedSizeDict
    from moto.dynamodb.models.utilities import bytesize

    checked = LimitedSizeDict.__setitem__

    def size_of(value: Any) -> int:
        return value.size() if type(value) is DynamoType else bytesize(str(value))

    def setitem(self: Any, key: str, value: Any) -> None:
        running = self.__dict__.get("_running_size")
        if running is None or key in self:
            checked(self, key, value)  # moto's full check
            self._running_size = sum(size_of(k) + size_of(v) for k, v in self.items())
            return
        added = bytesize(key) + size_of(value)
        if running + added > _LIMIT:  # possibly stale (a key was deleted): let moto decide
            checked(self, key, value)
            self._running_size = sum(size_of(k) + size_of(v) for k, v in self.items())
            return
        dict.__setitem__(self, key, value)
        self._running_size = running + added

    LimitedSizeDict.__setitem__ = setitem  # type: ignore[method-assign]
