"""The realtime worker: tasks started off the WebSocket routes (`launch.py`).

- `greet`: post `session.created` once the connection is open (API Gateway accepts posts only
  after `$connect` returned, so this runs right after it, retrying a 410 for a short while).
- `turn`: run one committed turn — read its buffered audio, check its format, govern it like a
  chat request (approval, rate limits, budgets, pre-call hooks), hand it to the model's upstream
  (provider socket or speech chain), and stream what comes back as server events; then record
  its usage (one usage record per turn, route `realtime`, `conversation_id` = the session id),
  add it to the session totals, free the turn slot and send `response.done` with the usage.

A turn stops early when the client cancels (`response.cancel`: the session item is polled every
`LLMGW_REALTIME_CANCEL_POLL_MS`, and an in-process signal is immediate), when the session closes,
or when the client is gone (a post answered 410). Whatever way it ends, its usage is recorded
exactly once: measured when the provider reported it, estimated otherwise.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from contextlib import closing
from typing import Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.config import settings
from llm_gateway.observability import logger
from llm_gateway.realtime import audio as au
from llm_gateway.realtime import signals
from llm_gateway.realtime.protocol import ERROR_CODES, ProtocolError, error_event, new_id, server_event, session_object
from llm_gateway.realtime.sender import EventSender
from llm_gateway.realtime.usage import RealtimeUsage, totals_delta, turn_cost
from llm_gateway.stores.connections import ConnectionGone, ConnectionStore
from llm_gateway.stores.sessions import SessionStore

GREET_RETRY_S = 5.0


def handle(payload: dict[str, Any]) -> dict[str, Any]:
    task = payload.get("realtime_task")
    if task == "greet":
        return greet(payload)
    if task == "turn":
        return run_turn(payload)
    logger.error("unknown realtime task", extra={"task": str(task)[:40]})
    return {"ok": False, "error": "unknown task"}


def greet(payload: dict[str, Any], store: SessionStore | None = None) -> dict[str, Any]:
    from llm_gateway.realtime.protocol import dumps

    store = store or SessionStore()
    conn = payload["connection_id"]
    meta = store.get(conn)
    if meta is None or meta.get("closed_at") is not None:
        return {"ok": False}
    event = server_event("session.created", session=session_object(meta["session_id"], meta["model"], meta["config"],
                                                                      meta["expires_at"]))
    data = dumps(event)
    connections = ConnectionStore(payload["endpoint"])
    end = time.monotonic() + GREET_RETRY_S
    delay = 0.02
    while True:
        try:
            connections.post(conn, data)
            return {"ok": True}
        except ConnectionGone:
            if time.monotonic() > end:
                return {"ok": False}
            time.sleep(delay)
            delay = min(0.25, delay * 2)


class CancelWatch:
    """`cancelled()`: the client cancelled the turn, the session is closing, or the client is gone."""

    def __init__(self, store: SessionStore, connection_id: str, turn_id: str, sender: EventSender) -> None:
        self.store = store
        self.connection_id = connection_id
        self.turn_id = turn_id
        self.sender = sender
        self.event = signals.register(turn_id)
        self.reason: str | None = None
        self._stop = threading.Event()
        interval = float(os.environ.get("LLMGW_REALTIME_CANCEL_POLL_MS", "250")) / 1000
        self._thread = threading.Thread(target=self._poll, args=(max(0.02, interval),), daemon=True, name="rt-cancel")
        self._thread.start()

    def _poll(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                state = self.store.turn_state(self.connection_id)
            except Exception:  # noqa: BLE001 - a failed poll is retried at the next interval
                continue
            if state is None or state.get("closed_at") is not None or state.get("closing") is not None:
                self.reason = self.reason or "session_closed"
                self.event.set()
            elif state.get("cancel_turn") == self.turn_id or state.get("active_turn") != self.turn_id:
                self.reason = self.reason or "client_cancelled"
                self.event.set()
            if self.event.is_set():
                return

    def cancelled(self) -> bool:
        if self.sender.gone:
            self.reason = self.reason or "client_disconnected"
            return True
        if self.event.is_set():
            self.reason = self.reason or "client_cancelled"
            return True
        return False

    def stop(self) -> None:
        self._stop.set()
        signals.forget(self.turn_id)


def _principal(meta: dict[str, Any]) -> Any:
    from llm_gateway.stores.keys import Principal

    scopes = meta.get("scopes")
    return Principal(tenant_id=meta["tenant_id"], user_id=meta["user_id"], key_id=meta.get("key_id") or "unknown",
                     scopes=frozenset(scopes) if isinstance(scopes, list) else None, source=meta.get("source") or "api_key")


def governance_request(meta: dict[str, Any], config: dict[str, Any], history: list[dict[str, str]], turn_id: str) -> Any:
    """The turn as a chat request, for governance (token estimate, hooks) and the usage record:
    the instructions, the text history and the turn's audio (a reference: hooks see text only)."""
    from llm_gateway.api.models import ChatRequest

    messages: list[dict[str, Any]] = []
    if config.get("instructions"):
        messages.append({"role": "system", "content": [{"type": "text", "text": config["instructions"]}]})
    for h in history:
        if h.get("text"):
            messages.append({"role": h["role"], "content": [{"type": "text", "text": h["text"]}]})
    messages.append({"role": "user", "content": [{"type": "audio", "url": f"urn:llmgw:realtime:{meta['session_id']}:{turn_id}"}]})
    body: dict[str, Any] = {"model": meta["model"], "messages": messages, "stream": True,
                            "metadata": {"conversation_id": meta["session_id"]}}
    if isinstance(config.get("max_response_output_tokens"), int):
        body["max_tokens"] = config["max_response_output_tokens"]
    return ChatRequest.model_validate(body)


