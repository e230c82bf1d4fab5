"""The fake Gemini API plus its embeddings and media endpoints, in the Gemini API's wire format:

- `POST /v1beta/models/{m}:batchEmbedContents` {requests: [{model, content: {parts: [{text}]},
  outputDimensionality?}]} -> {embeddings: [{values}]} (at most 100 requests, each `model` must
  equal the path's);
- `POST /v1beta/models/{imagen}:predict` {instances: [{prompt}], parameters: {sampleCount...}} ->
  {predictions: [{bytesBase64Encoded, mimeType}]};
- `:generateContent` with `generationConfig.responseModalities` IMAGE (an `inlineData` PNG and a
  text part) or AUDIO (`audio/L16;codec=pcm;rate=24000` raw PCM, as Gemini TTS answers; the
  voice must be a `prebuiltVoiceConfig.voiceName`), and for a request carrying audio
  `inlineData` (or `fileData` naming an uploaded audio file, see tests/fakes/gemini.py) a
  transcript (the text embedded in a mock WAV, or a description);
- Veo: `POST /v1beta/models/{veo}:predictLongRunning` -> {name: "models/{veo}/operations/{id}"};
  `GET /v1beta/models/{veo}/operations/{id}` -> {done: false} until `video_polls` polls, then
  {done: true, response: {generateVideoResponse: {generatedSamples: [{video: {uri}}]}}}; the uri
  (`/v1beta/files/{id}:download?alt=media`) redirects to `/storage/{id}.mp4`, which must be
  fetched *without* the API key.
"""

from __future__ import annotations

import base64
import hashlib
import re
from array import array
from typing import Any

from llm_gateway.media import samples
from tests.fakes.gemini import API_KEY, FakeGemini, error_body
from tests.fakes.openai_media import vector
from tests.fakes.server import FakeRequest, Reply


