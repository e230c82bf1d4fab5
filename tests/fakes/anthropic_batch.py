"""A fake Anthropic Message Batches API on top of the fake Messages API (`tests/fakes/anthropic.py`).

Routes, in Anthropic's wire format:
- `POST /v1/messages/batches` (`{"requests": [{"custom_id", "params"}]}`) → a `message_batch`
  (`processing_status: in_progress`, `request_counts`); `custom_id`s must match
  `^[a-zA-Z0-9_-]{1,64}$` and be unique, `params` are checked like a sync Messages request
  (no `stream`); a bad request is a 400 `invalid_request_error` for the whole batch, as the API does;
- `GET /v1/messages/batches/{id}` — each poll advances: growing `succeeded` counts, then
  `ended` with `results_url` (or the scripted outcome: some requests `expired`);
- `POST /v1/messages/batches/{id}/cancel` → `canceling`, then `ended` with the rest `canceled`;
- `GET /v1/messages/batches/{id}/results` → JSONL lines `{"custom_id", "result": {"type":
  "succeeded", "message"} | {"type": "errored", "error": {"type": "error", "error": {...}}} |
  {"type": "canceled"} | {"type": "expired"}}` (404 before the batch ended).
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.anthropic import API_KEY, VERSION, FakeAnthropic, error_body
from tests.fakes.script import Script
from tests.fakes.server import FakeRequest, Reply

CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
TS = "2026-11-26T10:00:00.000000Z"


@dataclass
class MessageBatchScript:
    polls_to_finish: int = 3
    outcome: str = "completed"  # completed | expired
    done_before_expiry: int = 0
    fail_custom_ids: set[str] = field(default_factory=set)  # answered `errored` (invalid_request_error)


@dataclass
class _Batch:
    id: str
    requests: list[dict[str, Any]]
    status: str = "in_progress"
    polls: int = 0
    done: int = 0
    cancel_initiated: bool = False
    outcome: dict[str, str] = field(default_factory=dict)  # custom_id -> final result type


class FakeAnthropicBatch(FakeAnthropic):
    def __init__(self, script: Script | None = None, batch: MessageBatchScript | None = None) -> None:
        super().__init__(script)
        self.batch_script = batch or MessageBatchScript()
        self.batches: dict[str, _Batch] = {}
        self.cancels: list[str] = []
        self.route("POST", "/v1/messages/batches", self._create)
        self.route("GET", r"/v1/messages/batches/(msgbatch_[A-Za-z0-9]+)", self._get)
        self.route("POST", r"/v1/messages/batches/(msgbatch_[A-Za-z0-9]+)/cancel", self._cancel)
        self.route("GET", r"/v1/messages/batches/(msgbatch_[A-Za-z0-9]+)/results", self._results)

    def catalog(self, caps: list[str] | None = None, **kw: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        provider, models = super().catalog(caps or ["chat", "stream", "tools", "structured_output", "batch"], **kw)
        for m in models:
            m["pricing"]["batch_discount"] = 0.5
        return provider, models

    def _headers_ok(self, req: FakeRequest) -> Reply | None:
        h = req.headers
        if h.get("x-api-key") != API_KEY:
            self.violations.append(f"{req.method} {req.path}: x-api-key missing or wrong")
            return Reply(401, json=error_body("authentication_error", "invalid x-api-key"))
        if h.get("anthropic-version") != VERSION:
            self.violations.append(f"{req.method} {req.path}: anthropic-version missing")
            return Reply(400, json=error_body("invalid_request_error", "anthropic-version: header is required"))
        return None

    def _object(self, b: _Batch) -> dict[str, Any]:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for i, r in enumerate(b.requests):
            cid = r["custom_id"]
            if cid in b.outcome:
                counts[b.outcome[cid]] += 1
            elif i < b.done:
                counts["errored" if cid in self.batch_script.fail_custom_ids else "succeeded"] += 1
            else:
                counts["processing"] += 1
        ended = b.status == "ended"
        return {
            "id": b.id, "type": "message_batch", "processing_status": b.status, "request_counts": counts,
            "ended_at": TS if ended else None, "created_at": TS, "expires_at": "2026-11-27T10:00:00.000000Z",
            "archived_at": None, "cancel_initiated_at": TS if b.cancel_initiated else None,
            "results_url": f"{self.url}/v1/messages/batches/{b.id}/results" if ended else None,
        }

    def _create(self, req: FakeRequest) -> Reply:
        if (denied := self._headers_ok(req)) is not None:
            return denied
        body = req.json()
        reqs = body.get("requests") if isinstance(body, dict) else None
        if set(body or {}) - {"requests"} or not isinstance(reqs, list) or not reqs:
            self.violations.append("POST /v1/messages/batches: requests must be a non-empty list")
            return Reply(400, json=error_body("invalid_request_error", "requests: List should have at least 1 item"))
        seen: set[str] = set()
        for i, r in enumerate(reqs):
            cid = r.get("custom_id")
            if not isinstance(cid, str) or not CUSTOM_ID.match(cid) or cid in seen:
                problem = f"requests.{i}.custom_id: invalid or duplicate custom_id"
                self.violations.append(problem)
                return Reply(400, json=error_body("invalid_request_error", problem))
            seen.add(cid)
            params = r.get("params")
            if not isinstance(params, dict) or params.get("stream"):
                problem = f"requests.{i}.params: a Messages request without stream is required"
                self.violations.append(problem)
                return Reply(400, json=error_body("invalid_request_error", problem))
            problem = self.check(FakeRequest("POST", "/v1/messages", "", dict(req.headers), json.dumps(params).encode()))
            if problem:
                problem = f"requests.{i}.params: {problem}"
                self.violations.append(problem)
                return Reply(400, json=error_body("invalid_request_error", problem))
        b = _Batch(id=f"msgbatch_{len(self.batches) + 1:06d}Fake", requests=reqs)
        self.batches[b.id] = b
        return Reply(200, json=self._object(b))

    def _get(self, req: FakeRequest) -> Reply:
        if (denied := self._headers_ok(req)) is not None:
            return denied
        b = self.batches.get(req.path.rsplit("/", 1)[-1])
        if b is None:
            return Reply(404, json=error_body("not_found_error", "batch not found"))
        if b.status != "ended":
            b.polls += 1
            s = self.batch_script
            total = len(b.requests)
            if b.status == "canceling":
                for r in b.requests[b.done:]:
                    b.outcome[r["custom_id"]] = "canceled"
                b.status = "ended"
            elif b.polls > s.polls_to_finish:
                if s.outcome == "expired":
                    b.done = min(total, s.done_before_expiry)
                    for r in b.requests[b.done:]:
                        b.outcome[r["custom_id"]] = "expired"
                else:
                    b.done = total
                b.status = "ended"
            else:
                b.done = min(total, (total * b.polls) // (s.polls_to_finish + 1))
        return Reply(200, json=self._object(b))

    def _cancel(self, req: FakeRequest) -> Reply:
        if (denied := self._headers_ok(req)) is not None:
            return denied
        bid = req.path.split("/")[-2]
        b = self.batches.get(bid)
        if b is None:
            return Reply(404, json=error_body("not_found_error", "batch not found"))
        self.cancels.append(bid)
        if b.status == "in_progress":
            b.status = "canceling"
            b.cancel_initiated = True
        return Reply(200, json=self._object(b))

    def _line(self, b: _Batch, i: int, r: dict[str, Any]) -> dict[str, Any]:
        cid = r["custom_id"]
        if cid in b.outcome:
            return {"custom_id": cid, "result": {"type": b.outcome[cid]}}
        if cid in self.batch_script.fail_custom_ids:
            return {"custom_id": cid, "result": {"type": "errored", "error": {"type": "error", "error": {
                "type": "invalid_request_error", "message": "messages.0.content: text is too long"}}}}
        params = r["params"]
        last = next((m for m in reversed(params["messages"]) if m["role"] == "user"), {"content": ""})
        content = last["content"]
        text = content if isinstance(content, str) else "".join(c.get("text", "") for c in content if c.get("type") == "text")
        s = copy.copy(self._script)
        s.text = f"Batch answer to: {text}"
        blocks = self._blocks(s, params)
        return {"custom_id": cid, "result": {"type": "succeeded", "message": {
            "id": f"msg_fake_{i:04d}", "type": "message", "role": "assistant", "model": params["model"],
            "content": blocks, "stop_reason": self._stop_reason(s, blocks), "stop_sequence": None,
            "usage": self._usage(s, s.output_tokens)}}}

    def _results(self, req: FakeRequest) -> Reply:
        if (denied := self._headers_ok(req)) is not None:
            return denied
        b = self.batches.get(req.path.split("/")[-2])
        if b is None or b.status != "ended":
            return Reply(404, json=error_body("not_found_error", "results are available once the batch ended"))
        lines = [json.dumps(self._line(b, i, r)) for i, r in enumerate(b.requests)]
        lines.reverse()  # results are not in request order
        return Reply(200, body=("\n".join(lines) + "\n").encode(), headers={"Content-Type": "application/binary"})

    def batch_requests(self) -> list[dict[str, Any]]:
        return [r for b in self.batches.values() for r in b.requests]
