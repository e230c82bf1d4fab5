"""The fake Bedrock Runtime plus `InvokeModel` (`POST /model/{modelId}/invoke`) for embedding and
image models, in each model family's native body format:

- `amazon.titan-embed-text-v2:0`: {inputText, dimensions? (256/512/1024), normalize?} ->
  {embedding, embeddingsByType: {float}, inputTextTokenCount};
- `cohere.embed-*`: {texts (<= 96), input_type, embedding_types?, truncate?} -> {id, texts,
  embeddings: {float: [...]}, response_type: "embeddings_by_type"}, tokens in the
  `X-Amzn-Bedrock-Input-Token-Count` header;
- `amazon.nova-canvas-v1:0` / `amazon.titan-image-generator-*`: {taskType: TEXT_IMAGE,
  textToImageParams: {text}, imageGenerationConfig: {...}} -> {images: [base64 PNG], error: null}.

Requests must carry a SigV4 `Authorization` header, a URL-encoded model id and a JSON body.
"""

from __future__ import annotations

import base64
from typing import Any

from llm_gateway.media import samples
from tests.fakes.bedrock import FakeBedrock, _error
from tests.fakes.openai_media import vector
from tests.fakes.server import FakeRequest, Reply


class FakeBedrockMedia(FakeBedrock):
    def __init__(self) -> None:
        super().__init__()
        self.invocations: list[tuple[str, dict[str, Any]]] = []
        self.route("POST", r"/model/(?P<model>[^/]+)/invoke", self._invoke)

    def media_catalog(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        provider, _ = self.catalog(["chat"])
        models = [
            {"id": "bedrock::amazon.titan-embed-text-v2:0", "capabilities": ["embeddings"],
             "limits": {"dimensions": 1024, "max_dimensions": 1024, "allowed_dimensions": [256, 512, 1024], "flexible_dimensions": True,
                        "max_inputs_per_call": 1, "max_concurrent_batches": 8}, "pricing": {"input_per_mtok": 0.02}},
            {"id": "bedrock::cohere.embed-english-v3", "capabilities": ["embeddings"],
             "limits": {"dimensions": 1024, "max_inputs_per_call": 96}, "pricing": {"input_per_mtok": 0.10}},
            {"id": "bedrock::amazon.nova-canvas-v1:0", "capabilities": ["chat", "image_generation"], "pricing": {"per_image": 0.04}},
        ]
        return provider, models

    def _invoke(self, req: FakeRequest) -> Reply:
        auth = req.headers.get("authorization", "")
        if not auth.startswith("AWS4-HMAC-SHA256 Credential=") or "/bedrock/aws4_request" not in auth:
            return self._violation(req, _error(403, "UnrecognizedClientException", "The security token included in the request is invalid."))
        if ":" in req.path:
            return self._violation(req, _error(400, "ValidationException", "The model id in the path is not URL-encoded."))
        try:
            body = req.json()
        except ValueError:
            return self._violation(req, _error(400, "SerializationException", "The body is not JSON."))
        model = self.model_in_path(req)
        self.invocations.append((model, body))
        if model.startswith("amazon.titan-embed-text-v2"):
            unknown = set(body) - {"inputText", "dimensions", "normalize", "embeddingTypes"}
            if unknown or not isinstance(body.get("inputText"), str) or body.get("dimensions", 1024) not in (256, 512, 1024):
                return self._violation(req, _error(400, "ValidationException", f"Malformed input request: {sorted(unknown) or body}"))
            v = vector(body["inputText"], body.get("dimensions", 1024))
            return Reply(200, json={"embedding": v, "embeddingsByType": {"float": v}, "inputTextTokenCount": len(body["inputText"].split())})
        if model.startswith("cohere.embed"):
            texts = body.get("texts")
            if not isinstance(texts, list) or not 1 <= len(texts) <= 96 or "input_type" not in body:
                return self._violation(req, _error(400, "ValidationException", "texts (1-96) and input_type are required"))
            return Reply(200, json={"id": "emb-fake", "texts": texts, "response_type": "embeddings_by_type",
                                    "embeddings": {"float": [vector(t, 1024) for t in texts]}},
                         headers={"X-Amzn-Bedrock-Input-Token-Count": str(sum(len(t.split()) for t in texts))})
        if model.startswith(("amazon.nova-canvas", "amazon.titan-image")):
            params = body.get("textToImageParams") or {}
            if body.get("taskType") != "TEXT_IMAGE" or not params.get("text"):
                return self._violation(req, _error(400, "ValidationException", "taskType TEXT_IMAGE with textToImageParams.text is required"))
            cfg = body.get("imageGenerationConfig") or {}
            n = cfg.get("numberOfImages", 1)
            w, h = min(cfg.get("width", 64), 128), min(cfg.get("height", 64), 128)
            return Reply(200, json={"images": [base64.b64encode(samples.png(w, h, seed=i, text=params["text"])).decode() for i in range(n)],
                                    "error": None})
        return self._violation(req, _error(400, "ValidationException", f"The provided model identifier is invalid: {model}"))

    def _violation(self, req: FakeRequest, reply: Reply) -> Reply:
        self.violations.append(f"{req.method} {req.path}: {reply.json['message']}")
        return reply
