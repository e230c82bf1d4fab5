"""In-process cancel signals: a turn running in this process (local mode's worker threads, or a
warm worker Lambda that also handled the cancel) stops at once instead of at its next poll of
the session item."""

from __future__ import annotations

import threading

_events: dict[str, threading.Event] = {}
_lock = threading.Lock()


def register(turn_id: str) -> threading.Event:
    with _lock:
        ev = _events.get(turn_id)
        if ev is None:
            ev = _events[turn_id] = threading.Event()
        return ev


def signal(turn_id: str) -> None:
    with _lock:
        ev = _events.get(turn_id)
    if ev is not None:
        ev.set()


def forget(turn_id: str) -> None:
    with _lock:
        _events.pop(turn_id, None)
