"""A fake Gemini API (`generativelanguage.googleapis.com/v1beta`) speaking Gemini's published wire format.

Routes:
  - `POST /v1beta/models/{model}:generateContent`              -> a `GenerateContentResponse`
  - `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` -> SSE `data:` lines, each a whole
    `GenerateContentResponse` (text pieces, `functionCall` parts whole, cumulative
    `usageMetadata`, `finishReason` on the last chunk)

It answers a provider-neutral `Script`; normalized usage maps to `usageMetadata` as the real API
reports it (`promptTokenCount` includes `cachedContentTokenCount`; `candidatesTokenCount`
excludes `thoughtsTokenCount`). Each error class of `ERROR_CLASSES` comes in Google's shape
`{"error": {"code", "message", "status", "details"}}` with its status (an invalid key is a 400
INVALID_ARGUMENT with `ErrorInfo.reason = API_KEY_INVALID`; quota is 429 RESOURCE_EXHAUSTED with
`google.rpc.RetryInfo`), and a stream can fail midway with a `data: {"error": ...}` line.

Files API (media too large to go inline), the resumable upload protocol:
  - `POST /upload/v1beta/files` with `X-Goog-Upload-Protocol: resumable`, `X-Goog-Upload-Command:
    start`, `X-Goog-Upload-Header-Content-Length`, `X-Goog-Upload-Header-Content-Type` and
    `{"file": {"display_name"}}` -> 200, empty body, the upload URL in `X-Goog-Upload-URL`
    (`/upload/v1beta/files?upload_id=…&upload_protocol=resumable`);
  - `POST <upload URL>` with `X-Goog-Upload-Command: upload, finalize`, `X-Goog-Upload-Offset: 0`
    and exactly the announced bytes -> `{"file": File}`; a video is `PROCESSING` (others `ACTIVE`);
  - `GET /v1beta/files/{id}` -> the bare `File`; a processing file turns `ACTIVE` (or `FAILED`, with
    `error`, when `file_outcome = "FAILED"`) at the `file_processing_polls`-th get;
  - `DELETE /v1beta/files/{id}` -> `{}`.
  A `fileData` part naming one of these files must name an existing `ACTIVE` file with its
  mimeType (else 400 FAILED_PRECONDITION / INVALID_ARGUMENT, as the API answers).

Every request is checked the way the API checks it: `x-goog-api-key`, the model in the path,
`alt=sse` on streams, no unknown field anywhere (top level, parts, generationConfig, Schema — the
real API answers `Invalid JSON payload received. Unknown name ...`), roles `user`/`model`, one
data field per part, base64 `inlineData`, `functionCall` only from the model and
`functionResponse` only from the user with as many responses as the previous turn had calls,
function declarations, `toolConfig`, at most 5 stop sequences, `responseSchema` needing
`responseMimeType`. A bad request gets Gemini's 400 and is listed in `violations`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
import threading
from typing import Any

from tests.fakes.script import Script
from tests.fakes.server import FakeRequest, FakeServer, Reply

API_KEY = "AIzaSyFAKE-gemini-key-0123456789abcdefgh"
KEY_ENV = "FAKE_GEMINI_API_KEY"
MODEL = "gemini-fake-2.5-flash"

FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP", "content_filter": "SAFETY"}

# error class -> (HTTP status, google.rpc status, message, extra details)
ERRORS: dict[str, tuple[int, str, str, list[dict[str, Any]]]] = {
    "auth": (400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com",
         "metadata": {"service": "generativelanguage.googleapis.com"}},
        {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US", "message": "API key not valid. Please pass a valid API key."},
    ]),
    "rate_limit": (429, "RESOURCE_EXHAUSTED",
                   "You exceeded your current quota, please check your plan and billing details. For more information on this error, "
                   "head to: https://ai.google.dev/gemini-api/docs/rate-limits.", [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
            {"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
             "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "quotaValue": "10"}]},
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [
            {"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
    ]),
    "server": (500, "INTERNAL", "An internal error has occurred. Please retry or report in "
                                "https://developers.generativeai.google/guide/troubleshooting", []),
    "overloaded": (503, "UNAVAILABLE", "The model is overloaded. Please try again later.", []),
    "context_length": (400, "INVALID_ARGUMENT", "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).", []),
    "bad_request": (400, "INVALID_ARGUMENT", "Request contains an invalid argument.", []),
}

TOP_LEVEL = frozenset({"contents", "tools", "toolConfig", "safetySettings", "systemInstruction", "generationConfig", "cachedContent"})
PART_DATA = frozenset({"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult"})
PART_META = frozenset({"thought", "thoughtSignature", "videoMetadata", "partMetadata", "mediaResolution"})
GENERATION_CONFIG = frozenset({
    "stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities", "candidateCount",
    "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty", "frequencyPenalty", "responseLogprobs",
    "logprobs", "enableEnhancedCivicAnswers", "speechConfig", "thinkingConfig", "imageConfig", "mediaResolution",
})
SCHEMA_FIELDS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties", "required",
    "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf", "propertyOrdering",
    "default", "items", "minimum", "maximum",
})
SCHEMA_TYPES = frozenset({"TYPE_UNSPECIFIED", "STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,63}$")


def error_body(status: int, gstatus: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    err: dict[str, Any] = {"code": status, "message": message, "status": gstatus}
    if details:
        err["details"] = details
    return {"error": err}


def sse_line(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\r\n\r\n".encode()


class FakeGemini(FakeServer):
    provider_id = "gemini"
    model = MODEL
    # every conformance feature but usage_cache_write (Gemini has no cache-write count: explicit caches are
    # created by a separate API call and implicit caching is free to write)
    supports = frozenset({
        "text", "multi_turn", "system", "image", "audio", "video", "document", "tools", "tool_round_trip", "tool_choice",
        "structured_output", "stop", "max_tokens", "stream", "stream_tools", "usage_cache", "usage_reasoning", "errors",
    })

    def __init__(self, script: Script | None = None) -> None:
        super().__init__()
        self._script = script or Script()
        self.stream_error: str | None = None  # an ERROR_CLASSES name sent as a `data: {"error": ...}` line mid-stream
        self.stream_error_after: int = 3  # ... after this many content chunks
        self.prompt_blocked: str | None = None  # a promptFeedback.blockReason answered instead of candidates
        self.send_call_ids = True  # fill the optional FunctionCall.id from the script's tool call ids
        self.thought_signature: str | None = None  # sent on the first functionCall part
        self.thought_text: str | None = None  # a `thought: true` part sent before the answer
        self.violations: list[str] = []
        # Files API
        self.files: dict[str, dict[str, Any]] = {}  # id -> File resource (plus "_polls", "_data")
        self.file_processing_polls = 2  # files.get calls until a PROCESSING file leaves that state
        self.file_outcome = "ACTIVE"  # ... for ACTIVE or FAILED
        self.deleted_files: list[str] = []
        self.finalize_faults: list[Reply] = []  # served (in order) instead of answering an `upload, finalize`
        self.upload_host: str | None = None  # another host name for this server in X-Goog-Upload-URL (e.g. "localhost")
        self._sessions: dict[str, dict[str, Any]] = {}
        self._files_lock = threading.Lock()
        self.route("POST", r"/v1beta/models/[^/:]+:generateContent", self._generate)
        self.route("POST", r"/v1beta/models/[^/:]+:streamGenerateContent", self._generate)
        self.route("POST", r"/upload/v1beta/files", self._upload)
        self.route("GET", r"/v1beta/files/[^/:]+", self._file_get)
        self.route("DELETE", r"/v1beta/files/[^/:]+", self._file_delete)

    # ---------------------------------------------------------------- scripting
    def script(self, s: Script, *, stream_error: str | None = None, stream_error_after: int = 3,
               prompt_blocked: str | None = None) -> "FakeGemini":
        self._script = s
        self.stream_error = stream_error if stream_error is not None else getattr(s, "stream_error", None)
        self.stream_error_after = stream_error_after
        self.prompt_blocked = prompt_blocked
        return self

    def catalog(self, caps: list[str] | None = None, *, options: dict[str, Any] | None = None,
                limits: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        os.environ[KEY_ENV] = API_KEY
        provider = {"id": self.provider_id, "kind": "gemini", "base_url": self.url + "/v1beta", "credential": {"env": KEY_ENV}}
        model = {
            "id": f"{self.provider_id}::{self.model}",
            "capabilities": list(caps or ["chat", "stream", "tools", "structured_output", "vision", "audio_in", "video_in",
                                          "documents", "reasoning"]),
            "limits": limits or {"context_window": 1048576, "max_output_tokens": 65536},
            "pricing": {"input_per_mtok": 0.30, "output_per_mtok": 2.50, "cached_input_per_mtok": 0.075},
        }
        if options:
            model["options"] = options
        return provider, [model]

    def received(self, req: FakeRequest) -> dict[str, Any]:
        """The provider-neutral view of a recorded request (see tests/conformance/scenarios.py)."""
        body = req.json()
        parts: list[str] = []
        texts: list[str] = []
        for c in body.get("contents") or []:
            role = "assistant" if c.get("role") == "model" else "user"
            for p in c.get("parts") or []:
                if "text" in p:
                    parts.append(f"{role}:text")
                    texts.append(p["text"])
                elif "functionCall" in p:
                    parts.append("assistant:tool_call")
                elif "functionResponse" in p:
                    parts.append("tool:tool_result")
                else:
                    media = p.get("inlineData") or p.get("fileData") or {}
                    mime = media.get("mimeType") or ""
                    kind = "document" if mime == "application/pdf" else mime.partition("/")[0]
                    parts.append(f"{role}:{kind}")
        system = body.get("systemInstruction")
        fcc = (body.get("toolConfig") or {}).get("functionCallingConfig")
        choice = None
        if fcc:
            allowed = fcc.get("allowedFunctionNames") or []
            choice = allowed[0] if fcc.get("mode") == "ANY" and len(allowed) == 1 else {"AUTO": "auto", "NONE": "none", "ANY": "required"}.get(fcc.get("mode"))
        gc = body.get("generationConfig") or {}
        return {
            "system": "".join(p.get("text", "") for p in system["parts"]) if system else None,
            "parts": parts,
            "texts": texts,
            "tools": [d["name"] for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []],
            "tool_choice": choice,
            "schema": "responseSchema" in gc or "responseJsonSchema" in gc,
            "stream": req.path.endswith(":streamGenerateContent"),
            "max_tokens": gc.get("maxOutputTokens"),
            "stop": gc.get("stopSequences"),
            "temperature": gc.get("temperature"),
        }

    # ---------------------------------------------------------------- request checks
    def check(self, req: FakeRequest) -> str | None:
        """The first thing the Gemini API would reject in this request, or None ("auth" for the key)."""
        if req.headers.get("x-goog-api-key") != API_KEY:
            return "auth"
        if "authorization" in req.headers:
            return "unexpected Authorization header (the Gemini API key goes in x-goog-api-key)"
        model, _, method = req.path.rpartition("/")[2].partition(":")
        if model != self.model:
            return f"models/{model} is not found for API version v1beta, or is not supported for {method}."
        if method == "streamGenerateContent" and "alt=sse" not in req.query.split("&"):
            return "this fake streams only with alt=sse (the adapter must ask for SSE)"
        if method == "generateContent" and req.query:
            return f"unexpected query string {req.query!r} on generateContent"
        if not (req.headers.get("content-type") or "").startswith("application/json"):
            return "Invalid JSON payload received: content type must be application/json"
        try:
            body = req.json()
        except ValueError:
            return "Invalid JSON payload received. Unexpected token."
        if not isinstance(body, dict):
            return "Invalid JSON payload received. Expected an object."
        unknown = set(body) - TOP_LEVEL
        if unknown:
            return f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}": Cannot find field.'
        if "systemInstruction" in body:
            si = body["systemInstruction"]
            if not isinstance(si, dict) or set(si) - {"parts", "role"} or not si.get("parts"):
                return "systemInstruction: a Content with parts is required"
            for j, p in enumerate(si["parts"]):
                if not isinstance(p, dict) or set(p) != {"text"} or not isinstance(p["text"], str):
                    return f"systemInstruction.parts[{j}]: only text parts are supported"
        declared = self._check_tools(body)
        if isinstance(declared, str):
            return declared
        bad = self._check_generation_config(body.get("generationConfig"))
        if bad:
            return bad
        return self._check_contents(body.get("contents"), declared)

    def _check_tools(self, body: dict[str, Any]) -> set[str] | str:
        names: set[str] = set()
        tools = body.get("tools")
        if tools is not None:
            if not isinstance(tools, list):
                return "tools: must be a list"
            for i, tool in enumerate(tools):
                if not isinstance(tool, dict):
                    return f"tools[{i}]: must be an object"
                unknown = set(tool) - {"functionDeclarations", "googleSearch", "codeExecution", "urlContext"}
                if unknown:
                    return f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at \'tools[{i}]\': Cannot find field.'
                for j, decl in enumerate(tool.get("functionDeclarations") or []):
                    where = f"tools[{i}].function_declarations[{j}]"
                    if not isinstance(decl, dict):
                        return f"{where}: must be an object"
                    unknown = set(decl) - {"name", "description", "parameters", "parametersJsonSchema", "response", "responseJsonSchema", "behavior"}
                    if unknown:
                        return f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at \'{where}\': Cannot find field.'
                    if not isinstance(decl.get("name"), str) or not FUNCTION_NAME.match(decl["name"]):
                        return f"* GenerateContentRequest.{where}.name: Invalid function name."
                    if "parameters" in decl and "parametersJsonSchema" in decl:
                        return f"{where}: parameters and parametersJsonSchema are mutually exclusive"
                    if "parameters" in decl:
                        params = decl["parameters"]
                        bad = check_schema(params, f"{where}.parameters")
                        if bad:
                            return bad
                        if params.get("type") == "OBJECT" and not params.get("properties"):
                            return f"* GenerateContentRequest.{where}.parameters.properties: should be non-empty for OBJECT type"
                    names.add(decl["name"])
        tc = body.get("toolConfig")
        if tc is not None:
            if not names:
                return "toolConfig: function calling config is set but no function declarations are given"
            fcc = tc.get("functionCallingConfig") if isinstance(tc, dict) else None
            if not isinstance(fcc, dict) or set(tc) - {"functionCallingConfig", "retrievalConfig"}:
                return "toolConfig: functionCallingConfig is required"
            if fcc.get("mode") not in ("AUTO", "ANY", "NONE", "VALIDATED"):
                return f"toolConfig.functionCallingConfig.mode: Invalid value {fcc.get('mode')!r}"
            allowed = fcc.get("allowedFunctionNames")
            if allowed is not None:
                if fcc["mode"] not in ("ANY", "VALIDATED"):
                    return "toolConfig.functionCallingConfig.allowedFunctionNames: only allowed with mode ANY"
                if not isinstance(allowed, list) or any(n not in names for n in allowed):
                    return "toolConfig.functionCallingConfig.allowedFunctionNames: every name must be a declared function"
        return names

    @staticmethod
    def _check_generation_config(gc: Any) -> str | None:
        if gc is None:
            return None
        if not isinstance(gc, dict):
            return "generationConfig: must be an object"
        unknown = set(gc) - GENERATION_CONFIG
        if unknown:
            return f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at \'generation_config\': Cannot find field.'
        stops = gc.get("stopSequences")
        if stops is not None and (not isinstance(stops, list) or len(stops) > 5 or not all(isinstance(x, str) for x in stops)):
            return "generationConfig.stopSequences: at most 5 strings"
        t = gc.get("temperature")
        if t is not None and not (isinstance(t, (int, float)) and 0 <= t <= 2):
            return "generationConfig.temperature: must be in [0.0, 2.0]"
        p = gc.get("topP")
        if p is not None and not (isinstance(p, (int, float)) and 0 <= p <= 1):
            return "generationConfig.topP: must be in [0.0, 1.0]"
        mo = gc.get("maxOutputTokens")
        if mo is not None and (not isinstance(mo, int) or isinstance(mo, bool) or mo < 1):
            return "generationConfig.maxOutputTokens: must be a positive integer"
        if "responseSchema" in gc and "responseJsonSchema" in gc:
            return "generationConfig: responseSchema and responseJsonSchema are mutually exclusive"
        if ("responseSchema" in gc or "responseJsonSchema" in gc) and gc.get("responseMimeType") not in ("application/json", "text/x.enum"):
            return "generationConfig.responseMimeType: a response schema requires responseMimeType application/json or text/x.enum"
        if "responseSchema" in gc:
            return check_schema(gc["responseSchema"], "generation_config.response_schema")
        return None

    @staticmethod
    def _check_contents(contents: Any, declared: set[str]) -> str | None:
        if not isinstance(contents, list) or not contents:
            return "* GenerateContentRequest.contents: contents is not specified"
        pending_calls = 0
        for i, c in enumerate(contents):
            where = f"contents[{i}]"
            if not isinstance(c, dict) or set(c) - {"role", "parts"}:
                return f"{where}: a Content has only role and parts"
            role = c.get("role")
            if role not in ("user", "model"):
                return f"{where}.role: Please use a valid role: user, model."
            parts = c.get("parts")
            if not isinstance(parts, list) or not parts:
                return f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty."
            calls = responses = 0
            for j, p in enumerate(parts):
                pw = f"{where}.parts[{j}]"
                if not isinstance(p, dict):
                    return f"{pw}: must be an object"
                unknown = set(p) - PART_DATA - PART_META
                if unknown:
                    return f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at \'{pw}\': Cannot find field.'
                data = [k for k in p if k in PART_DATA]
                if len(data) != 1:
                    return f"{pw}: a part holds exactly one of text, inlineData, fileData, functionCall, functionResponse"
                kind = data[0]
                value = p[kind]
                if kind == "text":
                    if not isinstance(value, str):
                        return f"{pw}.text: must be a string"
                elif kind == "inlineData":
                    if not isinstance(value, dict) or set(value) - {"mimeType", "data"} or not value.get("mimeType"):
                        return f"{pw}.inline_data: mimeType and data are required"
                    try:
                        base64.b64decode(value.get("data") or "", validate=True)
                    except (binascii.Error, ValueError):
                        return f"{pw}.inline_data.data: Invalid value (bytes must be base64)"
                elif kind == "fileData":
                    if not isinstance(value, dict) or set(value) - {"mimeType", "fileUri"} or not value.get("fileUri"):
                        return f"{pw}.file_data: fileUri is required"
                elif kind == "functionCall":
                    if role != "model":
                        return f"{pw}: functionCall parts must come from the model"
                    if not isinstance(value, dict) or not value.get("name") or not isinstance(value.get("args", {}), dict):
                        return f"{pw}.function_call: name and an object args are required"
                    calls += 1
                elif kind == "functionResponse":
                    if role != "user":
                        return f"{pw}: functionResponse parts must come from the user"
                    if not isinstance(value, dict) or not value.get("name") or not isinstance(value.get("response"), dict):
                        return f"{pw}.function_response: name and an object response are required"
                    responses += 1
            if pending_calls and responses != pending_calls:
                return ("Please ensure that the number of function response parts is equal to the number of function call "
                        "parts of the function call turn.")
            if responses and not pending_calls:
                return f"{where}: functionResponse parts must answer the function calls of the previous model turn"
            pending_calls = calls
        return None

    # ---------------------------------------------------------------- Files API
    def uploads(self) -> list[FakeRequest]:
        """The recorded upload requests (start and upload/finalize)."""
        return [r for r in self.requests if r.path == "/upload/v1beta/files"]

    def _files_bad(self, message: str, status: int = 400, gstatus: str = "INVALID_ARGUMENT") -> Reply:
        self.violations.append(message)
        return Reply(status, json=error_body(status, gstatus, message))

    def _upload(self, req: FakeRequest) -> Reply:
        command = req.headers.get("x-goog-upload-command")
        params = dict(p.partition("=")[::2] for p in req.query.split("&") if p)
        if command == "start":
            if req.headers.get("x-goog-upload-protocol") != "resumable":
                return self._files_bad("upload start: X-Goog-Upload-Protocol must be resumable")
            if req.headers.get("x-goog-api-key") != API_KEY:
                self.violations.append("upload start: x-goog-api-key missing or wrong")
                return self.error_reply("auth", self._script)
            if params:
                return self._files_bad(f"upload start: unexpected query {req.query!r}")
            length = req.headers.get("x-goog-upload-header-content-length", "")
            mime = req.headers.get("x-goog-upload-header-content-type", "")
            if not length.isdigit() or int(length) < 1:
                return self._files_bad("upload start: X-Goog-Upload-Header-Content-Length must be the file's size")
            if "/" not in mime:
                return self._files_bad("upload start: X-Goog-Upload-Header-Content-Type must be the file's MIME type")
            if not (req.headers.get("content-type") or "").startswith("application/json"):
                return self._files_bad("upload start: the metadata body must be application/json")
            try:
                body = req.json()
            except ValueError:
                return self._files_bad("Invalid JSON payload received. Unexpected token.")
            meta = body.get("file") if isinstance(body, dict) else None
            if not isinstance(body, dict) or set(body) - {"file"} or not isinstance(meta, dict):
                return self._files_bad('Invalid JSON payload received. Expected {"file": {...}}.')
            unknown = set(meta) - {"display_name", "displayName", "name", "mimeType", "mime_type"}
            if unknown:
                return self._files_bad(f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at \'file\': Cannot find field.')
            upload_id = secrets.token_urlsafe(24)
            with self._files_lock:
                self._sessions[upload_id] = {"length": int(length), "mime": mime,
                                             "display": meta.get("display_name") or meta.get("displayName") or ""}
            base = self.url.replace("127.0.0.1", self.upload_host) if self.upload_host else self.url
            return Reply(200, body=b"", headers={
                "X-Goog-Upload-URL": f"{base}/upload/v1beta/files?upload_id={upload_id}&upload_protocol=resumable",
                "X-Goog-Upload-Status": "active", "X-Goog-Upload-Chunk-Granularity": "8388608"})
        if command == "upload, finalize" and self.finalize_faults:
            return self.finalize_faults.pop(0)
        if command == "upload, finalize":
            with self._files_lock:
                session = self._sessions.pop(params.get("upload_id", ""), None)
            if session is None or params.get("upload_protocol") != "resumable":
                return self._files_bad("upload: unknown or finished upload session", 404, "NOT_FOUND")
            if req.headers.get("x-goog-upload-offset") != "0":
                return self._files_bad("upload: X-Goog-Upload-Offset must be 0 for a one-shot upload")
            if len(req.body) != session["length"]:
                return self._files_bad(f"upload: {len(req.body)} bytes sent, {session['length']} announced")
            file_id = secrets.token_hex(6)
            now = "2026-01-01T00:00:00.000000Z"
            video = session["mime"].startswith("video/")
            resource: dict[str, Any] = {
                "name": f"files/{file_id}", "displayName": session["display"], "mimeType": session["mime"],
                "sizeBytes": str(len(req.body)), "createTime": now, "updateTime": now, "expirationTime": "2026-01-03T00:00:00.000000Z",
                "sha256Hash": base64.b64encode(hashlib.sha256(req.body).hexdigest().encode()).decode(),
                "uri": f"{self.url}/v1beta/files/{file_id}", "state": "PROCESSING" if video else "ACTIVE", "source": "UPLOADED",
            }
            with self._files_lock:
                self.files[file_id] = {**resource, "_polls": 0, "_data": req.body}
            return Reply(200, json={"file": resource}, headers={"X-Goog-Upload-Status": "final"})
        return self._files_bad(f"upload: unexpected X-Goog-Upload-Command {command!r}")

    def _public(self, f: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in f.items() if not k.startswith("_")}

    def _file_get(self, req: FakeRequest) -> Reply:
        if req.headers.get("x-goog-api-key") != API_KEY:
            self.violations.append("files.get: x-goog-api-key missing or wrong")
            return self.error_reply("auth", self._script)
        file_id = req.path.rsplit("/", 1)[-1]
        with self._files_lock:
            f = self.files.get(file_id)
            if f is None:
                return Reply(403, json=error_body(403, "PERMISSION_DENIED",
                                                  f"You do not have permission to access the File {file_id} or it may not exist."))
            f["_polls"] += 1
            if f["state"] == "PROCESSING" and f["_polls"] >= self.file_processing_polls:
                f["state"] = self.file_outcome
                if self.file_outcome == "FAILED":
                    f["error"] = {"code": 3, "message": "The video could not be decoded."}
                else:
                    f["videoMetadata"] = {"videoDuration": "1s"}
            return Reply(200, json=self._public(f))

    def _file_delete(self, req: FakeRequest) -> Reply:
        if req.headers.get("x-goog-api-key") != API_KEY:
            self.violations.append("files.delete: x-goog-api-key missing or wrong")
            return self.error_reply("auth", self._script)
        file_id = req.path.rsplit("/", 1)[-1]
        with self._files_lock:
            if self.files.pop(file_id, None) is None:
                return Reply(403, json=error_body(403, "PERMISSION_DENIED",
                                                  f"You do not have permission to access the File {file_id} or it may not exist."))
            self.deleted_files.append(f"files/{file_id}")
        return Reply(200, json={})

    def _check_file_refs(self, body: Any) -> Reply | None:
        """fileData naming one of this fake's files: it must exist, be ACTIVE and match its mimeType."""
        prefix = f"{self.url}/v1beta/files/"
        for c in (body.get("contents") or []) if isinstance(body, dict) else ():
            for p in c.get("parts") or ():
                fd = p.get("fileData") if isinstance(p, dict) else None
                if not isinstance(fd, dict) or not str(fd.get("fileUri", "")).startswith(prefix):
                    continue
                file_id = fd["fileUri"][len(prefix):]
                f = self.files.get(file_id)
                if f is None:
                    return self._files_bad(f"You do not have permission to access the File {file_id} or it may not exist.",
                                           403, "PERMISSION_DENIED")
                if f["state"] != "ACTIVE":
                    return self._files_bad(f"The File {file_id} is not in an ACTIVE state and usage is not allowed.",
                                           400, "FAILED_PRECONDITION")
                if fd.get("mimeType") and fd["mimeType"] != f["mimeType"]:
                    return self._files_bad(f"fileData.mimeType {fd['mimeType']} does not match the File's {f['mimeType']}")
        return None

    # ---------------------------------------------------------------- answers
    def _generate(self, req: FakeRequest) -> Reply:
        s = self._script
        problem = self.check(req)
        if problem == "auth":
            self.violations.append("x-goog-api-key missing or wrong")
            return self.error_reply("auth", s)
        if problem:
            self.violations.append(problem)
            return Reply(400, json=error_body(400, "INVALID_ARGUMENT", problem))
        bad_ref = self._check_file_refs(req.json())
        if bad_ref is not None:
            return bad_ref
        if s.error:
            return self.error_reply(s.error, s)
        streaming = req.path.endswith(":streamGenerateContent")
        if streaming:
            return Reply(200, chunks=self._chunks(s), headers={"Content-Type": "text/event-stream"}, delay_s=s.delay_s,
                         chunk_delay_s=s.chunk_delay_s, stall_after=s.stall_after_chunks, cut_after=s.cut_after_chunks)
        if self.prompt_blocked:
            return Reply(200, json=self._blocked(s), delay_s=s.delay_s)
        candidate: dict[str, Any] = {"content": {"parts": self._parts(s), "role": "model"}, "finishReason": FINISH[s.finish], "index": 0}
        if s.finish == "content_filter":
            candidate["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]
            if not candidate["content"]["parts"]:
                del candidate["content"]
        return Reply(200, json={"candidates": [candidate], "usageMetadata": self.usage(s), "modelVersion": self.model,
                                "responseId": "fake-response-0001"}, delay_s=s.delay_s)

    def error_reply(self, kind: str, s: Script) -> Reply:
        status, gstatus, message, details = ERRORS[kind]
        details = list(details)
        if s.retry_after is not None:
            details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{s.retry_after}s"})
        return Reply(status, json=error_body(status, gstatus, message, details), delay_s=s.delay_s)

    @staticmethod
    def usage(s: Script, *, final: bool = True) -> dict[str, Any]:
        candidates = max(0, s.output_tokens - s.reasoning_tokens)
        um: dict[str, Any] = {"promptTokenCount": s.input_tokens}
        if final:
            um["candidatesTokenCount"] = candidates
        um["totalTokenCount"] = s.input_tokens + (s.output_tokens if final else 0)
        if s.cached_tokens:
            um["cachedContentTokenCount"] = s.cached_tokens
        if s.reasoning_tokens and final:
            um["thoughtsTokenCount"] = s.reasoning_tokens
        um["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": s.input_tokens}]
        return um

    def _call_part(self, tc: dict[str, Any], first: bool) -> dict[str, Any]:
        fc: dict[str, Any] = {"name": tc["name"], "args": tc.get("arguments") or {}}
        if self.send_call_ids and tc.get("id"):
            fc["id"] = tc["id"]
        part: dict[str, Any] = {"functionCall": fc}
        if first and self.thought_signature:
            part["thoughtSignature"] = self.thought_signature
        return part

    def _parts(self, s: Script) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = []
        if self.thought_text:
            parts.append({"text": self.thought_text, "thought": True})
        if s.text:
            parts.append({"text": s.text})
        parts.extend(self._call_part(tc, i == 0) for i, tc in enumerate(s.tool_calls))
        return parts

    def _blocked(self, s: Script) -> dict[str, Any]:
        return {
            "promptFeedback": {"blockReason": self.prompt_blocked, "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]},
            "usageMetadata": {"promptTokenCount": s.input_tokens, "totalTokenCount": s.input_tokens},
            "modelVersion": self.model, "responseId": "fake-response-0001",
        }

    def _chunks(self, s: Script) -> list[bytes]:
        if self.prompt_blocked:
            return [sse_line(self._blocked(s))]
        bodies: list[dict[str, Any]] = []
        if self.thought_text:
            bodies.append({"parts": [{"text": self.thought_text, "thought": True}]})
        for piece in _split_words(s.text or ""):
            bodies.append({"parts": [{"text": piece}]})
        if s.tool_calls:
            bodies.append({"parts": [self._call_part(tc, i == 0) for i, tc in enumerate(s.tool_calls)]})
        if not bodies:
            bodies.append({"parts": [{"text": ""}]})
        out: list[bytes] = []
        for k, content in enumerate(bodies):
            last = k == len(bodies) - 1
            if self.stream_error and k == self.stream_error_after:
                status, gstatus, message, details = ERRORS[self.stream_error]
                return out + [sse_line(error_body(status, gstatus, message, details))]
            cand: dict[str, Any] = {"content": {**content, "role": "model"}, "index": 0}
            if last:
                cand["finishReason"] = FINISH[s.finish]
                if s.finish == "content_filter":
                    cand["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]
            out.append(sse_line({"candidates": [cand], "usageMetadata": self.usage(s, final=last),
                                 "modelVersion": self.model, "responseId": "fake-response-0001"}))
        if self.stream_error:  # fewer chunks than `stream_error_after`: the error replaces the final chunk
            status, gstatus, message, details = ERRORS[self.stream_error]
            out[-1] = sse_line(error_body(status, gstatus, message, details))
        return out


def check_schema(schema: Any, where: str) -> str | None:
    """What the API rejects in a `Schema` (the OpenAPI 3.0 subset): unknown fields, lower-case or
    unknown types, non-string enum values."""
    if not isinstance(schema, dict):
        return f"{where}: must be an object"
    unknown = set(schema) - SCHEMA_FIELDS
    if unknown:
        return f'Invalid JSON payload received. Unknown name "{sorted(unknown)[0]}" at \'{where}\': Cannot find field.'
    if "type" in schema and schema["type"] not in SCHEMA_TYPES:
        return f"Invalid value at '{where}.type' (type.googleapis.com/google.ai.generativelanguage.v1beta.Type), \"{schema['type']}\""
    if "enum" in schema and not (isinstance(schema["enum"], list) and all(isinstance(v, str) for v in schema["enum"])):
        return f"{where}.enum: Invalid value (enum values are strings)"
    for name, sub in (schema.get("properties") or {}).items():
        bad = check_schema(sub, f"{where}.properties[{name}].value")
        if bad:
            return bad
    if "items" in schema:
        bad = check_schema(schema["items"], f"{where}.items")
        if bad:
            return bad
    for i, sub in enumerate(schema.get("anyOf") or []):
        bad = check_schema(sub, f"{where}.any_of[{i}]")
        if bad:
            return bad
    return None


def _split_words(text: str) -> list[str]:
    pieces: list[str] = []
    current = ""
    for ch in text:
        current += ch
        if ch == " ":
            pieces.append(current)
            current = ""
    if current:
        pieces.append(current)
    return pieces
