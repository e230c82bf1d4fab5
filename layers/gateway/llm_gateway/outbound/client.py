"""The outbound client: one pooled `httpx.Client` per process, reused across warm invocations.

Transport failures become `provider_timeout` / `provider_error` naming the provider. An
optional `LLMGW_EGRESS_BASE_URL` routes every provider call through an external egress gateway.

Every call goes through the upstream's circuit breaker (`outbound/breaker.py`) and, when the
invoker bound a `CallControl` (`outbound/control.py`), under the attempt's deadlines: socket
timeouts are clamped to the time left, the body is read with the total deadline as its read
timeout, and the watchdog can abort the call at any moment by shutting the socket down.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from llm_gateway.api.errors import GatewayError, redact
from llm_gateway.outbound.breaker import BreakerRegistry, Permit
from llm_gateway.outbound.control import CANCELLED, CallControl, current_control, watchdog

DEFAULT_CONNECT_S = float(os.environ.get("LLMGW_CONNECT_TIMEOUT_S", "5"))
DEFAULT_READ_S = float(os.environ.get("LLMGW_READ_TIMEOUT_S", "60"))


def _retry_after(headers: httpx.Headers) -> float | None:
    raw = headers.get("retry-after")
    if raw is None:
        ms = headers.get("retry-after-ms")
        return float(ms) / 1000 if ms and ms.replace(".", "", 1).isdigit() else None
    try:
        return max(0.0, float(raw))
    except ValueError:
        from email.utils import parsedate_to_datetime
        import time

        try:
            return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def provider_status_error(
    provider_id: str, status: int, message: str, headers: httpx.Headers | None = None, *, kind: str | None = None
) -> GatewayError:
    """Map a provider's HTTP error to the design's codes, keeping its (redacted) message."""
    message = redact(message or "")[:1000]
    retry = _retry_after(headers) if headers is not None else None
    lowered = message.lower()
    if status == 429 or kind in {"rate_limit", "throttled"}:
        return GatewayError(
            "rate_limited",
            f"Provider '{provider_id}' is rate limiting requests: {message}",
            provider=provider_id, retry_after_s=retry if retry is not None else 1.0, provider_status=status,
        )
    if status in (400, 413, 422) and any(
        s in lowered for s in ("context length", "context_length", "maximum context", "too many tokens", "prompt is too long", "input is too long", "token limit")
    ):
        return GatewayError(
            "validation_error",
            f"The request exceeds model context on provider '{provider_id}': {message}",
            provider=provider_id, provider_status=status,
        )
    if status in (401, 403):
        detail = f"Provider '{provider_id}' rejected the gateway's credentials ({status}): {message}"
    elif status == 408 or status == 504:
        return GatewayError("provider_timeout", f"Provider '{provider_id}' timed out ({status}): {message}",
                            provider=provider_id, provider_status=status, timeout="upstream")
    else:
        detail = f"Provider '{provider_id}' returned HTTP {status}: {message}"
    return GatewayError("provider_error", detail, provider=provider_id, provider_status=status,
                        retry_after_s=retry if status in (500, 502, 503, 529) else None)


class _NoCookies(httpx.Cookies):
    """A cookie jar that keeps nothing. One pooled client serves every tenant, so a cookie a
    provider sets (load-balancer stickiness, bot-management tokens) must not be stored and sent
    on other tenants' calls; and parsing each response's cookies through `http.cookiejar` was
    a tenth of the gateway's CPU per call."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None


