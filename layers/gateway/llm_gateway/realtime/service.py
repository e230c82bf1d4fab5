"""The realtime routes of the WebSocket API: `$connect`, `$default` (client events), `$disconnect`.

`functions/realtime/handler.py` passes each API Gateway WebSocket event here and returns what
comes back. Server events go to the client through `@connections` (never in the route's
answer); a turn runs in a worker (`launch.py`), so no route invocation ever waits for a model.

`$connect` authenticates (the `Authorization: Bearer` / `x-api-key` header, or — browsers
cannot set headers on a WebSocket — the `api_key` query parameter; an upstream Lambda
authorizer's context also works), checks the `inference` scope, resolves the `model` query
parameter to a model with the `realtime` capability that the tenant may use, stores the session
(TTL) and has `session.created` sent. A refusal is the handshake's HTTP status (401, 403, 404,
410, 422, 400) with the problem body; there is no connection to send an `error` event on.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

from llm_gateway.api.errors import GatewayError
from llm_gateway.config import settings
from llm_gateway.observability import logger
from llm_gateway.realtime import launch, signals
from llm_gateway.realtime.protocol import (DEFAULT_CONFIG, ProtocolError, auto_response, decode_audio, dumps, error_event,
                                           merge_config, new_id, parse_client_event, server_event, session_object)
from llm_gateway.stores.connections import ConnectionGone, ConnectionStore, endpoint_for
from llm_gateway.stores.sessions import ConditionFailed, SessionGone, SessionStore, stale_after_s

NO_INPUT = "Nothing to respond to: append audio (input_audio_buffer.append) before response.create."
CLOSE_WAIT_S = 3.0  # how long a close waits for a cancelled turn to record its usage first
OK = {"statusCode": 200}


def _problem(err: GatewayError, request_id: str) -> dict[str, Any]:
    import json

    body = err.to_problem()
    body["instance"] = request_id
    return {"statusCode": err.status, "headers": {**err.response_headers(), "x-request-id": request_id},
            "body": json.dumps(body)}


class RealtimeService:
    def __init__(self, store: SessionStore | None = None, authenticator: Any = None) -> None:
        self._store = store
        self._auth = authenticator

    @property
    def store(self) -> SessionStore:
        if self._store is None:
            self._store = SessionStore()
        return self._store

    @property
    def auth(self) -> Any:
        if self._auth is None:
            from llm_gateway.pipeline.auth import Authenticator

            self._auth = Authenticator()
        return self._auth

    # ------------------------------------------------------------ routing

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        rc = event.get("requestContext") or {}
        route = rc.get("routeKey") or {"CONNECT": "$connect", "DISCONNECT": "$disconnect"}.get(rc.get("eventType"), "$default")
        if route == "$connect":
            return self.connect(event)
        if route == "$disconnect":
            return self.disconnect(event)
        return self.message(event)

    @staticmethod
    def _endpoint(rc: dict[str, Any]) -> str:
        return endpoint_for(rc.get("domainName") or "localhost", rc.get("stage") or "")

    # ------------------------------------------------------------ $connect

    def connect(self, event: dict[str, Any]) -> dict[str, Any]:
        rc = event.get("requestContext") or {}
        request_id = rc.get("requestId") or ("req_" + uuid.uuid4().hex)
        try:
            principal, model = self._admit(event)
        except GatewayError as exc:
            logger.info("realtime connect refused", extra={"code": exc.code, "request_id": request_id})
            return _problem(exc, request_id)
        conn = rc["connectionId"]
        now = time.time()
        session_id = new_id("sess")
        expires = now + settings().realtime_max_s
        endpoint = self._endpoint(rc)
        self.store.create(conn, {
            "session_id": session_id, "connection_id": conn, "endpoint": endpoint, "model": model.id,
            "tenant_id": principal.tenant_id, "user_id": principal.user_id, "key_id": principal.key_id,
            "scopes": sorted(principal.scopes) if principal.scopes is not None else None, "source": principal.source,
            "config": dict(DEFAULT_CONFIG), "connected_at": now, "expires_at": expires, "last_active": now,
        })
        logger.info("realtime session opened", extra={"session_id": session_id, "tenant_id": principal.tenant_id,
                                                        "model": model.id})
        try:
            launch.launch({"realtime_task": "greet", "connection_id": conn, "endpoint": endpoint})
        except Exception as exc:  # noqa: BLE001 - the session works without its greeting
            logger.error("realtime greeting launch failed", extra={"session_id": session_id, "error": type(exc).__name__})
        return OK

    def _admit(self, event: dict[str, Any]) -> tuple[Any, Any]:
        from llm_gateway.pipeline.auth import api_key_from, require_scope
        from llm_gateway.registry.catalog import Catalog, get_catalog

        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        query = event.get("queryStringParameters") or {}
        authorizer = (event.get("requestContext") or {}).get("authorizer") or None
        if authorizer and "lambda" not in authorizer and "jwt" not in authorizer and authorizer.get("tenant_id"):
            authorizer = {"lambda": authorizer}  # a WebSocket REQUEST authorizer's context is flat
        if api_key_from(headers) is None and query.get("api_key") and not (authorizer and self.auth.from_authorizer(authorizer)):
            principal = self.auth.check_key(str(query["api_key"]).strip())
        else:
            principal = self.auth.authenticate(headers, authorizer)
        require_scope(principal, "realtime")
        name = query.get("model")
        if not name:
            raise GatewayError("validation_error", "Name the model: connect to /realtime?model=<a model with the realtime capability>.",
                               errors=[{"path": "model", "message": "required query parameter"}])
        model = get_catalog().resolve(str(name))
        Catalog.require(model, frozenset({"realtime"}))
        from llm_gateway.pipeline.context import RequestContext
        from llm_gateway.pipeline.governance import get_governance

        gov = get_governance()
        if gov.enabled:
            gov.check_model(RequestContext(principal=principal, route="realtime"), model)
        from llm_gateway.realtime.upstream import upstream_for

        upstream_for(model).check(DEFAULT_CONFIG)  # a chain model must name usable stt/chat/tts steps
        return principal, model

    # ------------------------------------------------------------ $default

    def message(self, event: dict[str, Any]) -> dict[str, Any]:
        rc = event.get("requestContext") or {}
        conn = rc.get("connectionId") or ""
        connections = ConnectionStore(self._endpoint(rc))
        body = event.get("body")
        if event.get("isBase64Encoded") and isinstance(body, str):
            try:
                body = base64.b64decode(body)
            except ValueError:
                body = b"\0"
        client_event_id = None
        try:
            ev = parse_client_event(body)
            client_event_id = ev.get("event_id")
            kind = ev["type"]
            if kind == "ping":
                self._send(connections, conn, server_event("pong", **({"ping_id": ev["ping_id"]} if "ping_id" in ev else {})))
            elif kind == "input_audio_buffer.append":
                self._append(conn, ev)
            elif kind == "session.update":
                self._session_update(connections, conn, ev)
            elif kind == "input_audio_buffer.commit":
                self._commit(connections, rc, conn)
            elif kind == "input_audio_buffer.clear":
                self._live(conn)
                self.store.clear_buffer(conn)
                self._send(connections, conn, server_event("input_audio_buffer.cleared"))
            elif kind == "response.create":
                self._response_create(connections, rc, conn, ev)
            elif kind == "response.cancel":
                self._cancel(conn)
            elif kind == "session.close":
                self.close(conn, connections, reason="client_close", notify=True)
        except ProtocolError as exc:
            self._send(connections, conn, error_event(exc.code, exc.message, param=exc.param, client_event_id=client_event_id,
                                                      **exc.extra))
            if exc.code in ("session_expired",):
                self.close(conn, connections, reason="max_duration", notify=True)
        except SessionGone:
            self._send(connections, conn, error_event("session_closed", "The session is closed.", client_event_id=client_event_id))
        except GatewayError as exc:
            self._send(connections, conn, error_event("internal_error" if exc.code not in ("forbidden",) else exc.code,
                                                      exc.detail, client_event_id=client_event_id))
        except Exception as exc:  # noqa: BLE001 - the client gets an error event, never silence
            logger.exception("realtime event failed", extra={"connection_id": conn})
            self._send(connections, conn, error_event("internal_error", f"The gateway failed handling the event ({type(exc).__name__}).",
                                                      client_event_id=client_event_id))
        return OK

    def _send(self, connections: ConnectionStore, conn: str, event: dict[str, Any]) -> None:
        try:
            connections.post(conn, dumps(event))
        except ConnectionGone:
            pass

    def _live(self, conn: str) -> dict[str, Any]:
        meta = self.store.live(conn)
        if float(meta.get("expires_at") or 0) <= time.time():
            raise ProtocolError("session_expired", "The session reached its maximum duration (LLMGW_REALTIME_MAX_S).")
        return meta

    def _state_error(self, meta: dict[str, Any] | None, *, empty_code: str, empty_message: str,
                     active_is_error: bool = True) -> ProtocolError:
        if meta is None or meta.get("closed_at") is not None or meta.get("closing") is not None:
            return ProtocolError("session_closed", "The session is closed.")
        if float(meta.get("expires_at") or 0) <= time.time():
            return ProtocolError("session_expired", "The session reached its maximum duration (LLMGW_REALTIME_MAX_S).")
        if meta.get("active_turn") and active_is_error and float(meta.get("active_since") or 0) >= time.time() - stale_after_s():
            return ProtocolError("conversation_already_has_active_response",
                                 f"A response is already running ({meta['active_turn']}); wait for its response.done or "
                                 "send response.cancel (one turn at a time).")
        return ProtocolError(empty_code, empty_message)

    def _append(self, conn: str, ev: dict[str, Any]) -> None:
        from llm_gateway.realtime.audio import sniff_container

        data = decode_audio(ev)
        limit = settings().realtime_max_turn_audio_bytes
        try:
            state = self.store.reserve_append(conn, len(data), limit)
        except ConditionFailed as exc:
            meta = exc.item
            if meta is None or meta.get("closed_at") is not None or meta.get("closing") is not None:
                raise ProtocolError("session_closed", "The session is closed.") from None
            raise ProtocolError("input_audio_buffer_full",
                                f"The audio buffer holds {int(meta.get('buffered_bytes') or 0)} bytes; {len(data)} more would "
                                f"pass the limit of {limit} bytes per turn (LLMGW_REALTIME_MAX_TURN_AUDIO_BYTES). "
                                "Commit or clear it first.", "audio", limit_bytes=limit) from None
        buffer_no, seq = int(state["buffer_no"]), int(state["append_seq"])
        if int(state["buffered_bytes"]) == len(data):  # the buffer's first piece: is it the declared format?
            meta = state
            fmt = (meta.get("config") or {}).get("input_audio_format", "pcm16")
            problem = None
            if fmt == "wav" and not (data[:4] == b"RIFF" and (len(data) < 12 or data[8:12] == b"WAVE")):
                problem = "the session's input_audio_format is wav, but the audio does not start with a RIFF/WAVE header"
            elif fmt != "wav" and (found := sniff_container(data[:16])):
                problem = f"the audio is {found}, but the session's input_audio_format is {fmt} (raw samples)"
            if problem:
                self.store.release_append(conn, buffer_no, len(data))
                raise ProtocolError("invalid_audio_format", problem[0].upper() + problem[1:] + ".", "audio")
            if float(meta.get("expires_at") or 0) <= time.time():
                raise ProtocolError("session_expired", "The session reached its maximum duration (LLMGW_REALTIME_MAX_S).")
        self.store.put_audio(conn, buffer_no, seq, data)

    def _session_update(self, connections: ConnectionStore, conn: str, ev: dict[str, Any]) -> None:
        meta = self._live(conn)
        config = merge_config(meta.get("config") or dict(DEFAULT_CONFIG), ev.get("session"), meta["model"])
        try:
            self.store.set_config(conn, config)
        except ConditionFailed:
            raise ProtocolError("session_closed", "The session is closed.") from None
        self._send(connections, conn, server_event("session.updated", session=session_object(
            meta["session_id"], meta["model"], config, meta["expires_at"])))

    def _launch_turn(self, rc: dict[str, Any], conn: str, turn_id: str, meta: dict[str, Any],
                     overrides: dict[str, Any] | None = None) -> None:
        payload = {"realtime_task": "turn", "connection_id": conn, "endpoint": self._endpoint(rc), "turn_id": turn_id,
                   "input_item_id": meta.get("turn_item") or new_id("item"), "meta": meta}
        if overrides:
            payload["overrides"] = overrides
        try:
            launch.launch(payload)
        except Exception as exc:  # noqa: BLE001 - the worker never started: free the turn slot, tell the client
            logger.error("realtime worker launch failed", extra={"connection_id": conn, "error": type(exc).__name__})
            self.store.finish_turn(conn, turn_id, {"turns_failed": 1}, None)
            raise ProtocolError("internal_error", f"The gateway could not start the response ({type(exc).__name__}); retry.") from None

    def _commit(self, connections: ConnectionStore, rc: dict[str, Any], conn: str) -> None:
        item_id = new_id("item")
        try:
            meta = self.store.commit(conn, item_id)
        except ConditionFailed as exc:
            taken = self.store.take_implicit_commit(conn) if exc.item and not exc.item.get("closing") else None
            if taken is not None:  # response.create already committed this audio (messages ran out of order)
                self._send(connections, conn, server_event("input_audio_buffer.committed", previous_item_id=None,
                                                           item_id=taken.get("turn_item")))
                return
            raise self._state_error(exc.item, active_is_error=False, empty_code="input_audio_buffer_commit_empty",
                                    empty_message="Nothing to commit: append audio first (input_audio_buffer.append).") from None
        if float(meta.get("expires_at") or 0) <= time.time():
            raise ProtocolError("session_expired", "The session reached its maximum duration (LLMGW_REALTIME_MAX_S).")
        item_id = meta.get("pending_item") or item_id
        self._send(connections, conn, server_event("input_audio_buffer.committed", previous_item_id=None, item_id=item_id))
        if auto_response(meta.get("config") or {}):
            turn_id = new_id("resp")
            try:
                meta = self.store.start_turn(conn, turn_id)
            except ConditionFailed as exc:  # a turn is running: the audio waits for the next response.create
                raise self._state_error(exc.item, empty_code="no_input", empty_message="Nothing to respond to.") from None
            self._launch_turn(rc, conn, turn_id, meta)

    def _response_create(self, connections: ConnectionStore, rc: dict[str, Any], conn: str, ev: dict[str, Any]) -> None:
        overrides = None
        response = ev.get("response")
        if response is not None:
            if not isinstance(response, dict):
                raise ProtocolError("invalid_event", "'response' must be an object.", "response")
            allowed = {"modalities", "instructions", "voice", "temperature", "max_response_output_tokens", "output_audio_format"}
            picked = {("max_response_output_tokens" if k == "max_output_tokens" else k): v for k, v in response.items()
                      if k in allowed or k == "max_output_tokens"}
            unknown = set(response) - allowed - {"max_output_tokens", "conversation", "metadata"}
            if unknown:
                raise ProtocolError("invalid_event", f"Unsupported response field(s): {', '.join(sorted(unknown))}.",
                                    f"response.{sorted(unknown)[0]}")
            if picked:
                try:
                    merged = merge_config(dict(DEFAULT_CONFIG), picked, "")
                except ProtocolError as exc:
                    raise ProtocolError("invalid_event", exc.message, (exc.param or "").replace("session.", "response.")) from None
                overrides = {k: merged[k] for k in picked}
        turn_id = new_id("resp")
        try:
            meta = self.store.start_turn(conn, turn_id)
        except ConditionFailed as exc:
            item = exc.item or {}
            running = item.get("active_turn") and float(item.get("active_since") or 0) >= time.time() - stale_after_s()
            if item and not running and int(item.get("buffered_bytes") or 0) > 0 \
                    and item.get("closing") is None and item.get("closed_at") is None:
                try:  # audio appended but not (yet) committed: commit it now
                    meta = self.store.start_uncommitted(conn, turn_id, new_id("item"))
                except ConditionFailed as exc2:
                    raise self._state_error(exc2.item, empty_code="no_input", empty_message=NO_INPUT) from None
            else:
                raise self._state_error(exc.item, empty_code="no_input", empty_message=NO_INPUT) from None
        if float(meta.get("expires_at") or 0) <= time.time():
            raise ProtocolError("session_expired", "The session reached its maximum duration (LLMGW_REALTIME_MAX_S).")
        self._launch_turn(rc, conn, turn_id, meta, overrides)

    def _cancel(self, conn: str) -> None:
        try:
            turn_id = self.store.request_cancel(conn)
        except ConditionFailed:
            raise ProtocolError("response_cancel_not_active", "There is no response to cancel.") from None
        signals.signal(turn_id)

    # ------------------------------------------------------------ close / $disconnect

    def disconnect(self, event: dict[str, Any]) -> dict[str, Any]:
        rc = event.get("requestContext") or {}
        conn = rc.get("connectionId") or ""
        self.close(conn, ConnectionStore(self._endpoint(rc)), reason=f"disconnect:{rc.get('disconnectStatusCode', '')}".rstrip(":"),
                   notify=False)
        return OK

    def close(self, conn: str, connections: ConnectionStore, *, reason: str, notify: bool) -> dict[str, Any] | None:
        """End the session once: cancel a running turn (and give it a moment to record its usage),
        mark the session closed, record its usage summary, tell the client when it is still there
        (`session.closed` with the usage, then the server closes the connection)."""
        meta = self.store.begin_close(conn, reason)
        if meta is None:
            return None
        if meta.get("active_turn"):
            signals.signal(str(meta["active_turn"]))
            end = time.monotonic() + CLOSE_WAIT_S
            while time.monotonic() < end:
                state = self.store.turn_state(conn)
                if not state or not state.get("active_turn"):
                    break
                time.sleep(0.05)
        final = self.store.finish_close(conn)
        if final is None:
            return None
        from llm_gateway.realtime.usage import summary_of

        closed_at = float(final["closed_at"])
        summary = summary_of(final, closed_at)
        summary["incomplete_turn"] = bool(final.get("active_turn"))
        summary["reason"] = str(final.get("close_reason") or reason)
        self._record_summary(final, summary, closed_at)
        if notify:
            self._send(connections, conn, server_event("session.closed", session_id=final["session_id"],
                                                       reason=summary["reason"], usage=summary))
            try:
                connections.close(conn)
            except Exception as exc:  # noqa: BLE001 - API Gateway closes idle connections anyway
                logger.warning("realtime close failed", extra={"error": type(exc).__name__})
        try:
            self.store.delete_audio(conn)
        except Exception as exc:  # noqa: BLE001 - the items expire anyway (ttl)
            logger.warning("realtime audio cleanup failed", extra={"error": type(exc).__name__})
        return summary

    @staticmethod
    def _record_summary(meta: dict[str, Any], summary: dict[str, Any], closed_at: float) -> None:
        record = {**summary, "tenant_id": meta["tenant_id"], "user_id": meta["user_id"], "key_id": meta.get("key_id"),
                  "route": "realtime", "timestamp": closed_at}
        record.pop("input_token_details", None)
        record.pop("output_token_details", None)
        logger.info("realtime session closed", extra={k: v for k, v in record.items() if v is not None})
        try:
            from llm_gateway.stores.usage import UsageStore

            UsageStore().record_session(record)
        except Exception as exc:  # noqa: BLE001 - the log line above keeps the figures
            logger.error("realtime usage summary not stored", extra={"session_id": meta.get("session_id"),
                                                                      "error": type(exc).__name__})


_service: RealtimeService | None = None


def realtime_service() -> RealtimeService:
    global _service
    if _service is None:
        _service = RealtimeService()
    return _service


def _reset() -> None:
    global _service
    _service = None


def _register_reset() -> None:
    from llm_gateway import resets

    resets.register(_reset)


_register_reset()
