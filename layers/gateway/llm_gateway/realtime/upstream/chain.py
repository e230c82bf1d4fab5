"""A realtime turn for providers without a realtime socket: speech-to-text → chat → text-to-speech.

1. the turn's audio, as a WAV (raw pcm16/G.711 is wrapped), goes to the STT model's
   `transcribe()` → the user's transcript (`conversation.item.input_audio_transcription.completed`);
2. the chat model's `stream()` gets the session instructions (system), the text history and the
   transcript → `response.audio_transcript.delta` (or `response.text.delta` for text-only sessions);
3. the answer goes to the TTS model's `speak_stream()` (WAV) → PCM → the session's output format →
   `response.audio.delta`.

Each step is the provider adapter the HTTP API uses (no pipeline import); each step's usage is
priced at its own model's prices and the turn's usage is their sum. Cancellation is checked
between steps and between streamed pieces.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.providers.base import Deadline, ProviderCall, TokenUsage
from llm_gateway.realtime import audio as au
from llm_gateway.realtime.upstream import Turn, UpEvent, Upstream
from llm_gateway.realtime.usage import RealtimeUsage, step_cost

STEPS = (("stt", "stt"), ("chat", "chat"), ("tts", "tts"))


class SpeechChain(Upstream):
    transport = "chain"

    def __init__(self, model: Any) -> None:
        super().__init__(model)
        self.steps = self._steps()

    def _steps(self) -> dict[str, Any]:
        from llm_gateway.registry.catalog import get_catalog

        named = self.model.options.get("realtime") or {}
        out = {}
        for step, capability in STEPS:
            model = self.model
            if named.get(step):
                model = get_catalog().resolve(named[step])
            if capability not in model.capabilities:
                raise GatewayError("capability_not_supported",
                                   f"Model '{self.model.id}' has no realtime {step} step: '{model.id}' lacks '{capability}' "
                                   f"(name one in the model option realtime.{step}).", model=self.model.id)
            out[step] = model
        return out

    def check(self, config: dict[str, Any]) -> None:
        return None

    @staticmethod
    def _deadline(turn: Turn, model: Any) -> Deadline:
        total = max(0.5, turn.deadline_s - time.monotonic())
        ttft = min(total, float(model.timeouts.get("ttft_ms", 30_000)) / 1000)
        return Deadline(ttft_s=ttft, total_s=total)

    def _call(self, turn: Turn, model: Any, messages: list[dict[str, Any]], **kw: Any) -> ProviderCall:
        from llm_gateway.api.models import ChatRequest

        request = ChatRequest.model_validate({"model": model.id, "messages": messages, "stream": True,
                                              "metadata": {"conversation_id": turn.session_id}, **kw})
        return ProviderCall(request=request, model=model, deadline=self._deadline(turn, model), tenant_id=turn.tenant_id,
                            request_id=turn.request_id)

    def run(self, turn: Turn) -> Iterator[UpEvent]:
        from llm_gateway.providers import adapter_for

        cfg = turn.config
        usage = RealtimeUsage()
        cost = 0.0
        fmt_in = cfg["input_audio_format"]
        try:
            # 1. speech to text
            if fmt_in == "wav":
                wav = turn.audio
                pcm, rate = au.wav_pcm(wav)
            else:
                pcm, rate = au.to_pcm16(turn.audio, fmt_in)
                from llm_gateway.media.samples import pcm_wav

                wav = pcm_wav(pcm, rate)
            usage.audio_in_s = len(pcm) / 2 / rate
            stt = self.steps["stt"]
            media: dict[str, Any] = {}
            tr = cfg.get("input_audio_transcription") or {}
            if tr.get("language"):
                media["language"] = tr["language"]
            url = "data:audio/wav;base64," + base64.b64encode(wav).decode("ascii")
            call = self._call(turn, stt, [{"role": "user", "content": [{"type": "audio", "url": url}]}],
                              **({"media": media} if media else {}))
            result = adapter_for(stt.provider).transcribe(call)
            transcript = "".join(p.get("text", "") for p in result.content if p.get("type") == "text").strip()
            usage.input_audio_tokens += result.usage.input_tokens
            usage.output_text_tokens += result.usage.output_tokens
            cost += step_cost(stt.pricing, result.usage)
            yield UpEvent("input_transcript", text=transcript)
            if turn.cancelled():
                self.status = "cancelled"
                return
            # 2. chat
            chat = self.steps["chat"]
            messages: list[dict[str, Any]] = []
            if cfg.get("instructions"):
                messages.append({"role": "system", "content": [{"type": "text", "text": cfg["instructions"]}]})
            for h in turn.history:
                if h.get("text"):
                    messages.append({"role": h["role"], "content": [{"type": "text", "text": h["text"]}]})
            messages.append({"role": "user", "content": [{"type": "text", "text": transcript}]})
            kw: dict[str, Any] = {}
            if isinstance(cfg.get("max_response_output_tokens"), int):
                kw["max_tokens"] = cfg["max_response_output_tokens"]
            if cfg.get("temperature") is not None:
                kw["temperature"] = min(2.0, float(cfg["temperature"]))
            call = self._call(turn, chat, messages, **kw)
            audio_out = "audio" in cfg["modalities"]
            kind = "transcript" if audio_out else "text"
            pieces: list[str] = []
            chat_usage: TokenUsage | None = None
            finish = None
            stream = adapter_for(chat.provider).stream(call)
            try:
                for delta in stream:
                    if delta.usage is not None:
                        chat_usage = delta.usage
                    if delta.finish_reason:
                        finish = delta.finish_reason
                    if delta.text:
                        pieces.append(delta.text)
                        yield UpEvent(kind, text=delta.text)
                    if turn.cancelled():
                        self.status = "cancelled"
                        break
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
            answer = "".join(pieces)
            if chat_usage is None:
                chat_usage = TokenUsage(input_tokens=sum(len(m["content"][0]["text"]) for m in messages) // 4,
                                        output_tokens=-(-len(answer) // 4))
                usage.estimated = True
            usage.input_text_tokens += chat_usage.input_tokens
            usage.cached_tokens += chat_usage.cached_input_tokens
            usage.output_text_tokens += chat_usage.output_tokens
            cost += step_cost(chat.pricing, chat_usage)
            if finish == "length":
                self.status = "incomplete"
            if self.status == "cancelled" or not audio_out or not answer.strip():
                return
            # 3. text to speech
            tts = self.steps["tts"]
            call = self._call(turn, tts, [{"role": "user", "content": [{"type": "text", "text": answer}]}],
                              media={"format": "wav", "voice": cfg.get("voice") or "alloy"})
            reader = au.WavStreamReader()
            encoder: au.PcmEncoder | None = None
            out_samples = 0
            chunks = adapter_for(tts.provider).speak_stream(call)
            try:
                for chunk in chunks:
                    if chunk.usage is not None:
                        cost += step_cost(tts.pricing, chunk.usage)
                        usage.input_text_tokens += chunk.usage.input_tokens
                        usage.output_audio_tokens += chunk.usage.output_tokens
                    if chunk.data:
                        if chunk.format and chunk.format not in ("wav", "audio/wav"):
                            raise GatewayError("capability_not_supported",
                                               f"Model '{tts.id}' answered speech as {chunk.format}; the realtime chain needs wav.",
                                               model=tts.id)
                        pcm = reader.feed(chunk.data)
                        if pcm:
                            if encoder is None:
                                encoder = au.PcmEncoder(cfg["output_audio_format"], reader.rate or 24000)
                            out_samples += len(pcm) // 2
                            data = encoder.feed(pcm)
                            if data:
                                yield UpEvent("audio", data=data)
                    if turn.cancelled():
                        self.status = "cancelled"
                        break
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
            if reader.rate:
                usage.audio_out_s = out_samples / reader.rate
        except au.AudioFormatError as exc:  # the input was checked by the worker: this is the TTS answer
            raise GatewayError("provider_error", f"The realtime chain could not use the speech it got: {exc}.",
                               provider=self.steps["tts"].provider.id) from None
        finally:
            usage.cost_usd = round(cost, 10)
            self.usage = usage
        yield UpEvent("usage", usage=usage)
