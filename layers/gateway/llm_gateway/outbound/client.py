"""The outbound client: one pooled `httpx.Client` per process, reused across warm invocations.

Transport failures become `provider_timeout` / `provider_error` naming the provider. An
optional `LLMGW_EGRESS_BASE_URL` routes every provider call through an external egress gateway.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from llm_gateway.api.errors import GatewayError, redact

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


class OutboundClient:
    """Thin wrapper over `httpx.Client` that names the provider in every failure."""

    def __init__(self, client: httpx.Client | None = None) -> None:
        self._client = client or httpx.Client(
            timeout=httpx.Timeout(DEFAULT_READ_S, connect=DEFAULT_CONNECT_S),
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=60),
            follow_redirects=False,
            trust_env=False,
        )
        self.egress_base_url = os.environ.get("LLMGW_EGRESS_BASE_URL") or None

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
        try:
            return self._client.request(method, url, timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT, **kwargs)
        except httpx.TimeoutException as exc:
            raise _timeout_error(provider_id, exc) from None
        except httpx.HTTPError as exc:
            raise _transport_error(provider_id, exc) from None

    @contextmanager
    def stream(
        self, provider_id: str, method: str, url: str, *, timeout: httpx.Timeout | float | None = None, **kwargs: Any
    ) -> Iterator[httpx.Response]:
        try:
            with self._client.stream(method, url, timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT, **kwargs) as resp:
                yield resp
        except httpx.TimeoutException as exc:
            raise _timeout_error(provider_id, exc) from None
        except httpx.HTTPError as exc:
            raise _transport_error(provider_id, exc) from None

    def close(self) -> None:
        self._client.close()


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
