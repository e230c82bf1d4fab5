"""Per-attempt deadlines and cancellation (outbound/control.py): the watchdog, the cancel scope."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from llm_gateway.api.errors import GatewayError
from llm_gateway.outbound.control import CANCELLED, TOTAL, TTFT, CallControl, CancelScope, bound, current_control, watchdog


def watched(ttft_s: float, total_s: float) -> tuple[CallControl, threading.Event]:
    c = CallControl(ttft_s=ttft_s, total_s=total_s, provider_id="p", model_id="p::m")
    fired = threading.Event()
    c.on_abort(fired.set)
    watchdog().watch(c)
    return c, fired


def test_watchdog_aborts_at_the_ttft_deadline_without_a_first_token():
    c, fired = watched(0.1, 5)
    t0 = time.monotonic()
    assert fired.wait(2)
    assert 0.09 <= time.monotonic() - t0 < 0.5
    assert c.reason == TTFT
    with pytest.raises(GatewayError) as info:
        c.check()
    assert info.value.code == "provider_timeout" and info.value.extra["timeout"] == "ttft"
    assert "time-to-first-token limit of 100 ms" in info.value.detail


def test_first_token_moves_the_watch_to_the_total_deadline():
    c, fired = watched(0.1, 0.3)
    c.mark_first_token()
    assert not fired.wait(0.2)
    assert fired.wait(1)
    assert c.reason == TOTAL and c.error().extra["timeout"] == "total"


def test_released_attempt_is_never_aborted():
    c, fired = watched(0.05, 0.05)
    c.release()
    assert not fired.wait(0.2) and c.reason is None


def test_abort_callbacks_run_once_and_late_registrations_run_at_once():
    c = CallControl(ttft_s=10, total_s=10)
    calls: list[str] = []
    remove = c.on_abort(lambda: calls.append("a"))
    c.on_abort(lambda: calls.append("b"))
    remove()
    assert c.abort(CANCELLED) and not c.abort(TOTAL)
    c.on_abort(lambda: calls.append("late"))
    assert calls == ["b", "late"] and c.reason == CANCELLED
    assert c.error().extra.get("cancelled") is True


def test_translate_names_the_deadline_behind_a_socket_timeout():
    c = CallControl(ttft_s=0.0, total_s=10, provider_id="p")
    read = GatewayError("provider_timeout", "read timeout", provider="p", timeout="read")
    assert c.translate(read).extra["timeout"] == "ttft"
    c.mark_first_token()
    assert c.translate(read).extra["timeout"] == "read"  # neither deadline passed: the socket's own limit
    other = GatewayError("provider_error", "HTTP 500", provider="p")
    assert c.translate(other) is other


def test_cancel_scope_aborts_every_registered_attempt_and_later_ones():
    scope = CancelScope()
    a = CallControl(ttft_s=10, total_s=10)
    scope.add(a)
    scope.cancel()
    assert a.reason == CANCELLED
    b = CallControl(ttft_s=10, total_s=10)
    scope.add(b)
    assert b.reason == CANCELLED


def test_binding_is_scoped_to_the_context():
    c = CallControl(ttft_s=1, total_s=1)
    assert current_control() is None
    with bound(c):
        assert current_control() is c
        seen = []
        t = threading.Thread(target=lambda: seen.append(current_control()))
        t.start()
        t.join()
        assert seen == [None]  # other threads see nothing unless bound there
    assert current_control() is None


def test_socket_shutdown_wakes_a_blocked_read():
    """The mechanism the outbound client relies on: shutting a socket down from another thread."""
    a, b = socket.socketpair()
    try:
        c, fired = watched(0.1, 5)
        c.on_abort(lambda: socket.socket.shutdown(a, socket.SHUT_RDWR))
        t0 = time.monotonic()
        assert a.recv(10) == b""
        assert time.monotonic() - t0 < 1
    finally:
        a.close()
        b.close()
