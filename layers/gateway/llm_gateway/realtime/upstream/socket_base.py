"""What every provider-socket upstream shares (`openai.py`, `gemini.py`).

- the socket opened in `prepare()`, in the background, under the provider's circuit breaker, so
  the handshake overlaps the session store reads; `close()` undoes it when the turn never runs;
- `_connect()`: the WebSocket handshake with the provider's HTTP refusals mapped to the gateway's
  errors (429 → rate_limited with its Retry-After, 408/504 → provider_timeout, anything else →
  provider_error), provider text redacted;
- the time-to-first-answer bound of one turn.

A subclass names itself (`label`), builds its URL and headers, and may start more than a bare
handshake in `_start()` (Gemini Live sends its setup and waits for `setupComplete`).
"""

from __future__ import annotations

import time
from abc import abstractmethod
from concurrent.futures import Future
from typing import Any

from llm_gateway.api.errors import GatewayError, redact
from llm_gateway.realtime.upstream import Upstream

POLL_S = 0.05  # how often a waiting read wakes up to check cancellation and deadlines
DEFAULT_TTFT_S = 30.0


class SocketUpstream(Upstream):
    transport = "socket"
    label = "the provider's realtime socket"  # names the provider in every error

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.ws: Any = None
        self._opening: Future | None = None  # the socket being opened, from prepare()
        self._permit: Any = None

    # ------------------------------------------------------------ what a provider defines

    @abstractmethod
    def url(self) -> str:
        """The provider socket's URL."""

    @abstractmethod
    def _headers(self) -> dict[str, str]:
        """The handshake's headers, credentials included."""

    def _start(self, url: str, config: dict[str, Any]) -> Future:
        """The background work `prepare()` starts: by default the handshake alone."""
        from llm_gateway.pipeline import parallel

        return parallel.submit(self._connect, url, self._ttft())

    def _redact(self, text: str) -> str:
        return redact(text)

    # ------------------------------------------------------------ shared

    def _ttft(self, deadline_s: float | None = None) -> float:
        ttft = float(self.model.timeouts.get("ttft_ms", DEFAULT_TTFT_S * 1000)) / 1000
        if deadline_s is not None:
            ttft = min(ttft, max(0.1, deadline_s - time.monotonic()))
        return ttft

    def _fail(self, detail: str, code: str = "provider_error", **extra: Any) -> GatewayError:
        return GatewayError(code, detail, provider=self.model.provider.id, **extra)

    def prepare(self, config: dict[str, Any]) -> None:
        """Open the socket in the background (the handshake overlaps the session store reads)."""
        from llm_gateway.outbound.client import get_outbound

        url = self.url()
        try:
            self._permit = get_outbound().breakers.acquire(self.model.provider.id, url)
        except GatewayError:
            return  # run() acquires again and raises the circuit-open error in its place
        self._opening = self._start(url, config)

    def _connect(self, url: str, timeout: float) -> Any:
        try:
            from websockets.exceptions import InvalidHandshake, InvalidStatus
            from websockets.sync.client import connect
        except ImportError:  # the realtime worker function ships `websockets` (see infra's function requirements)
            raise self._fail("This deployment has no WebSocket client (the `websockets` package) for provider realtime sockets.",
                             "internal_error") from None
        headers = self._headers()
        name = self.label
        try:
            return connect(url, additional_headers=headers, open_timeout=timeout, close_timeout=1,
                           max_size=16 * 1024 * 1024, compression=None, proxy=None, ping_interval=20, ping_timeout=20)
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = self._redact(exc.response.body.decode("utf-8", "replace")[:300]) if exc.response.body else ""
            if status == 429:
                retry = exc.response.headers.get("retry-after")
                raise self._fail(f"{name} refused the connection: 429 {body}".strip(), "rate_limited",
                                 retry_after_s=float(retry) if retry and retry.replace(".", "", 1).isdigit() else None) from None
            if status in (408, 504):
                raise self._fail(f"{name} timed out opening the session ({status}).", "provider_timeout") from None
            raise self._fail(f"{name} refused the connection: {status} {body}".strip()) from None
        except TimeoutError:
            raise self._fail(f"{name} did not accept the connection in time.", "provider_timeout") from None
        except (InvalidHandshake, OSError) as exc:
            raise self._fail(f"Cannot open the {name} socket: {type(exc).__name__}: {self._redact(str(exc))[:200]}") from None

    def close(self) -> None:
        opening, self._opening = self._opening, None
        if opening is not None:  # prepared but never run (governance refused, bad audio…)
            opening.add_done_callback(close_opened)
            if self._permit is not None:
                self._permit.neutral()
                self._permit = None
        ws, self.ws = self.ws, None
        if ws is not None:
            close_quietly(ws)


def closed_error() -> type[BaseException]:
    """websockets' ConnectionClosed (an exception nothing raises when the package is missing:
    `_connect()` reports that)."""
    try:
        from websockets.exceptions import ConnectionClosed
    except ImportError:
        return _NeverRaised
    return ConnectionClosed


def close_quietly(ws: Any) -> None:
    try:
        ws.close()
    except Exception:  # noqa: BLE001 - best effort
        pass


def close_opened(future: Future) -> None:
    if future.exception() is None:
        close_quietly(future.result())


class _NeverRaised(Exception):
    pass