class FakeGeminiMedia(FakeGemini):
    def __init__(self) -> None:
        super().__init__()
        self.video_polls = 2
        self._ops: dict[str, dict[str, Any]] = {}
        self.route("POST", r"/v1beta/models/[^/:]+:batchEmbedContents", self._embed)
        self.route("POST", r"/v1beta/models/[^/:]+:predict", self._predict)
        self.route("POST", r"/v1beta/models/[^/:]+:predictLongRunning", self._veo_start)
        self.route("GET", r"/v1beta/models/[^/:]+/operations/[^/]+", self._veo_poll)
        self.route("GET", r"/v1beta/files/[^/:]+:download", self._download)
        self.route("GET", r"/storage/[^/]+\.mp4", self._storage)

    def media_catalog(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        provider, _ = self.catalog(["chat"])
        pid = provider["id"]
        models = [
            {"id": f"{pid}::gemini-embedding-001", "capabilities": ["embeddings"],
             "limits": {"dimensions": 3072, "max_dimensions": 3072, "flexible_dimensions": True, "max_inputs_per_call": 100},
             "pricing": {"input_per_mtok": 0.15}},
            {"id": f"{pid}::imagen-4.0-generate-001", "capabilities": ["chat", "image_generation"], "pricing": {"per_image": 0.04}},
            {"id": f"{pid}::gemini-2.5-flash-image", "capabilities": ["chat", "vision", "image_generation"],
             "pricing": {"input_per_mtok": 0.30, "output_per_mtok": 30.0}},
            {"id": f"{pid}::gemini-2.5-flash-preview-tts", "capabilities": ["chat", "stream", "tts"],
             "pricing": {"input_per_mtok": 0.50, "output_per_mtok": 10.0}, "options": {"voice": "Kore"}},
            {"id": f"{pid}::gemini-transcribe", "provider_model": "gemini-2.5-flash", "capabilities": ["chat", "stt", "audio_in"],
             "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.5}},
            {"id": f"{pid}::veo-3.0-generate-001", "capabilities": ["chat", "video_generation"], "pricing": {"per_second": 0.40},
             "options": {"async_task": False}},
        ]
        return provider, models

    def _auth(self, req: FakeRequest) -> Reply | None:
        if req.headers.get("x-goog-api-key") != API_KEY:
            self.violations.append(f"{req.path}: x-goog-api-key missing or wrong")
            return Reply(400, json=error_body(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key."))
        return None

    def _bad(self, message: str) -> Reply:
        self.violations.append(message)
        return Reply(400, json=error_body(400, "INVALID_ARGUMENT", message))

    @staticmethod
    def _model(req: FakeRequest) -> str:
        return re.match(r"/v1beta/models/([^/:]+)", req.path).group(1)

    # ---------------------------------------------------------------- embeddings
    def _embed(self, req: FakeRequest) -> Reply:
        if (r := self._auth(req)) is not None:
            return r
        body = req.json()
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not requests or len(requests) > 100:
            return self._bad("* BatchEmbedContentsRequest.requests: at least 1 and at most 100 requests")
        out = []
        for i, item in enumerate(requests):
            if item.get("model") != f"models/{self._model(req)}":
                return self._bad(f"* BatchEmbedContentsRequest.requests[{i}].model: must match the request model")
            parts = (item.get("content") or {}).get("parts") or []
            if len(parts) != 1 or not isinstance(parts[0].get("text"), str):
                return self._bad(f"* requests[{i}].content: one text part expected")
            dims = item.get("outputDimensionality", 3072)
            out.append({"values": vector(parts[0]["text"], dims)})
        return Reply(200, json={"embeddings": out})

    # ---------------------------------------------------------------- imagen
    def _predict(self, req: FakeRequest) -> Reply:
        if (r := self._auth(req)) is not None:
            return r
        body = req.json()
        instances = body.get("instances")
        if not isinstance(instances, list) or len(instances) != 1 or not instances[0].get("prompt"):
            return self._bad("instances[0].prompt is required")
        params = body.get("parameters") or {}
        unknown = set(params) - {"sampleCount", "aspectRatio", "seed", "negativePrompt", "personGeneration", "imageSize"}
        if unknown:
            return self._bad(f"Invalid JSON payload received. Unknown name \"{sorted(unknown)[0]}\" at 'parameters'")
        n = params.get("sampleCount", 1)
        if not 1 <= n <= 4:
            return self._bad("sampleCount must be 1 to 4")
        preds = [{"bytesBase64Encoded": base64.b64encode(samples.png(32, 32, seed=i, text=instances[0]["prompt"])).decode(),
                  "mimeType": "image/png"} for i in range(n)]
        return Reply(200, json={"predictions": preds})

    # ---------------------------------------------------------------- generateContent: image, speech, transcription
    def _generate(self, req: FakeRequest) -> Reply:
        body = req.json() if req.body else {}
        modalities = ((body.get("generationConfig") or {}).get("responseModalities")) or []
        parts = [p for c in body.get("contents") or [] for p in c.get("parts") or []]
        audio_in = [p["inlineData"] for p in parts if "inlineData" in p and p["inlineData"].get("mimeType", "").startswith("audio/")]
        prefix = f"{self.url}/v1beta/files/"
        for p in parts:
            uri = str((p.get("fileData") or {}).get("fileUri", ""))
            f = self.files.get(uri[len(prefix):]) if uri.startswith(prefix) else None
            if f is not None and f["mimeType"].startswith("audio/"):
                audio_in.append({"mimeType": f["mimeType"], "data": base64.b64encode(f["_data"]).decode()})
        if not modalities and not audio_in:
            return super()._generate(req)
        if (r := self._auth(req)) is not None:
            return r
        if (r := self._check_file_refs(req.json())) is not None:
            return r
        usage = {"promptTokenCount": 12, "candidatesTokenCount": 1290, "totalTokenCount": 1302}
        if "IMAGE" in modalities:
            prompt = " ".join(p.get("text", "") for p in parts).strip()
            out = [{"text": "Here is your image."},
                   {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(samples.png(24, 24, text=prompt)).decode()}}]
        elif modalities == ["AUDIO"]:
            voice = (((body["generationConfig"].get("speechConfig") or {}).get("voiceConfig") or {}).get("prebuiltVoiceConfig") or {}).get("voiceName")
            if not voice:
                return self._bad("speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName is required")
            n = int(24000 * 0.5)
            pcm = array("h", (int(8000 * ((i // 40) % 2 * 2 - 1)) for i in range(n))).tobytes()
            out = [{"inlineData": {"mimeType": "audio/L16;codec=pcm;rate=24000", "data": base64.b64encode(pcm).decode()}}]
            usage = {"promptTokenCount": 8, "candidatesTokenCount": 13, "totalTokenCount": 21}
        elif modalities:
            return self._bad(f"responseModalities {modalities} is not supported by this model")
        else:
            data = base64.b64decode(audio_in[0]["data"])
            said = samples.wav_text(data)
            out = [{"text": said if said is not None else f"({audio_in[0]['mimeType']} audio, {len(data)} bytes)"}]
            usage = {"promptTokenCount": 40, "candidatesTokenCount": 9, "totalTokenCount": 49}
        return Reply(200, json={"candidates": [{"content": {"parts": out, "role": "model"}, "finishReason": "STOP", "index": 0}],
                                "usageMetadata": usage, "modelVersion": self._model(req), "responseId": "fake-media-0001"})

    # ---------------------------------------------------------------- veo
    def _veo_start(self, req: FakeRequest) -> Reply:
        if (r := self._auth(req)) is not None:
            return r
        body = req.json()
        if not (body.get("instances") or [{}])[0].get("prompt"):
            return self._bad("instances[0].prompt is required")
        params = body.get("parameters") or {}
        if "durationSeconds" in params and params["durationSeconds"] not in (4, 6, 8):
            return self._bad("durationSeconds must be 4, 6 or 8")
        op_id = hashlib.sha256(f"{len(self._ops)}:{body}".encode()).hexdigest()[:12]
        name = f"models/{self._model(req)}/operations/{op_id}"
        self._ops[op_id] = {"polls": 0, "seconds": params.get("durationSeconds", 8)}
        return Reply(200, json={"name": name})

    def _veo_poll(self, req: FakeRequest) -> Reply:
        if (r := self._auth(req)) is not None:
            return r
        op_id = req.path.rsplit("/", 1)[-1]
        op = self._ops.get(op_id)
        if op is None:
            return Reply(404, json=error_body(404, "NOT_FOUND", "Operation not found"))
        op["polls"] += 1
        name = req.path.removeprefix("/v1beta/")
        if op["polls"] < self.video_polls:
            return Reply(200, json={"name": name, "done": False})
        uri = f"{self.url}/v1beta/files/{op_id}:download?alt=media"
        return Reply(200, json={"name": name, "done": True, "response": {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
            "generateVideoResponse": {"generatedSamples": [{"video": {"uri": uri}}]}}})

    def _download(self, req: FakeRequest) -> Reply:
        if (r := self._auth(req)) is not None:
            return r
        op_id = req.path.rsplit("/", 1)[-1].split(":")[0]
        return Reply(302, body=b"", headers={"Location": f"{self.url}/storage/{op_id}.mp4"})

    def _storage(self, req: FakeRequest) -> Reply:
        if req.headers.get("x-goog-api-key"):
            self.violations.append("the API key was sent to the storage host")
        op = self._ops.get(req.path.rsplit("/", 1)[-1].removesuffix(".mp4"))
        return Reply(200, body=samples.mp4(float(op["seconds"]) if op else 1.0, fps=2), headers={"Content-Type": "video/mp4"})