class OutboundClient:
    """Thin wrapper over `httpx.Client` that names the provider in every failure."""

    def __init__(self, client: httpx.Client | None = None, breakers: BreakerRegistry | None = None) -> None:
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(DEFAULT_READ_S, connect=DEFAULT_CONNECT_S),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=60),
            follow_redirects=False,
            trust_env=False,
        )
        # httpx has no switch for it: the client's jar is replaced (the `cookies` setter would wrap it)
        self._client._cookies = _NoCookies()  # type: ignore[attr-defined]
        self.egress_base_url = os.environ.get("LLMGW_EGRESS_BASE_URL") or None
        self.breakers = breakers or BreakerRegistry()

    @property
    def raw(self) -> httpx.Client:
        return self._client

    def url(self, base_url: str, path: str) -> str:
        url = base_url.rstrip("/") + path
        if self.egress_base_url:
            # the egress gateway receives the full upstream URL after its own base
            return self.egress_base_url.rstrip("/") + "/" + url
        return url

    def request(
        self, provider_id: str, method: str, url: str, *, timeout: httpx.Timeout | float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A buffered call: the whole body is read before returning, within the attempt's deadlines."""
        control = current_control()
        if control is not None:
            control.check()  # already timed out or cancelled: no call, nothing for the breaker
        permit = self.breakers.acquire(provider_id, url)
        resp = self._open(provider_id, method, url, timeout, kwargs, permit, control)
        remove = self._guard(resp, control)
        try:
            if control is not None:
                control.check()
            resp.read()
        except httpx.HTTPError as exc:
            resp.close()
            raise self._failed(provider_id, exc, permit, control) from None
        except GatewayError as exc:  # aborted before the body was read
            resp.close()
            raise self._gateway_failed(exc, permit, control) from None
        finally:
            remove()
        _judge_status(permit, resp.status_code, final=True)
        return resp

    @contextmanager
    def stream(
        self, provider_id: str, method: str, url: str, *, timeout: httpx.Timeout | float | None = None, **kwargs: Any
    ) -> Iterator[httpx.Response]:
        """A streamed call. Headers are awaited within the time-to-first-token budget; the body is
        read within the total budget; the watchdog enforces both while the caller iterates."""
        control = current_control()
        if control is not None:
            control.check()  # already timed out or cancelled: no call, nothing for the breaker
        permit = self.breakers.acquire(provider_id, url)
        resp = self._open(provider_id, method, url, timeout, kwargs, permit, control)
        remove = self._guard(resp, control)
        self._reusable(resp, control)
        _judge_status(permit, resp.status_code, final=False)
        try:
            if control is not None:
                control.check()
            yield resp
        except httpx.HTTPError as exc:
            raise self._failed(provider_id, exc, permit, control) from None
        except GatewayError as exc:
            raise self._gateway_failed(exc, permit, control) from None
        except GeneratorExit:
            permit.neutral()  # the consumer stopped reading (client gone, or it had all it needed)
            raise
        except BaseException:
            permit.failure()
            raise
        else:
            permit.success()
        finally:
            remove()
            resp.close()

    # ------------------------------------------------------------ internals

    def _open(self, provider_id: str, method: str, url: str, timeout: Any, kwargs: dict[str, Any], permit: Permit,
              control: CallControl | None) -> httpx.Response:
        try:
            req = self._client.build_request(method, url, timeout=self._timeout(timeout, control), **kwargs)
            return self._client.send(req, stream=True)
        except httpx.HTTPError as exc:
            raise self._failed(provider_id, exc, permit, control) from None
        except GatewayError as exc:
            raise self._gateway_failed(exc, permit, control) from None

    def _timeout(self, given: httpx.Timeout | float | None, control: CallControl | None) -> httpx.Timeout:
        if given is None or given is httpx.USE_CLIENT_DEFAULT:
            base = self._client.timeout
        elif isinstance(given, httpx.Timeout):
            base = given
        else:
            base = httpx.Timeout(given)
        if control is None:
            return base
        total = max(0.001, control.remaining())
        wait = control.wait_budget()  # until the first token (streams) or the end (buffered)
        return httpx.Timeout(connect=_cap(base.connect, total), read=_cap(base.read, wait),
                             write=_cap(base.write, total), pool=_cap(base.pool, total))

    def _guard(self, resp: httpx.Response, control: CallControl | None) -> Callable[[], None]:
        """Let the watchdog abort this response, and read the body within the total budget."""
        if control is None:
            return _noop
        try:
            # httpcore reads the body's read timeout when the body is first iterated (after the
            # headers), from this very dict: from now on only the total deadline bounds a read;
            # the time-to-first-token deadline is the watchdog's job.
            resp.request.extensions["timeout"]["read"] = max(0.001, control.remaining())
        except (KeyError, TypeError):
            pass
        return control.on_abort(lambda: _shutdown(resp))

    @staticmethod
    def _reusable(resp: httpx.Response, control: CallControl | None) -> None:
        if isinstance(resp.stream, httpx.SyncByteStream) and resp.status_code < 400:
            resp.stream = _Draining(resp.stream, control)

    def _failed(self, provider_id: str, exc: httpx.HTTPError, permit: Permit, control: CallControl | None) -> GatewayError:
        if control is not None and control.reason == CANCELLED:
            permit.neutral()
            return control.error(CANCELLED)
        err = _timeout_error(provider_id, exc) if isinstance(exc, httpx.TimeoutException) else _transport_error(provider_id, exc)
        permit.failure()
        return control.translate(err) if control is not None else err

    def _gateway_failed(self, exc: GatewayError, permit: Permit, control: CallControl | None) -> GatewayError:
        if exc.extra.get("cancelled") or (control is not None and control.reason == CANCELLED):
            permit.neutral()
            return control.error(CANCELLED) if control is not None else exc
        permit.failure()  # ignored when the status already decided (an HTTP error the adapter raised)
        return control.translate(exc) if control is not None else exc

    def close(self) -> None:
        self._client.close()


def _cap(value: float | None, limit: float) -> float:
    return limit if value is None else max(0.001, min(value, limit))


def _noop() -> None:
    return None


def _judge_status(permit: Permit, status: int, *, final: bool) -> None:
    """5xx/408 are upstream failures; 429 says nothing about health; other answers are successes.
    For a stream, a 2xx is judged when the stream ends (it can still break)."""
    if status >= 500 or status == 408:
        permit.failure()
    elif status == 429:
        permit.neutral()
    elif status >= 400 or final:
        permit.success()


DRAIN_S = 0.05
DRAIN_BYTES = 64 * 1024


class _Draining(httpx.SyncByteStream):
    """A streamed body that, when its reader stops early, reads what is left before it closes.

    Adapters stop reading at the stream's end marker (`[DONE]`, `message_stop`…), one step before
    the chunked-encoding terminator; closing the body there drops the connection, and the next
    streamed call to that provider pays a new TCP + TLS handshake. Reading the rest — usually
    just the terminator, already received — puts the connection back in the pool. Bounded: at
    most `DRAIN_S` and `DRAIN_BYTES` (the watchdog shuts the socket if a read blocks), then the
    connection is simply not reused."""

    def __init__(self, inner: httpx.SyncByteStream, control: CallControl | None) -> None:
        self.inner = inner
        self.control = control

    def __iter__(self) -> Iterator[bytes]:
        it = iter(self.inner)
        try:
            for chunk in it:  # not `yield from`: that would close `it` before we can drain it
                yield chunk
        except GeneratorExit:
            self._drain(it)
            raise

    def _drain(self, it: Iterator[bytes]) -> None:
        if self.control is not None and self.control.reason is not None:
            return  # aborted: the socket is already shut
        stop = CallControl(ttft_s=DRAIN_S, total_s=DRAIN_S)
        stop.on_abort(lambda: _shutdown_stream(self.inner))
        watchdog().watch(stop)
        try:
            size = 0
            for chunk in it:
                size += len(chunk)
                if size > DRAIN_BYTES or stop.reason is not None:
                    return
        except Exception:  # noqa: BLE001 - then the connection is simply not reused
            return
        finally:
            stop.release()

    def close(self) -> None:
        self.inner.close()


def _shutdown_stream(stream: Any) -> None:
    """Shut the socket under an httpx/httpcore response stream (drain took too long)."""
    try:
        inner = stream._stream._stream  # httpx ResponseStream -> httpcore PoolByteStream -> HTTP11ConnectionByteStream
        sock = inner._connection._network_stream.get_extra_info("socket")
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except Exception:  # noqa: BLE001
        pass


def _shutdown(resp: httpx.Response) -> None:
    """Wake a read blocked on this response in another thread (the watchdog's abort)."""
    if resp.is_closed:
        return
    stream = resp.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if sock is not None:
        try:
            # the plain-socket shutdown, also for TLS sockets (no TLS close_notify from this thread)
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


def _timeout_error(provider_id: str, exc: Exception) -> GatewayError:
    phase = "connect" if isinstance(exc, httpx.ConnectTimeout) else "read"
    return GatewayError(
        "provider_timeout",
        f"Provider '{provider_id}' did not answer in time ({phase} timeout).",
        provider=provider_id, timeout=phase,
    )


def _transport_error(provider_id: str, exc: Exception) -> GatewayError:
    what = type(exc).__name__
    return GatewayError(
        "provider_error",
        f"Could not reach provider '{provider_id}' ({what}).",
        provider=provider_id,
    )


_lock = threading.Lock()
_default: OutboundClient | None = None


def get_outbound() -> OutboundClient:
    """The process-wide client (created on first use, reused across warm invocations)."""
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = OutboundClient()
    return _default


def set_outbound(client: OutboundClient | None) -> None:
    """Replace the process-wide client (tests)."""
    global _default
    _default = client
