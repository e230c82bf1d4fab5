"""Gemini Live (`BidiGenerateContent` over WebSocket), one provider socket per turn.

`wss://{host}/ws/google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent`,
scheme and host from the provider's `base_url` (`https` → `wss`, `http` → `ws`; `{version}` is its
last path segment, `v1beta` by default; the model option `realtime_url` overrides the whole URL).
The API key (the provider's credential, as for the Gemini HTTP adapter) goes in the
`x-goog-api-key` header, never in the URL, so no error text or log line can carry it. Per turn:

    setup           model `models/{provider_model}`; generationConfig: responseModalities
                    `["AUDIO"]` (with speechConfig's prebuilt voice) or `["TEXT"]`, temperature,
                    maxOutputTokens; systemInstruction (the session instructions);
                    inputAudioTranscription; outputAudioTranscription (audio answers)
                    → wait for `setupComplete` (within the model's `ttft_ms`)
    clientContent   the text of earlier turns (roles `user` / `model`), `turnComplete: false`
                    (a new socket knows nothing of them)
    realtimeInput   the turn's audio as mono PCM16 16 kHz, `{"audio": {"data", "mimeType":
                    "audio/pcm;rate=16000"}}`, one second a message
    realtimeInput   `{"audioStreamEnd": true}` (the server's activity detection ends the turn)

`prepare()` connects and sends the setup in the background (the session config is known before
the turn's audio is read). Server messages (JSON, in binary or text frames): `serverContent` —
`modelTurn.parts[].inlineData` (PCM16 at the mimeType's rate, 24 kHz → the session's output
format), `modelTurn.parts[].text` (text answers; `thought` parts skipped), `outputTranscription`
(the spoken answer's text → transcript deltas), `inputTranscription` (the user's words, one
`input_transcript` at the end of the turn), `interrupted`, `generationComplete`, `turnComplete`
(the end); `usageMetadata` (prompt/response token counts, by modality in
`promptTokensDetails` / `responseTokensDetails`: AUDIO → audio tokens, the rest text; thoughts
are output text); `goAway` (noted: a socket that then closes mid-turn says so).

Failures: a refused handshake (HTTP status), a socket closed before `turnComplete` (Google reports
bad keys, unknown models and invalid setups by closing: 1007 / 1008 / 1011 with a reason), an
`error` message → `provider_error` (quota → `rate_limited`, deadline → `provider_timeout`); no
`setupComplete`, or no answer, within the model's ttft → `provider_timeout`. Provider text is
redacted and the key removed. The Live API has no cancel: a cancelled turn closes the socket and
its usage is the last `usageMetadata` seen, else an estimate (32 tokens a second of audio).

Model options: `voice` (used when the session's voice is an OpenAI voice name; default `Puck`),
`live_audio_only` (native-audio models answer only in AUDIO: a text-only session asks for audio,
drops it and gets the output transcription as text), `live_activity: "manual"` (automatic
activity detection off; the audio goes between `activityStart` and `activityEnd` instead of
ending with `audioStreamEnd`, so pauses in it cannot split the answer), `transcription: false`
(no input transcription: later turns then only know the answers). The per-upstream circuit
breaker of the outbound client is honoured.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from llm_gateway.api.errors import GatewayError, redact
from llm_gateway.realtime import audio as au
from llm_gateway.realtime.upstream import Turn, UpEvent
from llm_gateway.realtime.upstream.socket_base import POLL_S, SocketUpstream, close_opened, close_quietly, closed_error
from llm_gateway.realtime.usage import RealtimeUsage, estimate

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
SERVICE = "google.ai.generativelanguage.{version}.GenerativeService.BidiGenerateContent"
INPUT_RATE = 16000  # what realtimeInput audio must be
INPUT_MIME = "audio/pcm;rate=16000"
OUTPUT_RATE = 24000  # what the Live API answers in (the mimeType says)
CHUNK_BYTES = 32_000  # one second of 16 kHz PCM16 per realtimeInput message
USAGE_GRACE_S = 0.5  # after turnComplete, how long to wait for a usageMetadata still on its way
DEFAULT_VOICE = "Puck"
AUDIO_TOKENS_PER_S = 32  # Gemini's audio tokenisation, for estimates
OPENAI_VOICES = frozenset({"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer",
                           "verse", "marin", "cedar"})
_VERSION = re.compile(r"v\d+(?:(?:alpha|beta)\d*)?")
_RATE = re.compile(r"rate=(\d+)")


def live_url(model: Any) -> str:
    explicit = model.options.get("realtime_url") or model.provider.options.get("realtime_url")
    if explicit:
        return str(explicit)
    parts = urlsplit(model.provider.base_url or DEFAULT_BASE_URL)
    scheme = {"https": "wss", "http": "ws"}.get(parts.scheme, parts.scheme)
    segments = [s for s in parts.path.split("/") if s]
    version = segments.pop() if segments and _VERSION.fullmatch(segments[-1]) else "v1beta"
    path = "/" + "/".join([*segments, "ws", SERVICE.format(version=version)])
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def usage_from_gemini(raw: Any) -> RealtimeUsage | None:
    """A Live API `usageMetadata` as turn usage: AUDIO tokens by modality, everything else as text."""
    if not isinstance(raw, dict):
        return None

    def count(value: Any) -> int:
        try:
            return max(0, int(value or 0))
        except (TypeError, ValueError):
            return 0

    def audio_of(details: Any) -> int:
        return sum(count(d.get("tokenCount")) for d in details or [] if isinstance(d, dict)
                   and str(d.get("modality") or "").upper() == "AUDIO")

    prompt = count(raw.get("promptTokenCount")) + count(raw.get("toolUsePromptTokenCount"))
    response = count(raw.get("responseTokenCount") or raw.get("candidatesTokenCount"))
    in_audio = min(prompt, audio_of(raw.get("promptTokensDetails")))
    out_audio = min(response, audio_of(raw.get("responseTokensDetails") or raw.get("candidatesTokensDetails")))
    return RealtimeUsage(input_text_tokens=prompt - in_audio, input_audio_tokens=in_audio,
                         cached_tokens=count(raw.get("cachedContentTokenCount")),
                         output_text_tokens=response - out_audio + count(raw.get("thoughtsTokenCount")),
                         output_audio_tokens=out_audio)


def _rate_of(mime: str) -> int:
    m = _RATE.search(mime)
    return int(m.group(1)) if m and int(m.group(1)) > 0 else OUTPUT_RATE


class GeminiLive(SocketUpstream):
    label = "Gemini Live"

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self._opening_setup: dict[str, Any] | None = None  # the setup the socket being opened sent
        self._key: str | None = None
        self._go_away: str | None = None
        self._request_refused = False  # closed with 1007/1008: the request was the problem, not the upstream

    # ------------------------------------------------------------ configuration

    def _asks_audio(self, cfg: dict[str, Any]) -> bool:
        return "audio" in (cfg.get("modalities") or ["audio", "text"]) or bool(self.model.options.get("live_audio_only"))

    def _manual(self) -> bool:
        return self.model.options.get("live_activity") == "manual"

    def _voice(self, cfg: dict[str, Any]) -> str:
        voice = str(cfg.get("voice") or "")
        if not voice or voice.lower() in OPENAI_VOICES:
            return str(self.model.options.get("voice") or DEFAULT_VOICE)
        return voice

    def _setup(self, cfg: dict[str, Any]) -> dict[str, Any]:
        name = self.model.provider_model
        if not name.startswith(("models/", "tunedModels/")):
            name = "models/" + name
        audio = self._asks_audio(cfg)
        gen: dict[str, Any] = {"responseModalities": ["AUDIO"] if audio else ["TEXT"]}
        if audio:
            gen["speechConfig"] = {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": self._voice(cfg)}}}
        temperature = cfg.get("temperature")
        if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
            gen["temperature"] = temperature
        limit = cfg.get("max_response_output_tokens")
        if isinstance(limit, int) and not isinstance(limit, bool):
            gen["maxOutputTokens"] = limit
        setup: dict[str, Any] = {"model": name, "generationConfig": gen}
        if cfg.get("instructions"):
            setup["systemInstruction"] = {"parts": [{"text": cfg["instructions"]}]}
        if self.model.options.get("transcription") is not False:
            setup["inputAudioTranscription"] = {}
        if audio:
            setup["outputAudioTranscription"] = {}
        if self._manual():
            setup["realtimeInputConfig"] = {"automaticActivityDetection": {"disabled": True}}
        return setup

    @staticmethod
    def _history(history: list[dict[str, str]]) -> list[dict[str, Any]]:
        """Earlier turns as Gemini contents (consecutive turns of one role merged, empty ones dropped)."""
        turns: list[dict[str, Any]] = []
        for h in history:
            text = h.get("text")
            if not text:
                continue
            role = "user" if h.get("role") == "user" else "model"
            if turns and turns[-1]["role"] == role:
                turns[-1]["parts"].append({"text": text})
            else:
                turns.append({"role": role, "parts": [{"text": text}]})
        return turns

    def check(self, config: dict[str, Any]) -> None:
        return None

    # ------------------------------------------------------------ errors

    def _redact(self, text: str) -> str:
        text = redact(text)
        if self._key:
            text = text.replace(self._key, "[redacted]")
        return text

    def _error(self, err: Any) -> GatewayError:
        """An `error` message of the Live API (`{"code", "message", "status"}`)."""
        err = err if isinstance(err, dict) else {"message": str(err)}
        status = str(err.get("status") or err.get("code") or "unknown")
        message = self._redact(str(err.get("message") or "no detail"))[:300]
        if status in ("RESOURCE_EXHAUSTED", "429"):
            return self._fail(f"Gemini Live refused the turn ({status}): {message}", "rate_limited")
        if status in ("DEADLINE_EXCEEDED", "504"):
            return self._fail(f"Gemini Live timed out ({status}): {message}", "provider_timeout")
        return self._fail(f"Gemini Live error ({status}): {message}")

    def _closed(self, exc: Any, when: str) -> GatewayError:
        """The socket closed before the turn completed: the close code and reason are Google's error."""
        frame = getattr(exc, "rcvd", None)
        after = f" after announcing it would (goAway, timeLeft {self._go_away})" if self._go_away else ""
        if frame is None:
            return self._fail(f"The Gemini Live socket dropped {when}{after} (no close frame).")
        reason = self._redact(frame.reason or "").strip()[:300]
        self._request_refused = frame.code in (1007, 1008)
        low = reason.lower()
        if "quota" in low or "resource_exhausted" in low or "rate limit" in low:
            return self._fail(f"Gemini Live refused the turn (close {frame.code}): {reason}", "rate_limited")
        if "deadline" in low:
            return self._fail(f"Gemini Live timed out (close {frame.code}): {reason}", "provider_timeout")
        return self._fail(f"Gemini Live closed the socket {when}{after}: {frame.code} {reason or '(no reason)'}")

    def _parse(self, raw: Any) -> dict[str, Any]:
        try:
            msg = json.loads(raw)
        except ValueError:
            raise self._fail("Gemini Live sent a message that is not JSON.") from None
        if not isinstance(msg, dict):
            raise self._fail("Gemini Live sent a message that is not a JSON object.")
        return msg

    # ------------------------------------------------------------ socket

    def _headers(self) -> dict[str, str]:
        from llm_gateway.outbound.credentials import resolve_credential

        key = resolve_credential(self.model.provider.id, self.model.provider.credential)
        headers = dict(self.model.provider.options.get("headers") or {})
        if key:
            self._key = key
            headers["x-goog-api-key"] = key
        return headers

    def _open(self, url: str, setup: dict[str, Any], timeout: float) -> Any:
        """A socket whose setup the server confirmed (`setupComplete`)."""
        ConnectionClosed = closed_error()  # noqa: N806
        started = time.monotonic()
        ws = self._connect(url, timeout)
        try:
            ws.send(json.dumps({"setup": setup}, separators=(",", ":")))
            end = started + timeout
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    raise self._fail(f"Gemini Live did not confirm the session setup (setupComplete) within {timeout:.1f} s.",
                                     "provider_timeout")
                try:
                    raw = ws.recv(timeout=min(left, 1.0))
                except TimeoutError:
                    continue
                msg = self._parse(raw)
                if "setupComplete" in msg:
                    return ws
                if "error" in msg:
                    raise self._error(msg["error"])
                if "goAway" in msg:
                    self._note_go_away(msg["goAway"])
        except ConnectionClosed as exc:
            close_quietly(ws)
            raise self._closed(exc, "during the session setup") from None
        except BaseException:
            close_quietly(ws)
            raise

    def _note_go_away(self, body: Any) -> None:
        from llm_gateway.observability import logger

        left = body.get("timeLeft") if isinstance(body, dict) else None
        self._go_away = str(left or "unknown")[:32]
        logger.info("gemini live goAway", extra={"provider": self.model.provider.id, "time_left": self._go_away})

    def url(self) -> str:
        return live_url(self.model)

    def _start(self, url: str, config: dict[str, Any]) -> Any:
        """Connect and send the setup in the background (overlapping the session store reads)."""
        from llm_gateway.pipeline import parallel

        setup = self._setup(config)
        self._opening_setup = setup
        return parallel.submit(self._open, url, setup, self._ttft())

    def _await(self, opening: Any, turn: Turn) -> Any:
        """The prepared socket, or None when the turn was cancelled while it opened."""
        while True:
            if turn.cancelled():
                opening.add_done_callback(close_opened)
                return None
            try:
                return opening.result(timeout=POLL_S)
            except TimeoutError:
                continue

    # ------------------------------------------------------------ the turn

    def run(self, turn: Turn) -> Iterator[UpEvent]:
        from llm_gateway.outbound.client import get_outbound

        ConnectionClosed = closed_error()  # noqa: N806
        cfg = turn.config
        try:
            pcm = au.pcm16_at(turn.audio, cfg["input_audio_format"], INPUT_RATE)
        except au.AudioFormatError as exc:
            raise GatewayError("validation_error", f"The turn's audio cannot be converted for Gemini Live: {exc}.") from None
        audio_in_s = len(pcm) / 2 / INPUT_RATE
        wants_audio = "audio" in (cfg.get("modalities") or ["audio", "text"])
        asks_audio = self._asks_audio(cfg)
        url = live_url(self.model)
        ttft = self._ttft(turn.deadline_s)
        setup = self._setup(cfg)
        opening, self._opening = self._opening, None
        prepared, self._opening_setup = self._opening_setup, None
        permit, self._permit = self._permit, None
        if opening is not None and prepared != setup:  # the config changed after prepare(): set up again
            opening.add_done_callback(close_opened)
            opening = None
        if permit is None:
            permit = get_outbound().breakers.acquire(self.model.provider.id, url)
        encoder: au.PcmEncoder | None = None
        encoder_rate = OUTPUT_RATE
        out_s = 0.0
        sent_s = 0.0
        text_chars = 0
        in_chars = 0
        heard: list[str] = []
        reported: RealtimeUsage | None = None
        done = False
        interrupted = False
        try:
            ws = self._await(opening, turn) if opening is not None else self._open(url, setup, ttft)
            if ws is None:
                self.status = "cancelled"
            else:
                self.ws = ws
                in_chars = len(cfg.get("instructions") or "")
                try:
                    turns = self._history(turn.history)
                    if turns:
                        ws.send(json.dumps({"clientContent": {"turns": turns, "turnComplete": False}}, separators=(",", ":")))
                        in_chars += sum(len(p["text"]) for t in turns for p in t["parts"])
                    if self._manual():
                        ws.send('{"realtimeInput":{"activityStart":{}}}')
                    for i in range(0, len(pcm), CHUNK_BYTES):
                        if turn.cancelled():
                            self.status = "cancelled"
                            break
                        chunk = pcm[i:i + CHUNK_BYTES]
                        ws.send(json.dumps({"realtimeInput": {"audio": {"data": base64.b64encode(chunk).decode("ascii"),
                                                                        "mimeType": INPUT_MIME}}}, separators=(",", ":")))
                        sent_s += len(chunk) / 2 / INPUT_RATE
                    if self.status != "cancelled":
                        ws.send('{"realtimeInput":{"activityEnd":{}}}' if self._manual()
                                else '{"realtimeInput":{"audioStreamEnd":true}}')
                except ConnectionClosed as exc:
                    raise self._closed(exc, "while the turn was being sent") from None
                started = time.monotonic()
                first = False
                usage_until = 0.0
                while self.status != "cancelled":
                    now = time.monotonic()
                    if turn.cancelled():  # the Live API has no cancel: closing the socket stops the answer
                        self.status = "cancelled"
                        break
                    if done and (reported is not None or now > usage_until):
                        break
                    if not first and now - started > ttft:
                        raise self._fail(f"Gemini Live sent nothing within {ttft:.1f} s of the end of the audio.", "provider_timeout")
                    if now > turn.deadline_s:
                        raise self._fail("The turn reached its time limit while Gemini Live was answering.", "provider_timeout")
                    try:
                        raw = ws.recv(timeout=POLL_S)
                    except TimeoutError:
                        continue
                    except ConnectionClosed as exc:
                        if done:
                            break
                        raise self._closed(exc, "before the turn completed") from None
                    msg = self._parse(raw)
                    usage = usage_from_gemini(msg.get("usageMetadata"))
                    if usage is not None and (reported is None or usage.input_tokens + usage.output_tokens
                                              >= reported.input_tokens + reported.output_tokens):
                        reported = usage  # the most complete count seen (they may come more than once)
                    if "error" in msg:
                        raise self._error(msg["error"])
                    if "goAway" in msg:
                        self._note_go_away(msg["goAway"])
                    content = msg.get("serverContent")
                    if not isinstance(content, dict):
                        continue
                    if content.get("interrupted"):
                        interrupted = True
                    parts = (content.get("modelTurn") or {}).get("parts") or []
                    for part in parts if isinstance(parts, list) else []:
                        if not isinstance(part, dict) or part.get("thought"):
                            continue
                        inline = part.get("inlineData")
                        if isinstance(inline, dict) and str(inline.get("mimeType") or "").startswith("audio/"):
                            first, interrupted = True, False
                            try:
                                data = base64.b64decode(inline.get("data") or "", validate=True)
                            except ValueError:
                                raise self._fail("Gemini Live sent audio that is not base64.") from None
                            rate = _rate_of(str(inline["mimeType"]))
                            out_s += len(data) / 2 / rate
                            if not wants_audio or not data:
                                continue  # a text-only session of an audio-only model: the transcript is the answer
                            if encoder is None:
                                encoder, encoder_rate = au.PcmEncoder(cfg["output_audio_format"], rate), rate
                            out = encoder.feed(au.resample(data, rate, encoder_rate))
                            if out:
                                yield UpEvent("audio", data=out)
                        elif isinstance(part.get("text"), str) and part["text"] and not asks_audio:
                            first, interrupted = True, False
                            text_chars += len(part["text"])
                            yield UpEvent("text", text=part["text"])
                    said = (content.get("outputTranscription") or {}).get("text")
                    if isinstance(said, str) and said:
                        first, interrupted = True, False
                        text_chars += len(said)
                        yield UpEvent("transcript" if wants_audio else "text", text=said)
                    words = (content.get("inputTranscription") or {}).get("text")
                    if isinstance(words, str) and words:
                        heard.append(words)
                    if content.get("generationComplete"):
                        first = True
                    if content.get("turnComplete") and not done:
                        first, done = True, True
                        usage_until = time.monotonic() + USAGE_GRACE_S
                if heard:
                    yield UpEvent("input_transcript", text="".join(heard).strip())
                if done and interrupted and self.status == "completed":
                    self.status = "incomplete"  # cut off, and nothing followed
            permit.neutral() if self.status == "cancelled" else permit.success()
        except ConnectionClosed as exc:  # a send outside the guarded ones
            if self.status == "cancelled":
                permit.neutral()
            else:
                permit.failure()
                raise self._closed(exc, "in the middle of the turn") from None
        except GatewayError as exc:
            if exc.code == "rate_limited":
                permit.neutral()
            elif self._request_refused:  # a bad key, model or setup: the upstream answered
                permit.success()
            else:
                permit.failure()
            raise
        except GeneratorExit:  # the worker stopped reading (it never does before the usage event)
            permit.neutral()
            raise
        finally:
            if reported is None:
                if sent_s or out_s or text_chars:
                    reported = estimate(sent_s, out_s, in_chars, text_chars)
                    reported.input_audio_tokens = round(sent_s * AUDIO_TOKENS_PER_S)
                    reported.output_audio_tokens = round(out_s * AUDIO_TOKENS_PER_S)
                else:
                    reported = RealtimeUsage()
            reported.audio_in_s = audio_in_s
            reported.audio_out_s = out_s
            self.usage = reported
            self.close()
        yield UpEvent("usage", usage=reported)
