"""Output modalities on `POST /chat/completions`: the model's capabilities pick what runs.

| model capability   | adapter method                      | answer                                      |
| ------------------ | ----------------------------------- | ------------------------------------------- |
| `stt`              | `transcribe(call)`                  | a text part (the transcript)                |
| `tts`              | `speak(call)` / `speak_stream(call)`| an `audio` part, or audio chunks when streamed |
| `image_generation` | `generate_image(call)`              | `image` part(s) (and text, for chat image models) |
| `video_generation` | `start_async` + `poll_async`        | a `video` part                              |

`ChatPipeline` hands a request here, after its own preparation (model, governance, tools, media
in), when the resolved model has one of these capabilities. Video models whose provider runs
long tasks normally become jobs before this (`llm_gateway/jobs`: polled in the invocation up to
`LLMGW_SYNC_POLL_LIMIT_S`, then 202); a video model that is not run as a job is polled here
within the request's total timeout.

Generated media arrive from the adapters as `data:` URLs. Each file is checked (its bytes must be
the part's kind), stored with `FileStorage.put` under `generated/<tenant>/…` and answered as the
contract's content part with a presigned URL: `{"type": "image", "url": "https://…"}`. The contract's
parts take no other field, so what a client needs besides the URL is in the documented
response-level extension `media`: `[{"type", "url", "media_type", "bytes", "expires_at"}]`, one
entry per stored file in content order. URLs expire after `LLMGW_MEDIA_URL_TTL_S` (default 3600 s).

Streaming (`stream: true`, models with `stream`): speech arrives in chunks directly (nothing is
stored); the SSE frames are the chat stream's, with audio in the delta:

    data: {"id": "gen_…", "model": "mock::tts", "delta": {"role": "assistant"}}
    data: {"id": "gen_…", "model": "mock::tts", "delta": {"audio": {"data": "<base64>", "format": "wav"}}}
    …
    data: {"id": "gen_…", "model": "mock::tts", "delta": {}, "finish_reason": "stop", "usage": {…}}
    data: [DONE]

Concatenating the decoded `data` of every chunk gives the whole file in `format`. A transcript
streams as one `delta.content`. Errors follow the chat stream's rules (before the first chunk: an
ordinary error response; after: `event: error` with the problem body, no `[DONE]`).

Options come from the request's `media` extension (`media/generation.py` lists and checks them).
Usage adds the media units the model is priced by (`images`, `seconds`, `characters`) to the
usage body and the usage record; cost comes from the catalog's `per_image` / `per_second` /
`per_character` prices.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.api.render import SSE_DONE, response_body, sse_data, sse_error, usage_body
from llm_gateway.media.generation import check_options, decode_data_url, prompt_of
from llm_gateway.media.sniff import EXTENSIONS, PART_MEDIA, sniff
from llm_gateway.outbound.control import CANCELLED, bind, bound, unbind
from llm_gateway.pipeline.fallback import run_parallel, run_sequential
from llm_gateway.providers import adapter_for
from llm_gateway.providers.base import AudioChunk, ChatResult, ProviderAdapter, TokenUsage

if TYPE_CHECKING:
    from llm_gateway.pipeline.chat import ChatPipeline
    from llm_gateway.pipeline.context import RequestContext
    from llm_gateway.pipeline.invoke import Attempt, CallPlan
    from llm_gateway.registry.catalog import ModelSpec

# capability -> modality, in the order they are looked for
MODALITY_BY_CAPABILITY = (("stt", "transcription"), ("tts", "speech"), ("image_generation", "image"),
                          ("video_generation", "video"))
OUTPUT_CAPABILITIES = frozenset(c for c, _ in MODALITY_BY_CAPABILITY)
GENERATED_PARTS = {"image", "audio", "video"}
# extra media types a provider may answer with (besides what media-in accepts)
_EXTRA_OUTPUT = {"audio": frozenset({"audio/aac", "audio/pcm", "audio/opus"})}


def output_modality(model: "ModelSpec | None") -> str | None:
    """The output modality a model's capabilities pick, or None for ordinary chat models."""
    if model is None or not (model.capabilities & OUTPUT_CAPABILITIES):
        return None
    for capability, modality in MODALITY_BY_CAPABILITY:
        if capability in model.capabilities:
            return modality
    return None


def url_ttl_s() -> int:
    return max(60, min(604800, int(os.environ.get("LLMGW_MEDIA_URL_TTL_S", "3600"))))


