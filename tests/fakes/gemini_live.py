"""A fake Gemini Live API on loopback: a `websockets` server speaking `BidiGenerateContent` at
`/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent` the way
Google's Live API does, well enough for the gateway's realtime upstream.

Per connection (`server.connections[i]`) it records the path, the headers and every client
message, and checks them as the API does: the key (`x-goog-api-key` header or `key` query
parameter), a first message that is `{"setup": …}` with a `models/…` model and only known
fields, `clientContent` turns with roles `user` / `model`, `realtimeInput.audio` blobs with a
mimeType and base64 data. A violation closes the socket with 1007 and the API's kind of reason
(a bad key with 1008), and is listed in `violations`.

It answers `setup` with `{"setupComplete": {}}`, then, on `realtimeInput.audioStreamEnd` (or
`activityEnd` when automatic activity detection is disabled), streams a scripted answer, each
server message a JSON binary frame as the API sends them: `serverContent.inputTranscription`
pieces (`heard`, or "fake heard N bytes"), then per delta either `modelTurn.parts[].inlineData`
(PCM16 24 kHz tone, `audio/pcm;rate=24000`) followed by `outputTranscription` (AUDIO sessions) or
`modelTurn.parts[].text` (TEXT sessions), then `generationComplete`, then `turnComplete` carrying
`usageMetadata` (by modality, derived from what it received).

Faults (attributes, set before the turn): `reject_status` (refuse the handshake),
`no_setup_complete` (never confirm the setup), `delay_s` (before the answer), `delta_delay_s`
(between deltas), `close_after` (close with `close_code` / `close_reason` after N deltas; the
reason may echo the key, as a careless server might), `error_after` (send an `{"error": …}`
message after N deltas), `interrupt_after` (send `interrupted`, then `turnComplete`, after N
deltas), `go_away` (send `goAway` before answering), `no_usage`. A client that closes mid-answer
stops it (`connection.stopped_early`).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

API_KEY = "fake-gemini-live-key-7f3a9c21"  # not shaped like a Google key: only the gateway's own scrubbing hides it
KEY_ENV = "FAKE_GEMINI_LIVE_KEY"
PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"

SETUP_FIELDS = frozenset({"model", "generationConfig", "systemInstruction", "tools", "realtimeInputConfig",
                          "sessionResumption", "contextWindowCompression", "inputAudioTranscription",
                          "outputAudioTranscription", "proactivity", "historyConfig"})
GENERATION_FIELDS = frozenset({"candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "presencePenalty",
                               "frequencyPenalty", "responseModalities", "speechConfig", "mediaResolution",
                               "thinkingConfig", "enableAffectiveDialog"})
CLIENT_MESSAGES = frozenset({"setup", "clientContent", "realtimeInput", "toolResponse"})


def tone_pcm16(seconds: float, rate: int = 24000, freq: float = 330.0) -> bytes:
    n = int(seconds * rate)
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / rate))) for i in range(n))


@dataclass
class LiveConnection:
    path: str
    headers: dict[str, str]
    messages: list[dict[str, Any]] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray)
    mime_types: list[str] = field(default_factory=list)
    deltas_sent: int = 0
    answered: bool = False
    stopped_early: bool = False

    def of(self, kind: str) -> list[dict[str, Any]]:
        """The bodies of the client messages of one kind (`setup`, `clientContent`, `realtimeInput`)."""
        return [m[kind] for m in self.messages if kind in m]

    @property
    def setup(self) -> dict[str, Any] | None:
        found = self.of("setup")
        return found[0] if found else None

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.path).query)

    def realtime(self, key: str) -> list[Any]:
        return [r[key] for r in self.of("realtimeInput") if key in r]


class _Violation(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class FakeGeminiLive:
    def __init__(self, *, api_key: str = API_KEY, reply: str = "Hello from the fake Gemini Live model.",
                 audio_seconds: float = 0.5, deltas: int = 5, heard: str | None = None) -> None:
        self.api_key = api_key
        self.reply = reply
        self.audio_seconds = audio_seconds
        self.deltas = deltas
        self.heard = heard
        self.connections: list[LiveConnection] = []
        self.violations: list[str] = []
        self.reject_status: int | None = None
        self.no_setup_complete = False
        self.delay_s = 0.0
        self.delta_delay_s = 0.0
        self.close_after: int | None = None
        self.close_code = 1011
        self.close_reason = "Internal error encountered."
        self.error_after: int | None = None
        self.interrupt_after: int | None = None
        self.go_away = False
        self.no_usage = False
        self.turns = 0
        self._server: Any = None
        self._tones: dict[float, bytes] = {}

    # ------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return self._server.socket.getsockname()[1]

    @property
    def base_url(self) -> str:
        """What the catalog's `gemini` provider gets as `base_url` (the HTTP API's form)."""
        return f"http://127.0.0.1:{self.port}/v1beta"

    def start(self) -> "FakeGeminiLive":
        from websockets.sync.server import serve

        self._server = serve(self._handle, "127.0.0.1", 0, process_request=self._check, compression=None,
                             max_size=32 * 1024 * 1024)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-gemini-live").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def __enter__(self) -> "FakeGeminiLive":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------ protocol

    def _check(self, conn: Any, request: Any) -> Any:
        if urlsplit(request.path).path != PATH:
            return conn.respond(404, "Not Found\n")
        if self.reject_status is not None:
            return conn.respond(self.reject_status, json.dumps({"error": {"code": self.reject_status,
                                                                          "message": "rejected by the fake",
                                                                          "status": "UNAVAILABLE"}}))
        return None

    def _key_ok(self, record: LiveConnection) -> bool:
        return record.headers.get("x-goog-api-key") == self.api_key or record.query.get("key") == [self.api_key]

    @staticmethod
    def _send(ws: Any, message: dict[str, Any]) -> None:
        ws.send(json.dumps(message).encode("utf-8"))  # the Live API sends JSON in binary frames

    def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        record = LiveConnection(ws.request.path, {k.lower(): v for k, v in ws.request.headers.raw_items()})
        self.connections.append(record)
        answering = False
        try:
            first = self._recv(ws, record)
            setup = self._check_setup(first)
            if not self._key_ok(record):
                raise _Violation(1008, "API key not valid. Please pass a valid API key.")
            if self.no_setup_complete:
                while True:  # never confirm: just record what comes until the client gives up
                    self._recv(ws, record)
            self._send(ws, {"setupComplete": {}})
            manual = bool(((setup.get("realtimeInputConfig") or {}).get("automaticActivityDetection") or {}).get("disabled"))
            history_chars = 0
            while True:
                message = self._recv(ws, record)
                kind = next(iter(message))
                body = message[kind]
                if kind == "setup":
                    raise _Violation(1007, "setup must be the first message and only the first.")
                if kind == "clientContent":
                    history_chars += self._check_content(body)
                elif kind == "realtimeInput":
                    end = self._take_input(body, record, manual)
                    if end:
                        answering = True
                        if not self._answer(ws, record, setup, history_chars):
                            return
                        answering = False
        except _Violation as v:
            self.violations.append(v.reason)
            try:
                ws.close(v.code, v.reason)
            except ConnectionClosed:
                pass
        except ConnectionClosed:
            if answering:
                record.stopped_early = True

    def _recv(self, ws: Any, record: LiveConnection, timeout: float | None = None) -> dict[str, Any]:
        raw = ws.recv(timeout=timeout)
        try:
            message = json.loads(raw)
        except ValueError:
            raise _Violation(1007, "Invalid JSON payload received.") from None
        if not isinstance(message, dict) or len(message) != 1 or next(iter(message)) not in CLIENT_MESSAGES:
            name = next(iter(message), "") if isinstance(message, dict) else ""
            raise _Violation(1007, f"Invalid JSON payload received. Unknown name \"{name}\": Cannot find field.")
        record.messages.append(message)
        return message

    @staticmethod
    def _check_setup(message: dict[str, Any]) -> dict[str, Any]:
        setup = message.get("setup")
        if not isinstance(setup, dict):
            raise _Violation(1007, "The first message must be a setup message.")
        unknown = set(setup) - SETUP_FIELDS
        if unknown:
            raise _Violation(1007, f"Invalid JSON payload received. Unknown name \"{sorted(unknown)[0]}\" at 'setup': Cannot find field.")
        if not str(setup.get("model") or "").startswith("models/"):
            raise _Violation(1008, "models/ prefix required: model is not found or not supported for bidiGenerateContent.")
        gen = setup.get("generationConfig") or {}
        unknown = set(gen) - GENERATION_FIELDS
        if unknown:
            raise _Violation(1007, f"Invalid JSON payload received. Unknown name \"{sorted(unknown)[0]}\" at 'setup.generation_config'.")
        modalities = gen.get("responseModalities") or ["AUDIO"]
        if modalities not in (["AUDIO"], ["TEXT"]):
            raise _Violation(1007, "Request contains an invalid argument: one response modality, AUDIO or TEXT.")
        for part in (setup.get("systemInstruction") or {}).get("parts") or []:
            if set(part) != {"text"}:
                raise _Violation(1007, "systemInstruction parts must be text.")
        return setup

    @staticmethod
    def _check_content(body: Any) -> int:
        if not isinstance(body, dict) or not isinstance(body.get("turnComplete", False), bool):
            raise _Violation(1007, "Invalid clientContent.")
        chars = 0
        for turn in body.get("turns") or []:
            if turn.get("role") not in ("user", "model"):
                raise _Violation(1007, f"Please use a valid role: user, model (got {turn.get('role')!r}).")
            for part in turn.get("parts") or []:
                if not isinstance(part.get("text"), str):
                    raise _Violation(1007, "clientContent parts must have text here.")
                chars += len(part["text"])
        return chars

    @staticmethod
    def _take_input(body: Any, record: LiveConnection, manual: bool) -> bool:
        """Record a realtimeInput; True when it ends the user's audio."""
        if not isinstance(body, dict) or len(body) != 1:
            raise _Violation(1007, "realtimeInput must have exactly one of audio, video, text, activityStart, activityEnd, audioStreamEnd.")
        if "audio" in body:
            blob = body["audio"]
            mime = blob.get("mimeType") if isinstance(blob, dict) else None
            if not isinstance(mime, str) or not mime.startswith("audio/pcm"):
                raise _Violation(1007, "realtimeInput.audio needs a mimeType audio/pcm;rate=….")
            try:
                record.audio += base64.b64decode(blob.get("data") or "", validate=True)
            except (binascii.Error, ValueError):
                raise _Violation(1007, "Invalid value at 'realtime_input.audio.data' (TYPE_BYTES), Base64 decoding failed.") from None
            record.mime_types.append(mime)
            return False
        if "audioStreamEnd" in body:
            if manual:
                raise _Violation(1007, "audioStreamEnd is only for automatic activity detection.")
            return body["audioStreamEnd"] is True
        if "activityStart" in body or "activityEnd" in body:
            if not manual:
                raise _Violation(1007, "Explicit activity control is not supported when automatic activity detection is enabled.")
            return "activityEnd" in body
        raise _Violation(1007, f"Unsupported realtimeInput field {next(iter(body))!r}.")

    def _wait(self, ws: Any, record: LiveConnection, seconds: float) -> None:
        """Sleep `seconds`, recording what the client sends meanwhile (a closed socket raises)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                self._recv(ws, record, timeout=left)
            except TimeoutError:
                return

    def _answer(self, ws: Any, record: LiveConnection, setup: dict[str, Any], history_chars: int) -> bool:
        self.turns += 1
        record.answered = True
        audio_bytes = len(record.audio)
        text_mode = (setup.get("generationConfig") or {}).get("responseModalities") == ["TEXT"]
        if self.go_away:
            self._send(ws, {"goAway": {"timeLeft": "1s"}})
        if self.delay_s:
            self._wait(ws, record, self.delay_s)
        if setup.get("inputAudioTranscription") is not None:
            heard = self.heard or f"fake heard {audio_bytes} bytes"
            cut = len(heard) // 2
            for piece in (heard[:cut], heard[cut:]):
                self._send(ws, {"serverContent": {"inputTranscription": {"text": piece}}})
        words = self.reply.split(" ")
        n = max(1, self.deltas)
        pcm = self._tones.setdefault(self.audio_seconds, tone_pcm16(self.audio_seconds))
        step = -(-len(pcm) // n)
        spoken = []
        for i in range(n):
            if self.close_after is not None and i >= self.close_after:
                reason = self.close_reason.replace("{key}", self.api_key)
                ws.close(self.close_code, reason)
                return False
            if self.error_after is not None and i >= self.error_after:
                self._send(ws, {"error": {"code": 500, "status": "INTERNAL",
                                          "message": f"The fake failed mid-turn (request key={self.api_key})."}})
                return True
            if self.interrupt_after is not None and i >= self.interrupt_after:
                self._send(ws, {"serverContent": {"interrupted": True}})
                break
            piece = " ".join(words[i * len(words) // n:(i + 1) * len(words) // n])
            if piece:
                piece = (" " if spoken else "") + piece
                spoken.append(piece)
            if text_mode:
                if piece:
                    self._send(ws, {"serverContent": {"modelTurn": {"parts": [{"text": piece}]}}})
            else:
                chunk = base64.b64encode(pcm[i * step:(i + 1) * step]).decode()
                self._send(ws, {"serverContent": {"modelTurn": {"parts": [
                    {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": chunk}}]}}})
                if piece and setup.get("outputAudioTranscription") is not None:
                    self._send(ws, {"serverContent": {"outputTranscription": {"text": piece}}})
            record.deltas_sent += 1
            if self.delta_delay_s:
                self._wait(ws, record, self.delta_delay_s)
        self._send(ws, {"serverContent": {"generationComplete": True}})
        done: dict[str, Any] = {"serverContent": {"turnComplete": True}}
        if not self.no_usage:
            instructions = sum(len(p.get("text") or "") for p in (setup.get("systemInstruction") or {}).get("parts") or [])
            in_text = (instructions + history_chars) // 4 + 10
            in_audio = audio_bytes // 1000  # 32 tokens a second of 16 kHz PCM16
            out_text = len("".join(spoken)) // 4
            out_audio = 0 if text_mode else record.deltas_sent * 10
            done["usageMetadata"] = {
                "promptTokenCount": in_text + in_audio,
                "responseTokenCount": out_text if text_mode else out_audio,
                "totalTokenCount": in_text + in_audio + (out_text if text_mode else out_audio),
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": in_text}, {"modality": "AUDIO", "tokenCount": in_audio}],
                "responseTokensDetails": [{"modality": "TEXT", "tokenCount": out_text}] if text_mode
                else [{"modality": "AUDIO", "tokenCount": out_audio}],
            }
        self._send(ws, done)
        return True
