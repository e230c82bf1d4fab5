"""Provider batch APIs behind one shape: submit, poll, results, cancel.

- **OpenAI Batch API** (`kind: openai`): the requests as JSONL (`{"custom_id", "method": "POST",
  "url": "/v1/chat/completions", "body"}`) uploaded to `POST /v1/files` (`purpose=batch`),
  `POST /v1/batches` (`completion_window: 24h`), `GET /v1/batches/{id}` until it is
  `completed | expired | cancelled | failed`, then the output and error files
  (`GET /v1/files/{id}/content`); cancel = `POST /v1/batches/{id}/cancel`. One model per batch.
- **Anthropic Message Batches** (`kind: anthropic`): `POST /v1/messages/batches` with
  `requests: [{custom_id, params}]`, `GET /v1/messages/batches/{id}` until `processing_status`
  is `ended`, then the results JSONL (`results_url`); cancel = `POST …/{id}/cancel`.

Bodies are built and answers parsed by the provider's own adapter (`build_body` /
`parse_result`), so a batch item is translated exactly like a sync request; calls go through
the outbound client (pooled, circuit breaker, egress base URL). Provider-side ids are the
gateway's own (`r<index>`), so any consumer `custom_id` works on every backend.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from llm_gateway.api.errors import GatewayError
from llm_gateway.outbound.client import provider_status_error
from llm_gateway.providers.base import ChatResult, ProviderCall

TIMEOUT = httpx.Timeout(120.0, connect=10.0)
EXPIRED = {"code": "batch_expired", "message": "The provider's batch window ended before this request ran."}
CANCELLED = {"code": "cancelled", "message": "The batch was cancelled before this request ran."}


@dataclass
class BatchProgress:
    """One poll of a provider batch."""

    ended: bool
    outcome: str | None = None  # when ended: completed | expired | cancelled | failed
    provider_status: str = ""
    completed: int = 0
    failed: int = 0
    error: dict[str, str] | None = None  # why the whole batch failed
    raw: dict[str, Any] = field(default_factory=dict)


class BatchBackend(ABC):
    name: str
    max_requests: int
    max_bytes: int

    def __init__(self, adapter: Any) -> None:
        self.adapter = adapter
        self.provider = adapter.provider
        self.http = adapter.http

    def limits(self) -> tuple[int, int]:
        """(requests, bytes) per provider batch; the provider options `batch_max_requests` /
        `batch_max_bytes` lower them (e.g. an organisation's own quota)."""
        opts = self.provider.options
        return (int(opts.get("batch_max_requests") or self.max_requests), int(opts.get("batch_max_bytes") or self.max_bytes))

    def body(self, call: ProviderCall) -> dict[str, Any]:
        """The provider wire body for one request, refusals included (same as a sync request)."""
        self.adapter.check(call)
        return self.adapter.build_body(call, stream=False)

    def _call(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        resp = self.http.request(self.provider.id, method, url, timeout=TIMEOUT, **kwargs)
        self.adapter.raise_for_error(resp)
        return resp

    def _json(self, resp: httpx.Response) -> dict[str, Any]:
        try:
            data = resp.json()
        except ValueError:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned a batch answer that is not JSON.",
                               provider=self.provider.id) from None
        if not isinstance(data, dict):
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned an unexpected batch answer.",
                               provider=self.provider.id)
        return data

    @staticmethod
    def jsonl(text: str) -> Iterator[dict[str, Any]]:
        for line in text.splitlines():
            line = line.strip()
            if line:
                try:
                    value = json.loads(line)
                except ValueError:
                    continue
                if isinstance(value, dict):
                    yield value

    @abstractmethod
    def submit(self, batch_id: str, entries: list[tuple[str, dict[str, Any]]], calls: list[ProviderCall]) -> dict[str, Any]:
        """Create the provider batch; the state to keep (ids)."""

    @abstractmethod
    def poll(self, state: dict[str, Any]) -> BatchProgress: ...

    @abstractmethod
    def results(self, state: dict[str, Any], progress: BatchProgress) -> Iterator[tuple[str, Any, dict[str, str] | None]]:
        """`(provider custom id, wire answer or None, error info or None)` per returned request."""

    @abstractmethod
    def parse(self, call: ProviderCall, wire: Any) -> ChatResult: ...

    @abstractmethod
    def cancel(self, state: dict[str, Any]) -> None: ...


