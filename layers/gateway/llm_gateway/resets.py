"""Process-wide caches register their reset here, so tests (and the local server's reload) can
start from a fresh-Lambda state with one call."""

from __future__ import annotations

from collections.abc import Callable

_resets: list[Callable[[], None]] = []


def register(fn: Callable[[], None]) -> Callable[[], None]:
    if fn not in _resets:
        _resets.append(fn)
    return fn


def reset_all() -> None:
    for fn in list(_resets):
        fn()
