"""The realtime wire protocol: client events in, server events out, error codes, size limits.

Events follow the OpenAI Realtime API (beta naming: `response.audio.delta`, …) so its clients
work against the gateway unchanged; the README's "Realtime" section is the reference. Every
server event is a JSON text message of at most `FRAME_BYTES` (API Gateway's WebSocket frame
limit), so it is one frame on the wire: audio and long text are split into several deltas.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any

from llm_gateway.realtime.audio import FORMATS

FRAME_BYTES = 32 * 1024  # API Gateway WebSocket frame limit: every server event fits one frame
MESSAGE_BYTES = 128 * 1024  # API Gateway WebSocket message limit (client events; post_to_connection)
AUDIO_DELTA_BYTES = 23_760  # raw audio per delta: base64 ≈ 31.7 KB, plus the envelope < 32 KB; even (pcm16 samples)
TEXT_DELTA_CHARS = 4000

CLIENT_EVENTS = frozenset({
    "session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear",
    "response.create", "response.cancel", "session.close", "ping",
})

# code -> (error type, meaning) — the README lists these
ERROR_CODES: dict[str, tuple[str, str]] = {
    "invalid_json": ("invalid_request_error", "the message is not a JSON object"),
    "unknown_event": ("invalid_request_error", "the event type is not one the gateway knows"),
    "invalid_event": ("invalid_request_error", "a field of the event is missing or wrong (see `param`)"),
    "message_too_large": ("invalid_request_error", "the message is larger than 128 KB"),
    "invalid_audio": ("invalid_request_error", "`audio` is not base64"),
    "invalid_audio_format": ("invalid_request_error", "the audio is not in the session's input_audio_format"),
    "input_audio_buffer_full": ("invalid_request_error", "the turn's buffered audio would exceed the limit"),
    "input_audio_buffer_commit_empty": ("invalid_request_error", "commit with no audio appended"),
    "no_input": ("invalid_request_error", "response.create with no committed audio"),
    "conversation_already_has_active_response": ("invalid_request_error", "a turn is already running (one at a time)"),
    "response_cancel_not_active": ("invalid_request_error", "response.cancel with no turn running"),
    "session_expired": ("invalid_request_error", "the session reached its maximum duration"),
    "session_closed": ("invalid_request_error", "the session is closed"),
    "model_not_approved": ("invalid_request_error", "the tenant may no longer use the model"),
    "capability_not_supported": ("invalid_request_error", "the model cannot do what the session asks"),
    "rate_limited": ("rate_limit_error", "a rate limit refused the turn (`retry_after_s`)"),
    "budget_exceeded": ("invalid_request_error", "a budget is spent"),
    "request_blocked": ("invalid_request_error", "a pre-call hook blocked the turn"),
    "forbidden": ("invalid_request_error", "the credentials are no longer allowed"),
    "provider_error": ("server_error", "the provider failed or its socket dropped mid-turn"),
    "provider_timeout": ("server_error", "the provider did not answer in time"),
    "internal_error": ("server_error", "the gateway failed"),
}


class ProtocolError(Exception):
    """A client event the gateway refuses: becomes an `error` server event."""

    def __init__(self, code: str, message: str, param: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        if code not in ERROR_CODES:
            raise ValueError(f"unknown realtime error code {code!r}")
        self.code = code
        self.message = message
        self.param = param
        self.extra = extra


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def dumps(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def server_event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": new_id("event"), **fields}


def error_event(code: str, message: str, *, param: str | None = None, client_event_id: str | None = None,
                **extra: Any) -> dict[str, Any]:
    etype = ERROR_CODES.get(code, ("server_error", ""))[0]
    err: dict[str, Any] = {"type": etype, "code": code, "message": message, "param": param, "event_id": client_event_id}
    err.update({k: v for k, v in extra.items() if v is not None})
    return server_event("error", error=err)


def parse_client_event(body: str | bytes | None) -> dict[str, Any]:
    """The client event in a message, or ProtocolError (invalid_json, unknown_event, invalid_event)."""
    if body is None or body == "" or body == b"":
        raise ProtocolError("invalid_json", "The message is empty; send a JSON object with a 'type'.")
    raw = body.encode("utf-8") if isinstance(body, str) else body
    if len(raw) > MESSAGE_BYTES:
        raise ProtocolError("message_too_large", f"The message is {len(raw)} bytes; the limit is {MESSAGE_BYTES}.")
    try:
        event = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError("invalid_json", f"The message is not valid JSON: {str(exc)[:120]}.") from None
    if not isinstance(event, dict):
        raise ProtocolError("invalid_json", "The message must be a JSON object with a 'type'.")
    kind = event.get("type")
    if not isinstance(kind, str) or not kind:
        raise ProtocolError("invalid_event", "The event has no 'type'.", "type")
    if kind not in CLIENT_EVENTS:
        known = ", ".join(sorted(CLIENT_EVENTS))
        raise ProtocolError("unknown_event", f"Unknown event type '{kind[:80]}' (known: {known}).", "type")
    eid = event.get("event_id")
    if eid is not None and not isinstance(eid, str):
        raise ProtocolError("invalid_event", "'event_id' must be a string.", "event_id")
    return event


def decode_audio(event: dict[str, Any]) -> bytes:
    value = event.get("audio")
    if not isinstance(value, str):
        raise ProtocolError("invalid_event", "input_audio_buffer.append needs 'audio': base64-encoded audio.", "audio")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("invalid_audio", "'audio' is not valid base64.", "audio") from None
    if not data:
        raise ProtocolError("invalid_audio", "'audio' is empty.", "audio")
    return data


# ---------------------------------------------------------------- session configuration

DEFAULT_CONFIG: dict[str, Any] = {
    "modalities": ["audio", "text"],
    "instructions": "",
    "voice": "alloy",
    "input_audio_format": "pcm16",
    "output_audio_format": "pcm16",
    "input_audio_transcription": None,
    "turn_detection": None,
    "temperature": 0.8,
    "max_response_output_tokens": "inf",
}
_SESSION_KEYS = frozenset(DEFAULT_CONFIG) | {"model", "tools", "tool_choice"}


def _bad(param: str, message: str) -> ProtocolError:
    return ProtocolError("invalid_event", message, f"session.{param}")


def merge_config(current: dict[str, Any], update: Any, model_id: str) -> dict[str, Any]:
    """`current` with a `session.update`'s `session` applied; ProtocolError names a bad field."""
    if not isinstance(update, dict):
        raise ProtocolError("invalid_event", "session.update needs a 'session' object.", "session")
    unknown = set(update) - _SESSION_KEYS
    if unknown:
        raise ProtocolError("invalid_event", f"Unknown session field(s): {', '.join(sorted(unknown))}.",
                            f"session.{sorted(unknown)[0]}")
    out = dict(current)
    for key, value in update.items():
        if key == "model":
            if value not in (None, model_id) and not (isinstance(value, str) and model_id.endswith("::" + value)):
                raise _bad("model", f"The model is chosen when connecting ('{model_id}'); it cannot change in a session.")
        elif key in ("tools", "tool_choice"):
            if value not in (None, [], "none", "auto"):
                raise _bad(key, "Tools are not supported in realtime sessions by the gateway.")
        elif key == "modalities":
            if (not isinstance(value, list) or not value or not all(v in ("text", "audio") for v in value)):
                raise _bad(key, "modalities must be a non-empty list of 'text' and 'audio'.")
            out[key] = ["audio", "text"] if "audio" in value else ["text"]
        elif key == "instructions":
            if not isinstance(value, str) or len(value) > 32_000:
                raise _bad(key, "instructions must be a string of at most 32000 characters.")
            out[key] = value
        elif key == "voice":
            if not isinstance(value, str) or not 0 < len(value) <= 64:
                raise _bad(key, "voice must be a voice name.")
            out[key] = value
        elif key in ("input_audio_format", "output_audio_format"):
            if value not in FORMATS:
                raise _bad(key, f"{key} must be one of {', '.join(FORMATS)}.")
            out[key] = value
        elif key == "input_audio_transcription":
            if value is not None and not (isinstance(value, dict) and isinstance(value.get("model", ""), str)):
                raise _bad(key, "input_audio_transcription must be null or an object with a 'model'.")
            out[key] = value
        elif key == "turn_detection":
            if value is not None and not (isinstance(value, dict) and isinstance(value.get("create_response", False), bool)):
                raise _bad(key, "turn_detection must be null or an object ('create_response': true makes a commit start a response).")
            out[key] = value
        elif key == "temperature":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 2:
                raise _bad(key, "temperature must be a number from 0 to 2.")
            out[key] = float(value)
        elif key == "max_response_output_tokens":
            if value != "inf" and (isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096):
                raise _bad(key, "max_response_output_tokens must be an integer from 1 to 4096, or 'inf'.")
            out[key] = value
    return out


def auto_response(config: dict[str, Any]) -> bool:
    td = config.get("turn_detection")
    return bool(isinstance(td, dict) and td.get("create_response"))


def session_object(session_id: str, model_id: str, config: dict[str, Any], expires_at: float) -> dict[str, Any]:
    return {"id": session_id, "object": "realtime.session", "model": model_id, "expires_at": int(expires_at), **config}