class OpenAIBatches(BatchBackend):
    name = "openai"
    max_requests = 50_000
    max_bytes = 200 * 1024 * 1024
    ENDPOINT = "/v1/chat/completions"

    def _base(self) -> str:
        return self.provider.base_url or "https://api.openai.com/v1"

    def _headers(self, *, json_body: bool = True) -> dict[str, str]:
        headers = dict(self.adapter.headers())
        if not json_body:
            headers.pop("Content-Type", None)
        return headers

    def submit(self, batch_id: str, entries: list[tuple[str, dict[str, Any]]], calls: list[ProviderCall]) -> dict[str, Any]:
        lines = [json.dumps({"custom_id": cid, "method": "POST", "url": self.ENDPOINT, "body": body},
                            separators=(",", ":"), ensure_ascii=False) for cid, body in entries]
        data = ("\n".join(lines) + "\n").encode("utf-8")
        uploaded = self._json(self._call(
            "POST", self.http.url(self._base(), "/files"), headers=self._headers(json_body=False),
            data={"purpose": "batch"}, files={"file": (f"{batch_id}.jsonl", data, "application/jsonl")},
        ))
        file_id = uploaded.get("id")
        if not file_id:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' did not return a file id for the batch input.",
                               provider=self.provider.id)
        created = self._json(self._call(
            "POST", self.http.url(self._base(), "/batches"), headers=self._headers(),
            json={"input_file_id": file_id, "endpoint": self.ENDPOINT, "completion_window": "24h",
                  "metadata": {"llmgw_batch_id": batch_id}},
        ))
        if not created.get("id"):
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' did not return a batch id.", provider=self.provider.id)
        return {"provider_batch_id": created["id"], "input_file_id": file_id}

    def poll(self, state: dict[str, Any]) -> BatchProgress:
        data = self._json(self._call("GET", self.http.url(self._base(), f"/batches/{state['provider_batch_id']}"),
                                     headers=self._headers()))
        status = str(data.get("status") or "")
        counts = data.get("request_counts") or {}
        progress = BatchProgress(ended=status in ("completed", "expired", "cancelled", "failed"), provider_status=status,
                                 completed=int(counts.get("completed") or 0), failed=int(counts.get("failed") or 0), raw=data)
        if progress.ended:
            progress.outcome = status
            if status == "failed":
                errs = ((data.get("errors") or {}).get("data") or [])
                first = errs[0] if errs and isinstance(errs[0], dict) else {}
                line = f" (line {first['line']})" if first.get("line") is not None else ""
                message = first.get("message") or "the provider rejected the batch"
                progress.error = {"code": "provider_error",
                                  "message": f"Provider '{self.provider.id}' failed the batch: {message}{line}"}
        return progress

    def _file(self, file_id: str) -> str:
        resp = self._call("GET", self.http.url(self._base(), f"/files/{file_id}/content"), headers=self._headers())
        return resp.text

    def results(self, state: dict[str, Any], progress: BatchProgress) -> Iterator[tuple[str, Any, dict[str, str] | None]]:
        for key in ("output_file_id", "error_file_id"):
            file_id = progress.raw.get(key)
            if not file_id:
                continue
            for line in self.jsonl(self._file(file_id)):
                cid = line.get("custom_id")
                if not isinstance(cid, str):
                    continue
                response = line.get("response") or None
                error = line.get("error") or None
                if response and int(response.get("status_code") or 0) == 200 and not error:
                    yield cid, response.get("body"), None
                    continue
                yield cid, None, self._item_error(response, error)

    def _item_error(self, response: Any, error: Any) -> dict[str, str]:
        pid = self.provider.id
        if isinstance(error, dict) and error:
            code = str(error.get("code") or "")
            if code == "batch_expired":
                return dict(EXPIRED)
            if code == "batch_cancelled":
                return dict(CANCELLED)
            return {"code": "provider_error", "message": f"Provider '{pid}': {error.get('message') or code or 'request failed'}"}
        status = int((response or {}).get("status_code") or 502)
        message, _kind, code, _param = self.adapter._error_fields((response or {}).get("body"))
        exc = provider_status_error(pid, status, message or f"HTTP {status}",
                                    kind="rate_limit" if code == "rate_limit_exceeded" else None)
        return {"code": exc.code, "message": exc.detail}

    def parse(self, call: ProviderCall, wire: Any) -> ChatResult:
        if not isinstance(wire, dict):
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned an empty batch answer.", provider=self.provider.id)
        return self.adapter.parse_result(wire)

    def cancel(self, state: dict[str, Any]) -> None:
        self._call("POST", self.http.url(self._base(), f"/batches/{state['provider_batch_id']}/cancel"), headers=self._headers())


