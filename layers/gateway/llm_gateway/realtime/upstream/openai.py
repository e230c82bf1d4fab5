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
from llm_gateway.realtime.upstream import Turn, UpEvent
from llm_gateway.realtime.upstream.socket_base import POLL_S, SocketUpstream, closed_error
from llm_gateway.realtime.usage import RealtimeUsage, estimate

APPEND_BYTES = 384 * 1024  # raw audio per input_audio_buffer.append (512 KB base64)
CANCEL_GRACE_S = 2.0
TRANSCRIPT_GRACE_S = 0.5

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


class OpenAIRealtime(SocketUpstream):
    label = "OpenAI realtime"

    def url(self) -> str:
        return realtime_url(self.model)

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

        ConnectionClosed = closed_error()  # noqa: N806

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
