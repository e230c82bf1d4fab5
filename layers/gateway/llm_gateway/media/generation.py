"""Helpers the adapters share for the output modalities (image, speech, transcription, video):
the prompt and options of a request, the audio/image bytes the pipeline fetched, `data:` URLs.

Adapters never import the pipeline; this module only reads the `ChatRequest` / `ProviderCall`.
Options come from the request's `media` extension (README, "Media output options").
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from llm_gateway.api.errors import GatewayError

# option -> (modalities it applies to, checker description); validated by the pipeline
OPTIONS: dict[str, tuple[frozenset[str], str]] = {
    "n": (frozenset({"image"}), "an integer from 1 to 10"),
    "size": (frozenset({"image", "video"}), "WIDTHxHEIGHT, e.g. 1024x1024"),
    "quality": (frozenset({"image"}), "a string (low, medium, high, standard, hd, auto)"),
    "style": (frozenset({"image"}), "a string"),
    "background": (frozenset({"image"}), "transparent, opaque or auto"),
    "aspect_ratio": (frozenset({"image", "video"}), "W:H, e.g. 16:9"),
    "negative_prompt": (frozenset({"image", "video"}), "a string"),
    "seed": (frozenset({"image", "video"}), "an integer"),
    "format": (frozenset({"image", "speech"}), "a file format: png, jpeg, webp (images); wav, mp3, opus, aac, flac, pcm (speech)"),
    "voice": (frozenset({"speech"}), "a voice name"),
    "speed": (frozenset({"speech"}), "a number from 0.25 to 4"),
    "instructions": (frozenset({"speech"}), "a string"),
    "language": (frozenset({"transcription"}), "an ISO-639-1 code, e.g. en"),
    "prompt": (frozenset({"transcription"}), "a string"),
    "temperature": (frozenset({"transcription"}), "a number from 0 to 1"),
    "duration": (frozenset({"video"}), "seconds, a number from 1 to 60"),
    "resolution": (frozenset({"video"}), "e.g. 720p or 1080p"),
}

_SIZE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
_RATIO = re.compile(r"^\d{1,3}:\d{1,3}$")
IMAGE_FORMATS = frozenset({"png", "jpeg", "webp"})
SPEECH_FORMATS = frozenset({"wav", "mp3", "opus", "aac", "flac", "pcm"})
AUDIO_MIME = {"wav": "audio/wav", "mp3": "audio/mpeg", "opus": "audio/ogg", "aac": "audio/aac", "flac": "audio/flac",
              "pcm": "audio/pcm"}


def _bad(key: str, expected: str) -> GatewayError:
    return GatewayError("validation_error", f"media.{key} must be {expected}.",
                        errors=[{"path": f"media.{key}", "message": f"must be {expected}"}])


def check_options(options: dict[str, Any] | None, modality: str, model_id: str) -> None:
    """Reject unknown or malformed media options for this modality before any provider call."""
    for key, value in (options or {}).items():
        known = OPTIONS.get(key)
        if known is None:
            raise GatewayError("validation_error", f"media.{key} is not a media option (known: {', '.join(sorted(OPTIONS))}).",
                               errors=[{"path": f"media.{key}", "message": "unknown option"}])
        modalities, expected = known
        if modality not in modalities:
            raise GatewayError("validation_error", f"media.{key} does not apply to {modality} (model '{model_id}').",
                               errors=[{"path": f"media.{key}", "message": f"not a {modality} option"}])
        ok = True
        if key == "n":
            ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 10
        elif key == "size":
            ok = isinstance(value, str) and bool(_SIZE.match(value))
        elif key == "aspect_ratio":
            ok = isinstance(value, str) and bool(_RATIO.match(value))
        elif key == "seed":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif key == "speed":
            ok = isinstance(value, int | float) and not isinstance(value, bool) and 0.25 <= value <= 4
        elif key == "temperature":
            ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1
        elif key == "duration":
            ok = isinstance(value, int | float) and not isinstance(value, bool) and 1 <= value <= 60
        elif key == "format":
            ok = isinstance(value, str) and value in (IMAGE_FORMATS if modality == "image" else SPEECH_FORMATS)
        else:
            ok = isinstance(value, str) and 0 < len(value) <= 4000
        if not ok:
            raise _bad(key, expected)


def option(request: Any, key: str, default: Any = None) -> Any:
    media = getattr(request, "media", None) or {}
    value = media.get(key)
    return default if value is None else value


def parse_size(value: str | None, default: tuple[int, int]) -> tuple[int, int]:
    m = _SIZE.match(value or "")
    return (int(m.group(1)), int(m.group(2))) if m else default


def prompt_of(request: Any, *, required: bool = True) -> str:
    """The text of the last user message: what to draw, say or film."""
    for message in reversed(request.messages):
        if message.role == "user":
            text = "".join(p.text for p in message.content if p.type == "text").strip()
            if text or not required:
                return text
            break
    if required:
        raise GatewayError("validation_error", "The last user message needs a text part: the prompt.",
                           errors=[{"path": "messages", "message": "no text prompt in the last user message"}])
    return ""


def instructions_of(request: Any) -> str | None:
    """System messages, joined (TTS voice instructions, a style hint for images)."""
    texts = ["".join(p.text for p in m.content if p.type == "text") for m in request.messages if m.role == "system"]
    joined = "\n".join(t for t in texts if t).strip()
    return joined or None


def data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def decode_data_url(url: str) -> tuple[str, bytes]:
    head, sep, payload = url[5:].partition(",")
    params = head.split(";")
    mime = params[0].strip().lower() or "text/plain"
    if not sep:
        raise ValueError("data: URL without a comma")
    if "base64" in (p.strip().lower() for p in params[1:]):
        try:
            return mime, base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("invalid base64 in data: URL") from None
    return mime, unquote_to_bytes(payload)


@dataclass(slots=True)
class InputMedia:
    kind: str
    url: str
    data: bytes
    media_type: str


def input_media(call: Any, kinds: tuple[str, ...]) -> list[InputMedia]:
    """The bytes of the request's media parts of these kinds (fetched by the pipeline into
    `call.extra["media"]`, or carried by `data:` URLs), in request order."""
    fetched = call.extra.get("media") or {}
    out: list[InputMedia] = []
    for m, message in enumerate(call.request.messages):
        for p, part in enumerate(message.content):
            if part.type not in kinds:
                continue
            item = fetched.get(part.url)
            if item and item.get("data"):
                out.append(InputMedia(part.type, part.url, base64.b64decode(item["data"]), item.get("media_type") or ""))
                continue
            if part.url.startswith("data:"):
                try:
                    mime, data = decode_data_url(part.url)
                except ValueError as exc:
                    raise GatewayError("validation_error", f"messages[{m}].content[{p}].url: {exc}.",
                                       errors=[{"path": f"messages[{m}].content[{p}].url", "message": str(exc)}]) from None
                from llm_gateway.media.sniff import sniff

                out.append(InputMedia(part.type, part.url, data, sniff(data) or mime))
                continue
            raise GatewayError("capability_not_supported",
                               f"messages[{m}].content[{p}].url: this model needs the {part.type} bytes; the gateway cannot read '{part.url[:80]}'.",
                               errors=[{"path": f"messages[{m}].content[{p}].url", "message": "not readable by the gateway"}])
    return out
