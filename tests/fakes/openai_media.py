"""The fake OpenAI API plus its embeddings and media endpoints, in OpenAI's wire format:

- `POST /v1/embeddings` {model, input, encoding_format, dimensions?} -> `{"object": "list", "data":
  [{"object": "embedding", "index", "embedding"}], "model", "usage": {prompt_tokens, total_tokens}}`
  (base64 = little-endian float32, as OpenAI sends it);
- `POST /v1/images/generations` -> `{"created", "data": [{"b64_json"}], "usage"?}` (DALL-E models need
  `response_format: b64_json`; gpt-image models reject `response_format`, as OpenAI does);
- `POST /v1/audio/speech` -> audio bytes in `response_format`, or with `stream_format: "sse"` the
  events `speech.audio.delta` {audio} and `speech.audio.done` {usage};
- `POST /v1/audio/transcriptions` (multipart: file, model, response_format...) -> `{"text", "usage"}`;
- `POST /v1/videos` (multipart) -> a video job; `GET /v1/videos/{id}` queued -> in_progress ->
  completed after `video_polls` polls; `GET /v1/videos/{id}/content` -> the MP4; `DELETE`.

Every request's auth and shape are checked; a malformed one gets OpenAI's 400 and is listed in
`violations`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import struct
from email.parser import BytesParser
from email.policy import default as email_policy
from typing import Any

from llm_gateway.media import samples
from tests.fakes.openai import FakeOpenAI, invalid
from tests.fakes.server import FakeRequest, Reply

MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + bytes(400)  # an ID3 tag and one MPEG frame header


def vector(text: str, dims: int) -> list[float]:
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    raw = [rng.uniform(-1, 1) for _ in range(dims)]
    norm = sum(v * v for v in raw) ** 0.5
    return [v / norm for v in raw]


def parse_multipart(req: FakeRequest) -> dict[str, tuple[str | None, bytes, str | None]]:
    """name -> (filename, bytes, content type) of a multipart/form-data body."""
    ctype = req.headers.get("content-type") or ""
    if not ctype.startswith("multipart/form-data"):
        raise ValueError("Content-Type must be multipart/form-data")
    msg = BytesParser(policy=email_policy).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + req.body)
    out = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        out[name] = (part.get_filename(), part.get_payload(decode=True) or b"", part.get_content_type() if part.get_filename() else None)
    return out


class FakeOpenAIMedia(FakeOpenAI):
    embedding_dims = 1536

    def __init__(self) -> None:
        super().__init__()
        self.video_polls = 2
        self.video_fail: str | None = None
        self._videos: dict[str, dict[str, Any]] = {}
        self.route("POST", "/v1/embeddings", self._embeddings)
        self.route("POST", "/v1/images/generations", self._images)
        self.route("POST", "/v1/audio/speech", self._speech)
        self.route("POST", "/v1/audio/transcriptions", self._transcriptions)
        self.route("POST", "/v1/videos", self._video_create)
        self.route("GET", r"/v1/videos/(?P<id>[^/]+)", self._video_get)
        self.route("GET", r"/v1/videos/(?P<id>[^/]+)/content", self._video_content)
        self.route("DELETE", r"/v1/videos/(?P<id>[^/]+)", self._video_delete)

    def media_catalog(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        provider, _ = self.catalog(["chat"])
        pid = provider["id"]
        models = [
            {"id": f"{pid}::text-embedding-3-small", "capabilities": ["embeddings"],
             "limits": {"dimensions": 1536, "max_dimensions": 1536, "flexible_dimensions": True, "max_inputs_per_call": 2048},
             "pricing": {"input_per_mtok": 0.02}},
            {"id": f"{pid}::gpt-image-1", "capabilities": ["chat", "image_generation"],
             "pricing": {"input_per_mtok": 5.0, "output_per_mtok": 40.0}},
            {"id": f"{pid}::dall-e-3", "capabilities": ["chat", "image_generation"], "pricing": {"per_image": 0.04}},
            {"id": f"{pid}::gpt-4o-mini-tts", "capabilities": ["chat", "stream", "tts"], "pricing": {"per_character": 0.000017},
             "options": {"voice": "alloy"}},
            {"id": f"{pid}::tts-1", "capabilities": ["chat", "stream", "tts"], "pricing": {"per_character": 0.000015},
             "options": {"voice": "alloy", "stream_format": "audio"}},
            {"id": f"{pid}::whisper-1", "capabilities": ["chat", "stt", "audio_in"], "pricing": {"per_second": 0.0001}},
            {"id": f"{pid}::gpt-4o-mini-transcribe", "capabilities": ["chat", "stt", "audio_in"],
             "pricing": {"input_per_mtok": 1.25, "output_per_mtok": 5.0}},
            {"id": f"{pid}::sora-2", "capabilities": ["chat", "video_generation"], "pricing": {"per_second": 0.10},
             "options": {"async_task": False}},
        ]
        return provider, models

    # ---------------------------------------------------------------- helpers
    def _auth(self, req: FakeRequest) -> Reply | None:
        if req.headers.get("authorization") != f"Bearer {self.api_key}":
            self.violations.append(f"{req.path}: Authorization: Bearer key missing or wrong")
            return self.error_reply("auth", self._script)
        return None

    def _bad(self, message: str, param: str | None = None) -> Reply:
        self.violations.append(message)
        return invalid(message, param)

    def _json_body(self, req: FakeRequest, allowed: set[str]) -> dict[str, Any] | Reply:
        if not (req.headers.get("content-type") or "").startswith("application/json"):
            return self._bad("Content-Type must be application/json")
        body = req.json()
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return self._bad("you must provide a model parameter", "model")
        unknown = set(body) - allowed
        if unknown:
            return self._bad(f"Unrecognized request argument supplied: {sorted(unknown)[0]}")
        return body

    # ---------------------------------------------------------------- embeddings
    def _embeddings(self, req: FakeRequest) -> Reply:
        if (r := self._auth(req)) is not None:
            return r
        body = self._json_body(req, {"model", "input", "encoding_format", "dimensions", "user"})
        if isinstance(body, Reply):
            return body
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or len(inputs) > 2048 or not all(isinstance(t, str) and t for t in inputs):
            return self._bad("'input' must be a non-empty string or an array of at most 2048 non-empty strings", "input")
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            return self._bad("'encoding_format' must be float or base64", "encoding_format")
        dims = body.get("dimensions", self.embedding_dims)
        if not isinstance(dims, int) or not 1 <= dims <= self.embedding_dims:
            return self._bad("'dimensions' is out of range", "dimensions")
        data = []
        for i, text in enumerate(inputs):
            v = vector(text, dims)
            emb: Any = base64.b64encode(struct.pack(f"<{dims}f", *v)).decode() if fmt == "base64" else v
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(len(t.split()) for t in inputs)
        return Reply(200, json={"object": "list", "data": data[::-1] if len(data) > 2 else data, "model": body["model"],
                                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    # ---------------------------------------------------------------- images
    def _images(self, req: FakeRequest) -> Reply:
        if (r := self._auth(req)) is not None:
            return r
        body = self._json_body(req, {"model", "prompt", "n", "size", "quality", "style", "background", "output_format",
                                     "response_format", "moderation", "user"})
        if isinstance(body, Reply):
            return body
        if not isinstance(body.get("prompt"), str) or not body["prompt"]:
            return self._bad("'prompt' is required", "prompt")
        dalle = body["model"].startswith("dall-e")
        if dalle and body.get("response_format") != "b64_json":
            return self._bad("this test fake only answers b64_json for DALL-E", "response_format")
        if not dalle and "response_format" in body:
            return self._bad("Unknown parameter: 'response_format'.", "response_format")
        n = body.get("n", 1)
        if dalle and body["model"] == "dall-e-3" and n != 1:
            return self._bad("Invalid 'n': dall-e-3 only supports n=1.", "n")
        w, h = (int(x) for x in body.get("size", "64x64").split("x")) if body.get("size") not in (None, "auto") else (64, 64)
        images = [{"b64_json": base64.b64encode(samples.png(min(w, 128), min(h, 128), seed=i, text=body["prompt"])).decode()}
                  for i in range(n)]
        out: dict[str, Any] = {"created": 1767225600, "data": images}
        if not dalle:
            out["usage"] = {"input_tokens": len(body["prompt"].split()), "output_tokens": 1056 * n, "total_tokens": 0,
                            "input_tokens_details": {"text_tokens": len(body["prompt"].split()), "image_tokens": 0}}
        return Reply(200, json=out)

    # ---------------------------------------------------------------- speech
    def _speech(self, req: FakeRequest) -> Reply:
        if (r := self._auth(req)) is not None:
            return r
        body = self._json_body(req, {"model", "input", "voice", "response_format", "speed", "instructions", "stream_format"})
        if isinstance(body, Reply):
            return body
        if not body.get("input") or not body.get("voice"):
            return self._bad("'input' and 'voice' are required")
        if body["model"] == "tts-1" and ("instructions" in body or body.get("stream_format") == "sse"):
            return self._bad("tts-1 does not support instructions or sse streaming")
        fmt = body.get("response_format", "mp3")
        audio = samples.speech_wav(body["input"]) if fmt == "wav" else MP3
        ctype = {"wav": "audio/wav", "mp3": "audio/mpeg"}.get(fmt, "application/octet-stream")
        if body.get("stream_format") == "sse":
            events = [f"data: {json.dumps({'type': 'speech.audio.delta', 'audio': base64.b64encode(audio[i:i + 4000]).decode()})}\n\n".encode()
                      for i in range(0, len(audio), 4000)]
            usage = {"input_tokens": len(body["input"].split()), "output_tokens": 100, "total_tokens": 0}
            events.append(f"data: {json.dumps({'type': 'speech.audio.done', 'usage': usage})}\n\n".encode())
            return Reply(200, chunks=events, headers={"Content-Type": "text/event-stream"})
        return Reply(200, chunks=[audio[i:i + 4000] for i in range(0, len(audio), 4000)], headers={"Content-Type": ctype})

    # ---------------------------------------------------------------- transcriptions
    def _transcriptions(self, req: FakeRequest) -> Reply:
        if (r := self._auth(req)) is not None:
            return r
        try:
            form = parse_multipart(req)
        except ValueError as exc:
            return self._bad(str(exc))
        if "file" not in form or not form["file"][0] or "model" not in form:
            return self._bad("'file' (a file upload) and 'model' are required")
        filename, data, _ctype = form["file"]
        if not filename.rsplit(".", 1)[-1] in ("flac", "mp3", "mp4", "mpeg", "mpga", "m4a", "ogg", "wav", "webm"):
            return self._bad(f"Invalid file format. Supported formats: flac, mp3, mp4, mpeg, mpga, m4a, ogg, wav, webm ({filename})")
        model = form["model"][1].decode()
        spoken = samples.wav_text(data)
        duration = samples.wav_duration(data) or 1.0
        text = spoken or f"transcript of {filename}"
        language = form.get("language", (None, b"", None))[1].decode()
        if language:
            text += f" [{language}]"
        usage = ({"type": "duration", "seconds": round(duration)} if model == "whisper-1" else
                 {"type": "tokens", "input_tokens": 40, "output_tokens": len(text.split()), "total_tokens": 0})
        return Reply(200, json={"text": text, "usage": usage})

    # ---------------------------------------------------------------- videos
    def _video_create(self, req: FakeRequest) -> Reply:
        if (r := self._auth(req)) is not None:
            return r
        try:
            form = parse_multipart(req)
        except ValueError as exc:
            return self._bad(str(exc))
        fields = {k: v[1].decode() for k, v in form.items()}
        if not fields.get("prompt") or not fields.get("model"):
            return self._bad("'prompt' and 'model' are required")
        if fields.get("seconds", "4") not in ("4", "8", "12"):
            return self._bad("Invalid 'seconds': must be one of 4, 8, 12", "seconds")
        vid = "video_" + hashlib.sha256(f"{len(self._videos)}:{fields['prompt']}".encode()).hexdigest()[:20]
        job = {"id": vid, "object": "video", "model": fields["model"], "status": "queued", "progress": 0,
               "seconds": fields.get("seconds", "4"), "size": fields.get("size", "720x1280"), "polls": 0, "created_at": 1767225600}
        self._videos[vid] = job
        return Reply(200, json={k: v for k, v in job.items() if k != "polls"})

    def _video_get(self, req: FakeRequest) -> Reply:
        if (r := self._auth(req)) is not None:
            return r
        job = self._videos.get(req.path.rsplit("/", 1)[-1])
        if job is None:
            return Reply(404, json={"error": {"message": "Video not found", "type": "invalid_request_error", "code": None, "param": None}})
        job["polls"] += 1
        if self.video_fail:
            job["status"] = "failed"
            job["error"] = {"code": "moderation_blocked", "message": self.video_fail}
        elif job["polls"] >= self.video_polls:
            job["status"], job["progress"] = "completed", 100
        else:
            job["status"], job["progress"] = "in_progress", 50
        return Reply(200, json={k: v for k, v in job.items() if k != "polls"})

    def _video_content(self, req: FakeRequest) -> Reply:
        if (r := self._auth(req)) is not None:
            return r
        job = self._videos.get(req.path.split("/")[-2])
        if job is None or job["status"] != "completed":
            return Reply(404, json={"error": {"message": "Video is not ready", "type": "invalid_request_error"}})
        return Reply(200, body=samples.mp4(float(job["seconds"]), fps=2), headers={"Content-Type": "video/mp4"})

    def _video_delete(self, req: FakeRequest) -> Reply:
        if (r := self._auth(req)) is not None:
            return r
        job = self._videos.pop(req.path.rsplit("/", 1)[-1], None)
        return Reply(200 if job else 404, json={"id": req.path.rsplit("/", 1)[-1], "deleted": bool(job)})