def check_audio(data: bytes, fmt: str) -> None:
    if fmt == "pcm16" and len(data) % 2:
        raise ProtocolError("invalid_audio_format", "pcm16 audio must be whole 16-bit samples; the turn has an odd number of bytes.")
    if fmt == "wav":
        try:
            au.wav_pcm(data)
        except au.AudioFormatError as exc:
            raise ProtocolError("invalid_audio_format", f"The turn's audio is not a usable WAV file: {exc}.") from None


def trim_history(history: list[dict[str, str]], limit: int) -> list[dict[str, str]]:
    total = 0
    out: list[dict[str, str]] = []
    for h in reversed(history):
        total += len(h.get("text") or "")
        if total > limit and out:
            break
        out.append(h)
    return list(reversed(out))


def run_turn(payload: dict[str, Any], store: SessionStore | None = None) -> dict[str, Any]:
    from llm_gateway.pipeline.context import RequestContext
    from llm_gateway.pipeline.usage import UsageReporter

    store = store or SessionStore()
    conn = payload["connection_id"]
    turn_id = payload["turn_id"]
    meta = payload.get("meta") or store.get(conn) or {}
    config = {**(meta.get("config") or {}), **(payload.get("overrides") or {})}
    sender = EventSender(ConnectionStore(payload["endpoint"]), conn)
    watch = CancelWatch(store, conn, turn_id, sender)
    ctx = RequestContext(principal=_principal(meta), route="realtime", request_id="req_" + uuid.uuid4().hex)
    ctx.attributes["usage_record"] = {"session_id": meta.get("session_id"), "response_id": turn_id,
                                      "turn": int(meta.get("turns") or 0)}
    input_item = payload.get("input_item_id") or new_id("item")
    output_item = new_id("item")
    base = {"response_id": turn_id, "item_id": output_item, "output_index": 0, "content_index": 0}
    audio_out = "audio" in (config.get("modalities") or ["audio", "text"])
    answer: list[str] = []
    user_text: str | None = None
    status = "failed"
    failure: dict[str, Any] | None = None
    upstream: Any = None
    history: list[dict[str, str]] = []
    first_at: float | None = None
    sender.event(server_event("response.created", response={"id": turn_id, "object": "realtime.response",
                                                            "status": "in_progress", "output": [], "usage": None}))
    try:
        from llm_gateway.registry.catalog import get_catalog

        model = get_catalog().resolve(meta["model"])
        ctx.model = model
        left_s = float(meta["expires_at"]) - time.time()
        if left_s <= 0:
            raise ProtocolError("session_expired", "The session reached its maximum duration.")
        from llm_gateway.realtime.upstream import Turn, upstream_for

        upstream = upstream_for(model)
        ctx.attributes["usage_record"]["realtime_transport"] = upstream.transport
        upstream.prepare(config)  # e.g. open the provider socket while the session store is read

        from llm_gateway.pipeline.governance import get_governance
        from llm_gateway.pipeline.parallel import run_all

        gov = get_governance()
        hooked = gov.enabled and bool(gov.tenant_for(ctx).hooks.get("pre_call"))  # tenant config: cached in-process

        def govern(hist: list[dict[str, str]]) -> None:
            request = governance_request(meta, config, hist, turn_id)
            ctx.request = request
            gov.before_call(ctx, request)  # approval, rate limits, budgets, pre-call hooks

        turn_from, turn_to = int(meta["turn_from"]), int(meta["turn_to"])
        tasks = [lambda: store.history(conn), lambda: store.read_audio(conn, turn_from, turn_to)]
        if hooked:  # pre-call hooks see the text history: read it first
            tasks[0] = lambda: (lambda h: (govern(h), h)[1])(store.history(conn))
        else:  # one round trip: history, audio and admission side by side (the estimate is corrected after the call)
            tasks.append(lambda: govern([]))
        results = run_all(tasks)
        for r in results:
            if isinstance(r, BaseException):
                raise r
        history, audio = results[0], results[1]
        check_audio(audio, config["input_audio_format"])
        turn = Turn(session_id=meta["session_id"], response_id=turn_id, input_item_id=input_item, output_item_id=output_item,
                    model=model, config=config, history=history, audio=audio, tenant_id=ctx.tenant_id,
                    request_id=ctx.request_id,
                    deadline_s=time.monotonic() + min(settings().realtime_turn_timeout_s, left_s),
                    cancelled=watch.cancelled)
        with closing(upstream.run(turn)) as events:
            for ev in events:
                if ev.kind == "audio":
                    if first_at is None:
                        first_at = ctx.elapsed_ms()
                    sender.audio(base, ev.data)
                elif ev.kind in ("transcript", "text"):
                    if first_at is None:
                        first_at = ctx.elapsed_ms()
                    answer.append(ev.text)
                    sender.text("response.audio_transcript.delta" if ev.kind == "transcript" else "response.text.delta",
                                base, ev.text)
                elif ev.kind == "input_transcript":
                    user_text = ev.text
                    sender.event(server_event("conversation.item.input_audio_transcription.completed",
                                              item_id=input_item, content_index=0, transcript=ev.text))
                # a cancel (or a client gone) is handled by the upstream itself: it stops the provider
                # and still collects the usage of what was generated
        status = upstream.status
        if watch.cancelled():
            status = "cancelled"
    except ProtocolError as exc:
        failure = {"code": exc.code, "message": exc.message}
    except GatewayError as exc:
        code = exc.code if exc.code in ERROR_CODES else ("invalid_event" if exc.code == "validation_error" else "internal_error")
        failure = {"code": code, "message": exc.detail, "retry_after_s": exc.retry_after_s, "provider": exc.provider}
        if watch.cancelled() and exc.code in ("provider_error", "provider_timeout"):
            failure = None  # the cancel (or the client leaving) ended it
            status = "cancelled"
    except Exception as exc:  # noqa: BLE001 - a turn never dies silently: it ends with an error and its usage
        logger.exception("realtime turn failed", extra={"connection_id": conn})
        failure = {"code": "internal_error", "message": f"The gateway failed while running the turn ({type(exc).__name__})."}
    finally:
        watch.stop()
        if upstream is not None:
            upstream.close()
    if failure is not None:
        status = "failed"
        sender.event(error_event(failure["code"], failure["message"], retry_after_s=failure.get("retry_after_s"),
                                 provider=failure.get("provider")))
    # ---- usage, exactly once, whatever happened
    usage: RealtimeUsage = (upstream.usage if upstream is not None else None) or RealtimeUsage()
    model = ctx.model
    cost = turn_cost(model.pricing, usage) if model is not None else 0.0
    ctx.model_used = model
    ctx.usage = usage.token_usage()
    ctx.cost = cost
    ctx.ttft_ms = first_at
    ctx.finish_reason = {"completed": "stop", "incomplete": "length"}.get(status)
    ctx.outcome = {"completed": "ok", "incomplete": "ok", "cancelled": "cancelled"}.get(status, "error")
    ctx.error_code = failure["code"] if failure else None
    ctx.attributes["usage_record"].update(
        audio_in_seconds=round(usage.audio_in_s, 3), audio_out_seconds=round(usage.audio_out_s, 3),
        audio_input_tokens=usage.input_audio_tokens, audio_output_tokens=usage.output_audio_tokens,
        **({"usage_estimated": True} if usage.estimated else {}),
        **({"cancel_reason": watch.reason} if status == "cancelled" and watch.reason else {}))
    text = "".join(answer)
    new_history: list[dict[str, str]] | None = None
    if status != "failed":
        added = [{"role": "user", "text": user_text or ""}, {"role": "assistant", "text": text}]
        new_history = trim_history(history + added, settings().realtime_history_chars)
    from llm_gateway.pipeline.parallel import run_all

    results = run_all([lambda: UsageReporter().report(ctx),
                       lambda: store.finish_turn(conn, turn_id, totals_delta(usage, cost, status), new_history)])
    for r in results:
        if isinstance(r, Exception):
            logger.error("realtime turn settlement failed", extra={"connection_id": conn, "error": type(r).__name__})
    if results[1] is False:
        logger.info("realtime turn ended after its session closed", extra={"connection_id": conn, "response_id": turn_id})
    # ---- the closing events, after every delta
    sender.flush()
    if audio_out and status != "failed":
        sender.event(server_event("response.audio.done", **base))
        sender.event(server_event("response.audio_transcript.done", **base, transcript=text))
    elif status != "failed":
        sender.event(server_event("response.text.done", **base, text=text))
    content = {"type": "audio", "transcript": text} if audio_out else {"type": "text", "text": text}
    output = [] if status == "failed" and not text else [{
        "id": output_item, "object": "realtime.item", "type": "message", "role": "assistant",
        "status": "completed" if status == "completed" else "incomplete", "content": [content]}]
    details: dict[str, Any] | None = None
    if status == "failed" and failure:
        details = {"type": "failed", "error": {"code": failure["code"], "message": failure["message"]}}
    elif status == "cancelled":
        details = {"type": "cancelled", "reason": watch.reason or "client_cancelled"}
    elif status == "incomplete":
        details = {"type": "incomplete", "reason": "max_output_tokens"}
    sender.event(server_event("response.done", response={
        "id": turn_id, "object": "realtime.response", "status": status, "status_details": details,
        "output": output, "usage": usage.body(cost)}))
    sender.close()
    try:
        store.delete_audio(conn, int(meta.get("turn_from", 0)), int(meta.get("turn_to", 0)))
    except Exception as exc:  # noqa: BLE001 - the items expire anyway (ttl)
        logger.warning("realtime audio cleanup failed", extra={"error": type(exc).__name__})
    return {"ok": failure is None, "status": status, "posted": sender.posted}
