"""OpenAI Realtime over WebSocket, one provider socket per turn.

`wss://{base_url host}/v1/realtime?model={provider_model}` (the model option `realtime_url`
overrides), headers `Authorization: Bearer <key>` and `OpenAI-Beta: realtime=v1` (beta event
names; the GA names `response.output_audio.delta`, … are read too). Per turn, without waiting
for acknowledgements:

    session.update            modalities, instructions, voice, audio formats, temperature,
                              max_response_output_tokens, input_audio_transcription,
                              turn_detection: null (the gateway commits turns itself)
    conversation.item.create  one per history entry (the text of earlier turns: a new socket
                              knows nothing of them)
    input_audio_buffer.append the turn's audio, in pieces of at most 512 KB (base64)
    input_audio_buffer.commit
    response.create

then reads `response.audio.delta`, `response.audio_transcript.delta`, `response.text.delta`,
`conversation.item.input_audio_transcription.completed` and `response.done` (status and usage).
A cancelled turn sends `response.cancel` and waits briefly for the `response.done`. A provider
`error` event, a `response.done` with status `failed`, or a socket that closes before
`response.done` is a `provider_error` (usage estimated from the audio and text seen when the
provider reported none). The per-upstream circuit breaker of the outbound client is honoured.

Audio: pcm16 / g711 pass through unchanged; a session in `wav` sends its input converted to
pcm16 (24 kHz) and receives pcm16 behind a streaming WAV header.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from llm_gateway.api.errors import GatewayError, redact
from llm_gateway.realtime import audio as au
from llm_gateway.realtime.upstream import Turn, UpEvent, Upstream
from llm_gateway.realtime.usage import RealtimeUsage, estimate

APPEND_BYTES = 384 * 1024  # raw audio per input_audio_buffer.append (512 KB base64)
POLL_S = 0.05  # how often a waiting read wakes up to check cancellation and deadlines
CANCEL_GRACE_S = 2.0
TRANSCRIPT_GRACE_S = 0.5
DEFAULT_TTFT_S = 30.0

AUDIO_DELTA = ("response.audio.delta", "response.output_audio.delta")
TRANSCRIPT_DELTA = ("response.audio_transcript.delta", "response.output_audio_transcript.delta")
TEXT_DELTA = ("response.text.delta", "response.output_text.delta")
INPUT_TRANSCRIPT = "conversation.item.input_audio_transcription.completed"


def realtime_url(model: Any) -> str:
    explicit = model.options.get("realtime_url") or model.provider.options.get("realtime_url")
    if explicit:
        return str(explicit).replace("{model}", quote(model.provider_model, safe=""))
    base = model.provider.base_url or "https://api.openai.com/v1"
    parts = urlsplit(base)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/") + "/realtime"
    return urlunsplit((scheme, parts.netloc, path, f"model={quote(model.provider_model, safe='')}", ""))


class OpenAIRealtime(Upstream):
    transport = "socket"

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.ws: Any = None
        self._opening: Any = None  # Future of the socket, from prepare()
        self._permit: Any = None

    def _ttft(self, deadline_s: float | None = None) -> float:
        ttft = float(self.model.timeouts.get("ttft_ms", DEFAULT_TTFT_S * 1000)) / 1000
        if deadline_s is not None:
            ttft = min(ttft, max(0.1, deadline_s - time.monotonic()))
        return ttft

    def prepare(self, config: dict[str, Any]) -> None:
        """Open the socket in the background (the handshake overlaps the session store reads)."""
        from llm_gateway.outbound.client import get_outbound
        from llm_gateway.pipeline import parallel

        url = realtime_url(self.model)
        try:
            self._permit = get_outbound().breakers.acquire(self.model.provider.id, url)
        except GatewayError:
            return  # run() acquires again and raises the circuit-open error in its place
        self._opening = parallel.submit(self._connect, url, self._ttft())

    def check(self, config: dict[str, Any]) -> None:
        return None

    def _headers(self) -> dict[str, str]:
        from llm_gateway.outbound.credentials import resolve_credential

        key = resolve_credential(self.model.provider.id, self.model.provider.credential)
        headers = {"OpenAI-Beta": "realtime=v1"}
        if self.model.options.get("realtime_beta_header") is False:
            headers.pop("OpenAI-Beta")
        headers.update(self.model.provider.options.get("headers") or {})
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _fail(self, detail: str, code: str = "provider_error", **extra: Any) -> GatewayError:
        return GatewayError(code, detail, provider=self.model.provider.id, **extra)

    def _connect(self, url: str, timeout: float) -> Any:
        try:
            from websockets.exceptions import InvalidHandshake, InvalidStatus
            from websockets.sync.client import connect
        except ImportError:  # the realtime worker function ships `websockets` (see infra's function requirements)
            raise self._fail("This deployment has no WebSocket client (the `websockets` package) for provider realtime sockets.",
                             "internal_error") from None
        try:
            return connect(url, additional_headers=self._headers(), open_timeout=timeout, close_timeout=1,
                           max_size=16 * 1024 * 1024, compression=None, proxy=None, ping_interval=20, ping_timeout=20)
        except InvalidStatus as exc:
            status = exc.response.status_code
            body = exc.response.body.decode("utf-8", "replace")[:300] if exc.response.body else ""
            if status == 429:
                retry = exc.response.headers.get("retry-after")
                raise self._fail(f"OpenAI realtime refused the connection: 429 {redact(body)}", "rate_limited",
                                 retry_after_s=float(retry) if retry and retry.replace(".", "", 1).isdigit() else None) from None
            if status in (408, 504):
                raise self._fail(f"OpenAI realtime timed out opening the session ({status}).", "provider_timeout") from None
            raise self._fail(f"OpenAI realtime refused the connection: {status} {redact(body)}".strip()) from None
        except TimeoutError:
            raise self._fail("OpenAI realtime did not accept the connection in time.", "provider_timeout") from None
        except (InvalidHandshake, OSError) as exc:
            raise self._fail(f"Cannot open OpenAI realtime socket: {type(exc).__name__}: {redact(str(exc))[:200]}") from None

    def _session(self, cfg: dict[str, Any]) -> dict[str, Any]:
        fmt_in = cfg["input_audio_format"]
        fmt_out = cfg["output_audio_format"]
        session: dict[str, Any] = {
            "modalities": cfg["modalities"],
            "instructions": cfg.get("instructions") or "",
            "voice": cfg.get("voice") or "alloy",
            "input_audio_format": fmt_in if fmt_in in au.PROVIDER_FORMATS else "pcm16",
            "output_audio_format": fmt_out if fmt_out in au.PROVIDER_FORMATS else "pcm16",
            "turn_detection": None,
            "temperature": cfg.get("temperature", 0.8),
            "max_response_output_tokens": cfg.get("max_response_output_tokens", "inf"),
        }
        transcription = cfg.get("input_audio_transcription")
        if transcription is None and self.model.options.get("transcription_model") is not False:
            # the next turn's socket only knows earlier turns from their text: transcribe the user
            transcription = {"model": self.model.options.get("transcription_model") or "whisper-1"}
        session["input_audio_transcription"] = transcription or None
        return session

    def run(self, turn: Turn) -> Iterator[UpEvent]:
        from llm_gateway.outbound.client import get_outbound

        try:
            from websockets.exceptions import ConnectionClosed
        except ImportError:  # _connect() reports the missing package
            ConnectionClosed = _NeverRaised  # noqa: N806

        cfg = turn.config
        fmt_in = cfg["input_audio_format"]
        audio = turn.audio
        if fmt_in == "wav":
            pcm, rate = au.wav_pcm(audio)
            audio = au.resample(pcm, rate, 24000)
            sent_fmt = "pcm16"
        else:
            sent_fmt = fmt_in
        audio_in_s = au.seconds_of(len(audio), sent_fmt)
        wrap_wav = cfg["output_audio_format"] == "wav"
        url = realtime_url(self.model)
        ttft = self._ttft(turn.deadline_s)
        opening, self._opening = self._opening, None
        permit, self._permit = self._permit, None
        if permit is None:
            permit = get_outbound().breakers.acquire(self.model.provider.id, url)
        out_bytes = 0
        text_chars = 0
        in_chars = len(cfg.get("instructions") or "") + sum(len(h.get("text") or "") for h in turn.history)
        transcript_seen = False
        reported: RealtimeUsage | None = None
        done = False
        try:
            self.ws = ws = opening.result() if opening is not None else self._connect(url, ttft)
            send = lambda event: ws.send(json.dumps(event, separators=(",", ":")))  # noqa: E731
            session = self._session(cfg)
            wants_transcript = bool(session.get("input_audio_transcription"))
            send({"type": "session.update", "session": session})
            previous = None
            for i, h in enumerate(turn.history):
                text = h.get("text")
                if not text:
                    continue
                item_id = f"{turn.session_id[-12:]}h{i}"
                part = {"type": "input_text", "text": text} if h["role"] == "user" else {"type": "text", "text": text}
                event: dict[str, Any] = {"type": "conversation.item.create",
                                         "item": {"id": item_id, "type": "message", "role": h["role"], "content": [part]}}
                if previous:
                    event["previous_item_id"] = previous
                send(event)
                previous = item_id
            for i in range(0, len(audio), APPEND_BYTES):
                send({"type": "input_audio_buffer.append", "audio": base64.b64encode(audio[i:i + APPEND_BYTES]).decode("ascii")})
            send({"type": "input_audio_buffer.commit"})
            response: dict[str, Any] = {"modalities": cfg["modalities"]}
            send({"type": "response.create", "response": response})
            started = time.monotonic()
            first = False
            cancel_sent = 0.0
            grace_until = 0.0
            header_sent = False
            while True:
                now = time.monotonic()
                if not cancel_sent and turn.cancelled():
                    cancel_sent = now
                    self.status = "cancelled"
                    try:
                        send({"type": "response.cancel"})
                    except ConnectionClosed:
                        break
                if cancel_sent and now - cancel_sent > CANCEL_GRACE_S:
                    break
                if done and (not wants_transcript or transcript_seen or now > grace_until):
                    break
                if not first and not cancel_sent and now - started > ttft:
                    raise self._fail(f"OpenAI realtime sent nothing within {ttft:.1f} s of response.create.", "provider_timeout")
                if now > turn.deadline_s:
                    raise self._fail("The turn reached its time limit while OpenAI realtime was answering.", "provider_timeout")
                try:
                    raw = ws.recv(timeout=POLL_S)
                except TimeoutError:
                    continue
                try:
                    event = json.loads(raw)
                except ValueError:
                    raise self._fail("OpenAI realtime sent a message that is not JSON.") from None
                kind = event.get("type") if isinstance(event, dict) else None
                if kind in AUDIO_DELTA:
                    first = True
                    try:
                        data = base64.b64decode(event.get("delta") or "", validate=True)
                    except ValueError:
                        raise self._fail("OpenAI realtime sent audio that is not base64.") from None
                    out_bytes += len(data)
                    if wrap_wav and not header_sent:
                        header_sent = True
                        data = au.wav_header(24000) + data
                    if data:
                        yield UpEvent("audio", data=data)
                elif kind in TRANSCRIPT_DELTA or kind in TEXT_DELTA:
                    first = True
                    delta = event.get("delta") or ""
                    text_chars += len(delta)
                    if delta:
                        yield UpEvent("transcript" if kind in TRANSCRIPT_DELTA else "text", text=delta)
                elif kind == INPUT_TRANSCRIPT:
                    transcript_seen = True
                    yield UpEvent("input_transcript", text=str(event.get("transcript") or "").strip())
                elif kind in ("response.done", "response.completed"):
                    first = True
                    resp = event.get("response") or {}
                    reported = RealtimeUsage.from_openai(resp.get("usage"))
                    status = resp.get("status") or "completed"
                    if status == "failed":
                        err = ((resp.get("status_details") or {}).get("error") or {})
                        raise self._fail(f"OpenAI realtime failed the response: {redact(str(err.get('message') or err.get('code') or 'no detail'))[:300]}")
                    if status == "cancelled" or cancel_sent:
                        self.status = "cancelled"
                    elif status == "incomplete":
                        self.status = "incomplete"
                    done = True
                    grace_until = time.monotonic() + TRANSCRIPT_GRACE_S
                    if cancel_sent:
                        break
                elif kind == "error":
                    err = event.get("error") or {}
                    code = err.get("code")
                    if code == "response_cancel_not_active":
                        continue  # our cancel crossed the response's end
                    raise self._fail(f"OpenAI realtime error ({code or err.get('type') or 'unknown'}): "
                                     f"{redact(str(err.get('message') or ''))[:300]}")
            permit.neutral() if self.status == "cancelled" else permit.success()
        except ConnectionClosed:
            permit.failure()
            if self.status == "cancelled" and (done or cancel_sent):
                pass
            else:
                raise self._fail("The OpenAI realtime socket closed in the middle of the turn.") from None
        except GatewayError as exc:
            if exc.code in ("rate_limited",):
                permit.neutral()
            else:
                permit.failure()
            raise
        finally:
            out_s = au.seconds_of(out_bytes, cfg["output_audio_format"] if cfg["output_audio_format"] in au.PROVIDER_FORMATS else "pcm16")
            if reported is None:
                reported = estimate(audio_in_s, out_s, in_chars, text_chars) if (audio_in_s or out_bytes or text_chars) else RealtimeUsage()
            reported.audio_in_s = audio_in_s
            reported.audio_out_s = out_s
            self.usage = reported
            self.close()
        yield UpEvent("usage", usage=reported)

    def close(self) -> None:
        opening, self._opening = self._opening, None
        if opening is not None:  # prepared but never run (governance refused, bad audio…)
            opening.add_done_callback(_close_opened)
            if self._permit is not None:
                self._permit.neutral()
                self._permit = None
        ws, self.ws = self.ws, None
        if ws is not None:
            try:
                ws.close()
            except Exception:  # noqa: BLE001 - best effort
                pass


def _close_opened(future: Any) -> None:
    if future.exception() is None:
        try:
            future.result().close()
        except Exception:  # noqa: BLE001 - best effort
            pass


class _NeverRaised(Exception):
    pass
