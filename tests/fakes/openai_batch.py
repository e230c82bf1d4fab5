"""A fake OpenAI Batch API on top of the fake Chat Completions API (`tests/fakes/openai.py`).

Routes, in OpenAI's wire format:
- `POST /v1/files` (multipart: `purpose=batch`, `file` = JSONL) → a `file` object;
- `POST /v1/batches` (`input_file_id`, `endpoint: /v1/chat/completions`, `completion_window: 24h`)
  → a `batch` object `validating`; every input line is checked the way the API does (unique
  `custom_id`, `method: POST`, the batch's `url`, one model per file) and each body with the
  same checks as a sync chat request — a bad file fails the batch (`errors.data[]`);
- `GET /v1/batches/{id}` — each poll advances the batch: `in_progress` with growing
  `request_counts`, then `completed` (or the scripted outcome: `expired`, `failed`) with
  `output_file_id` / `error_file_id`;
- `POST /v1/batches/{id}/cancel` → `cancelling`, then `cancelled` at the next poll, with the
  requests done so far in the output file;
- `GET /v1/files/{id}/content` → the JSONL (`{"id", "custom_id", "response": {"status_code",
  "request_id", "body"}, "error"}` per line).

Answers echo each request's last user text ("Batch answer to: …") so tests can check that
every result lands on its own `custom_id`.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from tests.fakes.openai import FakeOpenAI, render_completion
from tests.fakes.script import Script
from tests.fakes.server import FakeRequest, Reply

CREATED = 1767225600


@dataclass
class BatchScript:
    polls_to_finish: int = 3  # polls answered in_progress before the outcome
    outcome: str = "completed"  # completed | expired | failed
    done_before_expiry: int = 0  # with outcome "expired": requests answered before the window closed
    fail_custom_ids: set[str] = field(default_factory=set)  # requests answered with a 400 error
    fail_file: bool = False  # reject the whole input file (status failed)


@dataclass
class _Batch:
    id: str
    input_file_id: str
    lines: list[dict[str, Any]]
    metadata: dict[str, Any] | None
    status: str = "validating"
    polls: int = 0
    errors: list[dict[str, Any]] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    done: int = 0  # lines answered so far
    cancel_requested: bool = False


def parse_multipart(req: FakeRequest) -> dict[str, tuple[str | None, bytes]]:
    """name -> (filename, bytes) of a multipart/form-data body."""
    ctype = req.headers.get("content-type", "")
    msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + req.body)
    out = {}
    for part in msg.iter_parts():
        out[part.get_param("name", header="content-disposition")] = (part.get_filename(), part.get_payload(decode=True))
    return out


class FakeOpenAIBatch(FakeOpenAI):
    def __init__(self, script: Script | None = None, batch: BatchScript | None = None) -> None:
        super().__init__(script)
        self.batch_script = batch or BatchScript()
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, _Batch] = {}
        self.cancels: list[str] = []
        self.route("POST", "/v1/files", self._upload)
        self.route("GET", r"/v1/files/(file-[a-z0-9]+)/content", self._content)
        self.route("POST", "/v1/batches", self._create)
        self.route("GET", r"/v1/batches/(batch_[a-z0-9]+)", self._get)
        self.route("POST", r"/v1/batches/(batch_[a-z0-9]+)/cancel", self._cancel)

    def catalog(self, caps: list[str] | None = None, **kw: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        provider, models = super().catalog(caps or ["chat", "stream", "tools", "structured_output", "batch"], **kw)
        for m in models:
            m["pricing"]["batch_discount"] = 0.5
        return provider, models

    # ---------------------------------------------------------------- helpers
    def _auth(self, req: FakeRequest) -> Reply | None:
        if req.headers.get("authorization") != f"Bearer {self.api_key}":
            self.violations.append(f"{req.method} {req.path}: Authorization: Bearer key missing or wrong")
            return self.error_reply("auth", self._script)
        return None

    def _new_file(self, data: bytes, purpose: str, filename: str) -> dict[str, Any]:
        fid = f"file-{len(self.files) + 1:06d}abc"
        obj = {"id": fid, "object": "file", "bytes": len(data), "created_at": CREATED, "filename": filename,
               "purpose": purpose, "status": "processed", "status_details": None, "data": data}
        self.files[fid] = obj
        return obj

    @staticmethod
    def _public(obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if k != "data"}

    def _object(self, b: _Batch) -> dict[str, Any]:
        total = len(b.lines)
        failed = sum(1 for line in b.lines[: b.done] if line["custom_id"] in self.batch_script.fail_custom_ids)
        status = b.status
        return {
            "id": b.id, "object": "batch", "endpoint": "/v1/chat/completions",
            "errors": {"object": "list", "data": b.errors} if b.errors else None,
            "input_file_id": b.input_file_id, "completion_window": "24h", "status": status,
            "output_file_id": b.output_file_id, "error_file_id": b.error_file_id,
            "created_at": CREATED, "in_progress_at": CREATED + 1 if status != "validating" else None,
            "expires_at": CREATED + 86400, "finalizing_at": None,
            "completed_at": CREATED + 60 if status == "completed" else None,
            "failed_at": CREATED + 2 if status == "failed" else None,
            "expired_at": CREATED + 86400 if status == "expired" else None,
            "cancelling_at": CREATED + 30 if b.cancel_requested else None,
            "cancelled_at": CREATED + 31 if status == "cancelled" else None,
            "request_counts": {"total": total, "completed": b.done - failed, "failed": failed},
            "metadata": b.metadata,
        }

    # ---------------------------------------------------------------- routes
    def _upload(self, req: FakeRequest) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        if not req.headers.get("content-type", "").startswith("multipart/form-data"):
            self.violations.append("POST /v1/files: not multipart/form-data")
            return Reply(400, json={"error": {"message": "Expected multipart/form-data", "type": "invalid_request_error"}})
        parts = parse_multipart(req)
        purpose = (parts.get("purpose") or (None, b""))[1].decode()
        filename, data = parts.get("file") or (None, b"")
        if purpose != "batch" or not data:
            self.violations.append(f"POST /v1/files: purpose={purpose!r}, file {len(data or b'')} bytes")
            return Reply(400, json={"error": {"message": "purpose must be 'batch' with a file", "type": "invalid_request_error"}})
        return Reply(200, json=self._public(self._new_file(data, purpose, filename or "input.jsonl")))

    def _check_lines(self, data: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        lines: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        seen: set[str] = set()
        models: set[str] = set()
        for n, raw in enumerate(data.decode("utf-8").splitlines(), start=1):
            if not raw.strip():
                errors.append({"code": "invalid_json_line", "message": "Blank lines are not allowed.", "param": None, "line": n})
                continue
            try:
                line = json.loads(raw)
            except ValueError:
                errors.append({"code": "invalid_json_line", "message": "This line is not parseable as valid JSON.", "param": None, "line": n})
                continue
            cid = line.get("custom_id")
            if not isinstance(cid, str) or cid in seen:
                errors.append({"code": "duplicate_custom_id", "message": "The custom_id for this request is a duplicate of another request.",
                               "param": "custom_id", "line": n})
            seen.add(cid)
            if line.get("method") != "POST" or line.get("url") != "/v1/chat/completions":
                errors.append({"code": "invalid_url", "message": "The URL provided for this request does not match the batch endpoint.",
                               "param": "url", "line": n})
            body = line.get("body")
            if not isinstance(body, dict):
                errors.append({"code": "missing_required_parameter", "message": "body is required", "param": "body", "line": n})
                continue
            models.add(body.get("model"))
            problem = self.check(FakeRequest("POST", "/v1/chat/completions", "",
                                             {"authorization": f"Bearer {self.api_key}", "content-type": "application/json"},
                                             json.dumps(body).encode()))
            if problem or body.get("stream"):
                errors.append({"code": "invalid_request", "message": problem or "stream is not supported in batches",
                               "param": "body", "line": n})
            lines.append(line)
        if len(models) > 1:
            errors.append({"code": "mismatched_model", "message": "All requests in a batch must use the same model.",
                           "param": "body.model", "line": None})
        return lines, errors

    def _create(self, req: FakeRequest) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        body = req.json()
        unknown = set(body) - {"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"}
        if unknown or body.get("endpoint") != "/v1/chat/completions" or body.get("completion_window") != "24h":
            self.violations.append(f"POST /v1/batches: {body!r}")
            return Reply(400, json={"error": {"message": "Invalid batch parameters", "type": "invalid_request_error"}})
        f = self.files.get(body.get("input_file_id"))
        if f is None or f["purpose"] != "batch":
            self.violations.append("POST /v1/batches: unknown input_file_id")
            return Reply(404, json={"error": {"message": "No such File object", "type": "invalid_request_error"}})
        lines, errors = self._check_lines(f["data"])
        if errors and not self.batch_script.fail_file:
            self.violations.extend(e["message"] for e in errors)
        b = _Batch(id=f"batch_{len(self.batches) + 1:06d}abc", input_file_id=f["id"], lines=lines, metadata=body.get("metadata"))
        if errors or self.batch_script.fail_file:
            b.status = "failed"
            b.errors = errors or [{"code": "invalid_request", "message": "The input file is malformed.", "param": None, "line": 1}]
        self.batches[b.id] = b
        return Reply(200, json=self._object(b))

    def _answer(self, b: _Batch, line: dict[str, Any], n: int) -> tuple[dict[str, Any], bool]:
        cid = line["custom_id"]
        if cid in self.batch_script.fail_custom_ids:
            return {"id": f"batch_req_{n:06d}", "custom_id": cid,
                    "response": {"status_code": 400, "request_id": f"req_{n:06d}",
                                 "body": {"error": {"message": "Invalid 'messages[0].content': string too long.",
                                                    "type": "invalid_request_error", "param": "messages", "code": None}}},
                    "error": None}, False
        body = line["body"]
        last = next((m for m in reversed(body["messages"]) if m["role"] == "user"), {"content": ""})
        text = last["content"] if isinstance(last["content"], str) else "".join(p.get("text", "") for p in last["content"])
        script = copy.copy(self._script)
        script.text = f"Batch answer to: {text}"
        return {"id": f"batch_req_{n:06d}", "custom_id": cid,
                "response": {"status_code": 200, "request_id": f"req_{n:06d}", "body": render_completion(script, body["model"])},
                "error": None}, True

    def _finish(self, b: _Batch, status: str) -> None:
        out, err = [], []
        for n, line in enumerate(b.lines):
            if n < b.done:
                answer, ok = self._answer(b, line, n)
                (out if ok else err).append(answer)
            elif status == "expired":
                err.append({"id": f"batch_req_{n:06d}", "custom_id": line["custom_id"], "response": None,
                            "error": {"code": "batch_expired", "message": "This request could not be executed before the completion window expired."}})
            elif status == "cancelled":
                err.append({"id": f"batch_req_{n:06d}", "custom_id": line["custom_id"], "response": None,
                            "error": {"code": "batch_cancelled", "message": "This request was cancelled before it ran."}})
        if out:
            b.output_file_id = self._new_file(("\n".join(json.dumps(o) for o in out) + "\n").encode(), "batch_output", "output.jsonl")["id"]
        if err:
            b.error_file_id = self._new_file(("\n".join(json.dumps(e) for e in err) + "\n").encode(), "batch_output", "errors.jsonl")["id"]
        b.status = status

    def _get(self, req: FakeRequest) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        b = self.batches.get(req.path.rsplit("/", 1)[-1])
        if b is None:
            return Reply(404, json={"error": {"message": "No such Batch object", "type": "invalid_request_error"}})
        if b.status in ("validating", "in_progress", "cancelling"):
            b.polls += 1
            s = self.batch_script
            total = len(b.lines)
            if b.status == "cancelling":
                self._finish(b, "cancelled")
            elif b.polls > s.polls_to_finish:
                if s.outcome == "expired":
                    b.done = min(total, s.done_before_expiry)
                    self._finish(b, "expired")
                else:
                    b.done = total
                    self._finish(b, "completed")
            else:
                b.status = "in_progress"
                b.done = min(total, (total * b.polls) // (s.polls_to_finish + 1))
        return Reply(200, json=self._object(b))

    def _cancel(self, req: FakeRequest) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        bid = req.path.split("/")[-2]
        b = self.batches.get(bid)
        if b is None:
            return Reply(404, json={"error": {"message": "No such Batch object", "type": "invalid_request_error"}})
        self.cancels.append(bid)
        if b.status in ("validating", "in_progress"):
            b.status = "cancelling"
            b.cancel_requested = True
        return Reply(200, json=self._object(b))

    def _content(self, req: FakeRequest) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        f = self.files.get(req.path.split("/")[-2])
        if f is None:
            return Reply(404, json={"error": {"message": "No such File object", "type": "invalid_request_error"}})
        return Reply(200, body=f["data"], headers={"Content-Type": "application/octet-stream"})

    # ---------------------------------------------------------------- what was sent
    def batch_lines(self) -> list[dict[str, Any]]:
        """Every input line of every batch created."""
        return [line for b in self.batches.values() for line in b.lines]
