"""A fake OpenAI Realtime server (beta protocol) on loopback: a `websockets` server speaking
`wss://api.openai.com/v1/realtime?model=…` well enough for the gateway's realtime upstream.

Per connection it records every client event (`server.connections[i].events`), answers
`session.update` with `session.updated`, and on `response.create` streams a scripted answer:
`response.created`, `conversation.item.input_audio_transcription.completed` (when transcription
is on), interleaved `response.audio_transcript.delta` / `response.audio.delta` (PCM16 24 kHz
tone, or G.711 bytes), `response.audio.done`, `response.audio_transcript.done`, `response.done`
with usage derived from what it received. `response.cancel` stops the answer
(`response.done` with status `cancelled`).

Faults (attributes, set before the turn): `reject_status` (refuse the handshake),
`drop_after` (close the socket abruptly after N deltas), `error_after` (send an `error` event
after N deltas), `fail_response` (a `response.done` with status `failed`), `stall_after`
(stop sending after N deltas, keep the socket open), `delay_s` (before the first delta),
`delta_delay_s` (between deltas), `no_usage` (omit usage in `response.done`).
"""

from __future__ import annotations

import base64
import json
import math
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeConnection:
    path: str
    headers: dict[str, str]
    events: list[dict[str, Any]] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]


def tone_pcm16(seconds: float, rate: int = 24000, freq: float = 330.0) -> bytes:
    n = int(seconds * rate)
    return b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * freq * i / rate))) for i in range(n))