class MediaOutputs:
    """Runs a prepared plan through the model's modality method and renders the answer."""

    def __init__(self, files: Any = None) -> None:
        self._files = files

    @property
    def files(self) -> Any:
        if self._files is None:
            from llm_gateway.stores.files import FileStorage

            self._files = FileStorage()
        return self._files

    # ------------------------------------------------------------ checks and calls

    def _check(self, plan: "CallPlan", modality: str, model: "ModelSpec") -> None:
        request = plan.request
        check_options(request.media, modality, model.id)
        if modality == "transcription":
            if not any(p.type == "audio" for m in request.messages for p in m.content):
                raise GatewayError("validation_error", f"'{model.id}' transcribes speech: send the audio as an audio content part.",
                                   errors=[{"path": "messages", "message": "no audio part"}])
        else:
            prompt_of(request)
        if request.stream and modality not in ("speech", "transcription"):
            raise GatewayError("capability_not_supported", f"'{model.id}' generates {modality}s, which cannot be streamed.",
                               model=model.id)
        if request.tools:
            raise GatewayError("capability_not_supported", f"'{model.id}' generates {modality}; it does not call tools.",
                               model=model.id)

    def _start(self, pipeline: "ChatPipeline", plan: "CallPlan") -> Any:
        media = (getattr(plan, "extra", None) or {}).get("media")

        def start(model: "ModelSpec") -> "Attempt":
            attempt = pipeline.invoker.attempt(plan, model)
            if media and "media" not in attempt.call.extra:
                attempt.call.extra["media"] = media
            return attempt

        return start

    @staticmethod
    def _adapter(attempt: "Attempt", modality: str) -> ProviderAdapter:
        model = attempt.call.model
        if output_modality(model) != modality:
            raise GatewayError("capability_not_supported", f"'{model.id}' does not generate {modality}.", model=model.id)
        adapter = adapter_for(model.provider)
        ProviderAdapter.check(adapter, attempt.call)  # content parts the provider takes at all
        return adapter

    def _run(self, plan: "CallPlan", start: Any, run: Any, dispose: Any = None) -> tuple["Attempt", Any]:
        if plan.strategy == "parallel" and len(plan.models) > 1:
            return run_parallel(plan, start, run, dispose=dispose or (lambda _v: None))
        return run_sequential(plan, start, run)

    def _buffered(self, attempt: "Attempt", modality: str) -> ChatResult:
        control = attempt.control
        try:
            adapter = self._adapter(attempt, modality)
            with bound(control):
                if modality == "image":
                    return adapter.generate_image(attempt.call)
                if modality == "speech":
                    return adapter.speak(attempt.call)
                if modality == "transcription":
                    return adapter.transcribe(attempt.call)
                return self._video(adapter, attempt)
        except GatewayError as exc:
            raise control.translate(exc) from None
        except Exception as exc:  # noqa: BLE001 - a broken adapter must not escape as a 500 without a provider
            raise control.translate(_adapter_failure(attempt, exc)) from None
        finally:
            control.release()

    @staticmethod
    def _video(adapter: ProviderAdapter, attempt: "Attempt") -> ChatResult:
        """A video task polled within the request's total timeout (jobs take the longer ones)."""
        from llm_gateway.config import settings

        call = attempt.call
        handle = adapter.start_async(call)
        interval = max(0.01, settings().sync_poll_interval_s)
        while True:
            done, result = adapter.poll_async(call, handle)
            if done and result is not None:
                return result
            if call.deadline.remaining() <= interval:
                adapter.cancel_async(call, handle)
                raise GatewayError("provider_timeout", f"'{call.model.id}' did not finish the video within the request's total timeout; "
                                   "send it with \"async\": true to run it as a job.", provider=call.model.provider.id,
                                   timeout="total")
            time.sleep(interval)
            interval = min(interval * 1.5, 5.0)

    # ------------------------------------------------------------ buffered

    def complete(self, pipeline: "ChatPipeline", ctx: "RequestContext", plan: "CallPlan") -> dict[str, Any]:
        modality = output_modality(ctx.model)
        assert modality is not None and ctx.model is not None
        self._check(plan, modality, ctx.model)
        attempt, result = self._run(plan, self._start(pipeline, plan), lambda a: self._buffered(a, modality))
        model = attempt.call.model
        pipeline._answered_by(ctx, plan, model)
        pipeline._trail(ctx, plan)
        ctx.usage = result.usage
        ctx.finish_reason = result.finish_reason
        _note_usage(ctx, modality, result.usage, [])
        cost = pipeline.usage.price(ctx)
        governance = getattr(pipeline, "governance", None)
        if governance is not None:  # 10: post-response hooks see transcripts / text parts (a block is still charged)
            result.content = governance.after_response(ctx, result.content)
        content, media = self.store(ctx.tenant_id, result.content, provider=model.provider.id)
        _note_usage(ctx, modality, result.usage, media)
        body = response_body(
            response_id="gen_" + ctx.request_id.removeprefix("req_"), model_used=model.id, provider=model.provider.id,
            content=content, tool_calls=[], finish_reason=result.finish_reason, usage=result.usage, cost=cost,
            fallback_used=ctx.fallback_used,
        )
        if media:
            body["media"] = media
        pipeline.usage.report(ctx)
        return body

    def store(self, tenant_id: str, parts: list[dict[str, Any]], *, provider: str | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """`data:` media parts -> stored files with presigned URLs; (content, media extension)."""
        content: list[dict[str, Any]] = []
        media: list[dict[str, Any]] = []
        ttl = url_ttl_s()
        for part in parts:
            url = part.get("url")
            kind = part.get("type")
            if kind not in GENERATED_PARTS or not isinstance(url, str) or not url.startswith("data:"):
                content.append(part)
                continue
            try:
                declared, data = decode_data_url(url)
            except ValueError:
                raise GatewayError("provider_error", "The provider returned media that could not be decoded.", provider=provider) from None
            real = sniff(data)
            if real is None and declared in _EXTRA_OUTPUT.get(kind, ()):
                real = declared  # raw formats without a signature (PCM, ADTS AAC)
            if real is None or (real not in PART_MEDIA[kind] and real not in _EXTRA_OUTPUT.get(kind, ())):
                raise GatewayError("provider_error", f"The provider returned a {kind} that is {real or 'not a recognised format'}.",
                                   provider=provider)
            ext = EXTENSIONS.get(real) or real.rsplit("/", 1)[-1]
            obj = self.files.put(tenant_id, data, real, kind="generated", ext=ext, expires_in_s=ttl)
            content.append({"type": kind, "url": obj.url})
            media.append({"type": kind, "url": obj.url, "media_type": real, "bytes": len(data), "expires_at": obj.expires_at})
        return content, media

    # ------------------------------------------------------------ streamed

    def stream(self, pipeline: "ChatPipeline", ctx: "RequestContext", plan: "CallPlan") -> Iterator[str]:
        """SSE frames (see the module docstring). Raises before the first chunk, like chat streams."""
        modality = output_modality(ctx.model)
        assert modality is not None and ctx.model is not None
        self._check(plan, modality, ctx.model)
        start = self._start(pipeline, plan)
        if modality == "transcription":
            attempt, result = self._run(plan, start, lambda a: self._buffered(a, modality))
            pipeline._answered_by(ctx, plan, attempt.call.model)
            pipeline._trail(ctx, plan)
            return self._text_frames(pipeline, ctx, attempt, result)
        attempt, opened = self._run(plan, start, self._open_speech, dispose=lambda o: o[1].close())
        pipeline._answered_by(ctx, plan, attempt.call.model)
        pipeline._trail(ctx, plan)
        return self._speech_frames(pipeline, ctx, attempt, *opened)

    def _open_speech(self, attempt: "Attempt") -> tuple[list[AudioChunk], Iterator[AudioChunk]]:
        """The provider's speech stream, up to its first audio bytes (falling back before them)."""
        control = attempt.control
        try:
            chunks = self._adapter(attempt, "speech").speak_stream(attempt.call)
        except GatewayError as exc:
            control.release()
            raise control.translate(exc) from None
        guarded = _guarded(chunks, attempt)
        head: list[AudioChunk] = []
        for chunk in guarded:  # errors propagate: the guard released the attempt
            head.append(chunk)
            if chunk.data:
                break
        return head, guarded

    def _speech_frames(self, pipeline: "ChatPipeline", ctx: "RequestContext", attempt: "Attempt",
                       head: list[AudioChunk], rest: Iterator[AudioChunk]) -> Iterator[str]:
        model_id = attempt.call.model.id
        chunk_id = "gen_" + ctx.request_id.removeprefix("req_")
        sent = 0
        completed = False
        import base64

        def chunks() -> Iterator[AudioChunk]:
            yield from head
            yield from rest

        try:
            yield sse_data({"id": chunk_id, "model": model_id, "delta": {"role": "assistant"}})
            for chunk in chunks():
                if chunk.usage is not None:
                    ctx.usage = chunk.usage
                if not chunk.data:
                    continue
                if ctx.ttft_ms is None:
                    ctx.ttft_ms = ctx.elapsed_ms()
                sent += len(chunk.data)
                yield sse_data({"id": chunk_id, "model": model_id,
                                "delta": {"audio": {"data": base64.b64encode(chunk.data).decode("ascii"), "format": chunk.format}}})
            completed = True
            ctx.finish_reason = "stop"
            self._settle(pipeline, ctx, sent)
            yield sse_data({"id": chunk_id, "model": model_id, "delta": {}, "finish_reason": "stop",
                            "usage": usage_body(ctx.usage, ctx.cost)})
            yield SSE_DONE
        except GatewayError as exc:
            if exc.extra.get("cancelled") or attempt.control.reason == CANCELLED:
                ctx.outcome = "cancelled"
            else:
                pipeline._fail(ctx, exc)
                self._settle(pipeline, ctx, sent)
                problem = exc.to_problem()
                problem["instance"] = ctx.request_id
                problem["usage"] = usage_body(ctx.usage, ctx.cost)
                yield sse_error(problem)
        except GeneratorExit:
            ctx.outcome = "cancelled"
            raise
        finally:
            close = getattr(rest, "close", None)
            if close is not None:
                close()
            if not completed:
                self._settle(pipeline, ctx, sent)
            pipeline.usage.report(ctx)

    def _settle(self, pipeline: "ChatPipeline", ctx: "RequestContext", sent: int) -> None:
        if ctx.usage is None:
            ctx.usage = TokenUsage(characters=len(prompt_of(ctx.request, required=False)) if ctx.request else 0)
            ctx.attributes.setdefault("usage_record", {})["usage_estimated"] = True
        _note_usage(ctx, "speech", ctx.usage, [{"bytes": sent}] if sent else [])
        pipeline.usage.price(ctx)

    def _text_frames(self, pipeline: "ChatPipeline", ctx: "RequestContext", attempt: "Attempt",
                     result: ChatResult) -> Iterator[str]:
        model_id = attempt.call.model.id
        chunk_id = "gen_" + ctx.request_id.removeprefix("req_")
        try:
            yield sse_data({"id": chunk_id, "model": model_id, "delta": {"role": "assistant"}})
            text = "".join(p.get("text", "") for p in result.content if p.get("type") == "text")
            if text:
                ctx.ttft_ms = ctx.elapsed_ms()
                yield sse_data({"id": chunk_id, "model": model_id, "delta": {"content": text}})
            ctx.usage = result.usage
            ctx.finish_reason = result.finish_reason
            _note_usage(ctx, "transcription", result.usage, [])
            pipeline.usage.price(ctx)
            yield sse_data({"id": chunk_id, "model": model_id, "delta": {}, "finish_reason": result.finish_reason,
                            "usage": usage_body(ctx.usage, ctx.cost)})
            yield SSE_DONE
        except GeneratorExit:
            ctx.outcome = "cancelled"
            raise
        finally:
            if ctx.usage is None:
                ctx.usage = result.usage
                pipeline.usage.price(ctx)
            pipeline.usage.report(ctx)


def _guarded(chunks: Iterator[AudioChunk], attempt: "Attempt") -> Iterator[AudioChunk]:
    """Each step of the adapter's generator under the attempt's control (deadlines, abort), the
    first audio bytes marking the first token; the provider stream is closed however it ends."""
    control = attempt.control
    try:
        while True:
            token = bind(control)
            try:
                chunk = next(chunks)
            except StopIteration:
                return
            except GatewayError as exc:
                raise control.translate(exc) from None
            except Exception as exc:  # noqa: BLE001
                raise control.translate(_adapter_failure(attempt, exc)) from None
            finally:
                unbind(token)
            if chunk.data and control.first_token_at is None:
                control.mark_first_token()
            if control.reason is not None or control.due() is not None:
                control.check()
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            try:
                close()
            except Exception:  # noqa: BLE001
                pass
        control.release()


def _note_usage(ctx: "RequestContext", modality: str, usage: TokenUsage | None, media: list[dict[str, Any]]) -> None:
    """Media units in the usage record (metadata only)."""
    record = ctx.attributes.setdefault("usage_record", {})
    record["modality"] = modality
    if usage is not None:
        if usage.images:
            record["images"] = usage.images
        if usage.seconds:
            record["media_seconds"] = round(usage.seconds, 3)
        if usage.characters:
            record["characters"] = usage.characters
    if media:
        record["media_bytes"] = sum(int(m.get("bytes") or 0) for m in media)


def _adapter_failure(attempt: "Attempt", exc: Exception) -> GatewayError:
    from llm_gateway.observability import logger

    pid = attempt.call.model.provider.id
    logger.error("provider adapter failed", extra={"provider": pid, "error_type": type(exc).__name__})
    return GatewayError("provider_error", f"Provider '{pid}' adapter failed ({type(exc).__name__}).", provider=pid)


_outputs: MediaOutputs | None = None


def media_outputs() -> MediaOutputs:
    global _outputs
    if _outputs is None:
        _outputs = MediaOutputs()
    return _outputs


def _reset() -> None:
    global _outputs
    _outputs = None


try:
    from llm_gateway import resets as _resets

    _resets.register(_reset)
except (ImportError, AttributeError):  # pragma: no cover
    pass