class AnthropicBatches(BatchBackend):
    name = "anthropic"
    max_requests = 100_000
    max_bytes = 256 * 1024 * 1024

    def _base(self) -> str:
        return self.provider.base_url or "https://api.anthropic.com"

    def _url(self, path: str) -> str:
        return self.http.url(self._base(), "/v1/messages/batches" + path)

    def submit(self, batch_id: str, entries: list[tuple[str, dict[str, Any]]], calls: list[ProviderCall]) -> dict[str, Any]:
        with_beta = next((c for c in calls if c.response_schema is not None), None)
        headers = self.adapter.headers(with_beta)
        created = self._json(self._call("POST", self._url(""), headers=headers,
                                        json={"requests": [{"custom_id": cid, "params": body} for cid, body in entries]}))
        if not created.get("id"):
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' did not return a batch id.", provider=self.provider.id)
        return {"provider_batch_id": created["id"], "beta": bool(with_beta)}

    def poll(self, state: dict[str, Any]) -> BatchProgress:
        data = self._json(self._call("GET", self._url(f"/{state['provider_batch_id']}"), headers=self.adapter.headers()))
        status = str(data.get("processing_status") or "")
        counts = data.get("request_counts") or {}
        failed = sum(int(counts.get(k) or 0) for k in ("errored", "canceled", "expired"))
        progress = BatchProgress(ended=status == "ended", provider_status=status,
                                 completed=int(counts.get("succeeded") or 0), failed=failed, raw=data)
        if progress.ended:
            if data.get("cancel_initiated_at"):
                progress.outcome = "cancelled"
            elif int(counts.get("expired") or 0) > 0:
                progress.outcome = "expired"
            else:
                progress.outcome = "completed"
        return progress

    def results(self, state: dict[str, Any], progress: BatchProgress) -> Iterator[tuple[str, Any, dict[str, str] | None]]:
        own = self._url(f"/{state['provider_batch_id']}/results")
        url = progress.raw.get("results_url") or own
        if not str(url).startswith(self._base().rstrip("/") + "/"):
            url = own  # only ever follow the provider's own host with the provider's key
        resp = self._call("GET", url, headers=self.adapter.headers())
        for line in self.jsonl(resp.text):
            cid = line.get("custom_id")
            result = line.get("result") or {}
            if not isinstance(cid, str) or not isinstance(result, dict):
                continue
            kind = result.get("type")
            if kind == "succeeded":
                yield cid, result.get("message"), None
            elif kind == "canceled":
                yield cid, None, dict(CANCELLED)
            elif kind == "expired":
                yield cid, None, dict(EXPIRED)
            else:
                yield cid, None, self._item_error(result.get("error"))

    def _item_error(self, error: Any) -> dict[str, str]:
        from llm_gateway.providers.anthropic import ERROR_STATUS

        err = error if isinstance(error, dict) else {}
        if isinstance(err.get("error"), dict):  # {"type": "error", "error": {type, message}}
            err = err["error"]
        kind = err.get("type")
        exc = provider_status_error(self.provider.id, ERROR_STATUS.get(kind, 502), str(err.get("message") or kind or "request failed"),
                                    kind="rate_limit" if kind == "rate_limit_error" else None)
        return {"code": exc.code, "message": exc.detail}

    def parse(self, call: ProviderCall, wire: Any) -> ChatResult:
        if not isinstance(wire, dict):
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned an empty batch answer.", provider=self.provider.id)
        return self.adapter.parse_result(wire, call)

    def cancel(self, state: dict[str, Any]) -> None:
        self._call("POST", self._url(f"/{state['provider_batch_id']}/cancel"), headers=self.adapter.headers())


BACKENDS: dict[str, type[BatchBackend]] = {"openai": OpenAIBatches, "anthropic": AnthropicBatches}


def backend_for(provider: Any) -> BatchBackend:
    from llm_gateway.providers import adapter_for

    cls = BACKENDS.get(provider.kind)
    if cls is None:
        raise GatewayError("capability_not_supported", f"Provider '{provider.id}' ({provider.kind}) has no batch API in the gateway.",
                           provider=provider.id)
    return cls(adapter_for(provider))