class FakeOpenAIRealtime:
    def __init__(self, *, api_key: str = "sk-fake-realtime-key", reply: str = "Hello from the fake realtime model.",
                 audio_seconds: float = 0.5, deltas: int = 5) -> None:
        self.api_key = api_key
        self.reply = reply
        self.audio_seconds = audio_seconds
        self.deltas = deltas
        self.connections: list[FakeConnection] = []
        self.reject_status: int | None = None
        self.drop_after: int | None = None
        self.error_after: int | None = None
        self.fail_response = False
        self.stall_after: int | None = None
        self.delay_s = 0.0
        self.delta_delay_s = 0.0
        self.no_usage = False
        self.turns = 0
        self.create_times: list[float] = []  # perf_counter when each response.create arrived
        self.first_delta_times: list[float] = []  # perf_counter when each first audio delta was sent
        self._server: Any = None
        self._pcm = tone_pcm16(audio_seconds)

    # ------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return self._server.socket.getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "FakeOpenAIRealtime":
        from websockets.sync.server import serve

        self._server = serve(self._handle, "127.0.0.1", 0, process_request=self._check, compression=None,
                             max_size=32 * 1024 * 1024)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-openai-realtime").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()

    def __enter__(self) -> "FakeOpenAIRealtime":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ------------------------------------------------------------ protocol

    def _check(self, conn: Any, request: Any) -> Any:
        if not request.path.startswith("/v1/realtime"):
            return conn.respond(404, "no such path\n")
        if self.reject_status is not None:
            return conn.respond(self.reject_status, json.dumps({"error": {"message": "rejected by the fake", "code": "fake"}}))
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return conn.respond(401, json.dumps({"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}))
        return None

    def _handle(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        record = FakeConnection(ws.request.path, {k.lower(): v for k, v in ws.request.headers.raw_items()})
        self.connections.append(record)
        session: dict[str, Any] = {"modalities": ["audio", "text"], "output_audio_format": "pcm16", "input_audio_format": "pcm16"}
        buffered = 0
        committed = 0
        history_chars = 0
        try:
            ws.send(json.dumps({"type": "session.created", "event_id": "ev_fake_0", "session": {"id": "sess_fake", **session}}))
            while True:
                event = json.loads(ws.recv())
                record.events.append(event)
                kind = event.get("type")
                if kind == "session.update":
                    session.update(event.get("session") or {})
                    ws.send(json.dumps({"type": "session.updated", "event_id": "ev_fake_su", "session": session}))
                elif kind == "conversation.item.create":
                    for part in (event.get("item") or {}).get("content") or []:
                        history_chars += len(part.get("text") or "")
                elif kind == "input_audio_buffer.append":
                    buffered += len(base64.b64decode(event["audio"]))
                elif kind == "input_audio_buffer.commit":
                    committed, buffered = committed + buffered, 0
                elif kind == "response.create":
                    self.create_times.append(time.perf_counter())
                    if not self._answer(ws, record, session, committed, history_chars):
                        return
                    committed = 0
        except ConnectionClosed:
            return

    def _answer(self, ws: Any, record: FakeConnection, session: dict[str, Any], audio_bytes: int, history_chars: int) -> bool:
        self.turns += 1
        turn = self.turns
        rid, iid = f"resp_fake_{turn}", f"item_fake_{turn}"
        base = {"response_id": rid, "item_id": iid, "output_index": 0, "content_index": 0}
        send = lambda e: ws.send(json.dumps(e))  # noqa: E731
        send({"type": "response.created", "response": {"id": rid, "status": "in_progress"}})
        if session.get("input_audio_transcription"):
            send({"type": "conversation.item.input_audio_transcription.completed", "item_id": "item_user",
                  "content_index": 0, "transcript": f"fake transcript {turn} ({audio_bytes} bytes)"})
        if self.delay_s:
            time.sleep(self.delay_s)
        fmt = session.get("output_audio_format") or "pcm16"
        audio = self._pcm if fmt == "pcm16" else bytes((0xFF if fmt == "g711_ulaw" else 0xD5,)) * int(self.audio_seconds * 8000)
        words = self.reply.split(" ")
        n = max(1, self.deltas)
        step = -(-len(audio) // n)
        sent = 0
        status = "completed"
        text = []
        for i in range(n):
            if self._cancelled(ws, record):
                status = "cancelled"
                break
            if self.drop_after is not None and sent >= self.drop_after:
                ws.socket.shutdown(2)  # abrupt: no close frame
                return False
            if self.error_after is not None and sent >= self.error_after:
                send({"type": "error", "event_id": "ev_fake_err",
                      "error": {"type": "server_error", "code": "fake_failure", "message": "The fake failed mid-turn."}})
                self.error_after = None
                return True
            if self.stall_after is not None and sent >= self.stall_after:
                while not self._cancelled(ws, record, wait=0.05):
                    pass
                status = "cancelled"
                break
            piece = " ".join(words[i * len(words) // n:(i + 1) * len(words) // n])
            if piece:
                chunk = (" " if text else "") + piece
                text.append(chunk)
                send({"type": "response.audio_transcript.delta", **base, "delta": chunk})
            if i == 0:
                self.first_delta_times.append(time.perf_counter())
            send({"type": "response.audio.delta", **base, "delta": base64.b64encode(audio[i * step:(i + 1) * step]).decode()})
            sent += 1
            if self.delta_delay_s:
                time.sleep(self.delta_delay_s)
        transcript = "".join(text)
        if status == "completed":
            send({"type": "response.audio.done", **base})
            send({"type": "response.audio_transcript.done", **base, "transcript": transcript})
        in_audio = audio_bytes // 480  # ~10 tokens a second of 24 kHz pcm16 (4800 bytes per 100 ms… scaled)
        usage = {"total_tokens": 0, "input_tokens": in_audio + history_chars // 4 + 20, "output_tokens": sent * 10 + len(transcript) // 4,
                 "input_token_details": {"cached_tokens": 0, "text_tokens": history_chars // 4 + 20, "audio_tokens": in_audio},
                 "output_token_details": {"text_tokens": len(transcript) // 4, "audio_tokens": sent * 10}}
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        response: dict[str, Any] = {"id": rid, "object": "realtime.response", "status": status, "output": []}
        if self.fail_response:
            response["status"] = "failed"
            response["status_details"] = {"type": "failed", "error": {"code": "server_error", "message": "fake failure"}}
        if not self.no_usage:
            response["usage"] = usage
        send({"type": "response.done", "response": response})
        return True

    @staticmethod
    def _cancelled(ws: Any, record: FakeConnection, wait: float = 0.0) -> bool:
        try:
            raw = ws.recv(timeout=wait)
        except TimeoutError:
            return False
        event = json.loads(raw)
        record.events.append(event)
        return event.get("type") == "response.cancel"
