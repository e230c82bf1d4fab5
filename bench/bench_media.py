"""Media and embeddings benchmarks.

(a) **Embeddings, 100 inputs — gateway overhead.** `POST /embeddings` through the embeddings Lambda
    handler (API Gateway v2 event → parse → pipeline → OpenAI adapter → render), with the provider
    answered *in-process* by an `httpx.MockTransport` holding a canned OpenAI response (100 vectors,
    base64 float32 as the adapter asks for them): no network and no provider time, so the whole
    wall time is the gateway's own work — building the provider request, decoding the provider's
    answer, rejoining, encoding, pricing, rendering. moto runs in-process; the usage store's write
    is swapped for a no-op and, as in bench_compute, the time the request's thread waits on the
    remaining AWS calls (governance counters) is measured and subtracted per request. Target: ≤ 5 ms.
(b) **Fetching and encoding a 5 MB image.** `MediaResolver.resolve` (the pipeline's step 6b: SSRF
    check, streamed GET with the size limit, type detection from the bytes, base64 for the
    adapter) against a loopback HTTP server, compared with a plain `httpx` GET of the same file:
    the difference is what the gateway adds. Target: ≤ 50 ms added.
(c) For context: the mock provider's real media (PNG, WAV, MP4) generation times.
"""

from __future__ import annotations

import base64
import gc
import json
import struct
import time
from typing import Any

from bench._common import machine, ms, reset_process_state, setup_env, summary, table, verdict

N_INPUTS = 100
ITER = 60
WARMUP = 10
IMAGE_BYTES = 5 * 1024 * 1024
FETCH_ITER = 25


def _canned_embeddings(dims: int) -> bytes:
    import random

    rng = random.Random(7)
    data = []
    for i in range(N_INPUTS):
        vec = [rng.uniform(-1, 1) for _ in range(dims)]
        data.append({"object": "embedding", "index": i, "embedding": base64.b64encode(struct.pack(f"<{dims}f", *vec)).decode()})
    return json.dumps({"object": "list", "data": data, "model": "text-embedding-3-small",
                       "usage": {"prompt_tokens": 400, "total_tokens": 400}}).encode()


def _embeddings() -> list[dict[str, Any]]:
    import os
    import tempfile

    import httpx
    from moto import mock_aws

    setup_env({"BENCH_OPENAI_KEY": "sk-bench"})
    catalog = {
        "providers": [{"id": "openai", "kind": "openai", "base_url": "https://api.openai.test/v1", "credential": {"env": "BENCH_OPENAI_KEY"}}],
        "models": [{"id": "openai::text-embedding-3-small", "capabilities": ["embeddings"],
                    "limits": {"dimensions": 1536, "max_dimensions": 1536, "flexible_dimensions": True, "max_inputs_per_call": 2048},
                    "pricing": {"input_per_mtok": 0.02}}],
    }
    path = os.path.join(tempfile.mkdtemp(), "catalog.json")
    with open(path, "w") as fh:
        json.dump(catalog, fh)
    os.environ["LLMGW_CATALOG"] = path
    rows = []
    with mock_aws():
        reset_process_state()
        from llm_gateway.local.aws import DEV_API_KEY, provision_and_seed
        from llm_gateway.local.server import LambdaContext, apigw_v2_event
        from botocore.client import BaseClient

        from llm_gateway.outbound.client import OutboundClient, set_outbound
        from llm_gateway.providers import reset_adapters
        from llm_gateway.stores.usage import UsageStore

        provision_and_seed()
        UsageStore.record = lambda self, record: None  # the usage write is DynamoDB's time, not ours
        from functions.embeddings.handler import lambda_handler

        # the time the request's own thread waits on AWS: its direct calls, and the side-by-side
        # calls of `parallel.run_all` (timed as one wait); background work (lease refills) is not
        # the request's
        import threading

        from llm_gateway.pipeline import parallel

        aws_ns = [0]
        request_thread = threading.get_ident()
        depth = [0]
        original = BaseClient._make_api_call
        original_run_all = parallel.run_all

        def timed(client_self: Any, operation: str, params: dict) -> Any:
            if threading.get_ident() != request_thread or depth[0]:
                return original(client_self, operation, params)
            t0 = time.perf_counter_ns()
            try:
                return original(client_self, operation, params)
            finally:
                aws_ns[0] += time.perf_counter_ns() - t0

        def timed_run_all(tasks: Any) -> Any:
            if threading.get_ident() != request_thread or depth[0] or not tasks:
                return original_run_all(tasks)
            depth[0] = 1
            t0 = time.perf_counter_ns()
            try:
                return original_run_all(tasks)
            finally:
                aws_ns[0] += time.perf_counter_ns() - t0
                depth[0] = 0

        BaseClient._make_api_call = timed  # type: ignore[method-assign]
        parallel.run_all = timed_run_all  # type: ignore[assignment]

        texts = [f"benchmark input number {i} with a few more words" for i in range(N_INPUTS)]
        for dims, fmt in ((1536, "base64"), (256, "base64"), (256, "float"), (1536, "float")):
            canned = _canned_embeddings(dims)
            set_outbound(OutboundClient(httpx.Client(transport=httpx.MockTransport(
                lambda req, body=canned: httpx.Response(200, content=body, headers={"content-type": "application/json"})))))
            reset_adapters()  # adapters keep the outbound client they were made with
            payload = json.dumps({"model": "openai::text-embedding-3-small", "input": texts, "dimensions": dims,
                                  "encoding_format": fmt}).encode()
            headers = {"content-type": "application/json", "authorization": f"Bearer {DEV_API_KEY}"}
            times, totals = [], []
            for i in range(WARMUP + ITER):
                event = apigw_v2_event("POST", "/embeddings", "", headers, payload, f"req_{i}", "127.0.0.1")
                gc.collect()
                aws_ns[0] = 0
                t0 = time.perf_counter()
                out = lambda_handler(event, LambdaContext(function_name="bench", aws_request_id=f"req_{i}"))
                dt = (time.perf_counter() - t0) * 1000
                assert out["statusCode"] == 200, out.get("body", "")[:300]
                if i >= WARMUP:
                    totals.append(dt)
                    times.append(dt - aws_ns[0] / 1e6)
            s = summary(times)
            rows.append({"dims": dims, "format": fmt, "response_kb": len(out["body"]) // 1024, "total_p50": summary(totals)["p50"], **s})
        BaseClient._make_api_call = original  # type: ignore[method-assign]
        parallel.run_all = original_run_all  # type: ignore[assignment]
        set_outbound(None)
        reset_adapters()
    os.environ.pop("LLMGW_CATALOG", None)
    return rows


def _fetch() -> dict[str, Any]:
    import os

    import httpx

    setup_env({"LLMGW_MEDIA_ALLOW_HTTP": "1", "LLMGW_MEDIA_ALLOWED_CIDRS": "127.0.0.1/32"})
    reset_process_state()
    from llm_gateway.api.models import ChatRequest
    from llm_gateway.media import samples
    from llm_gateway.pipeline.media import MediaResolver
    from llm_gateway.registry.catalog import get_catalog
    from tests.fakes.server import FakeServer, Reply

    png = samples.png(64, 64)
    blob = png + os.urandom(IMAGE_BYTES - len(png))  # a PNG signature, 5 MB in all
    model = get_catalog().resolve("mock::echo")
    raw_times, resolver_times = [], []
    with FakeServer() as server, httpx.Client() as client:
        server.route("GET", "/big.png", lambda r: Reply(200, body=blob, headers={"Content-Type": "image/png"}))
        url = server.url + "/big.png"
        request = ChatRequest.model_validate({"model": "mock::echo", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "describe"}, {"type": "image", "url": url}]}]})
        resolver = MediaResolver(http=client)
        for i in range(3 + FETCH_ITER):
            gc.collect()
            t0 = time.perf_counter()
            got = client.get(url).content
            t1 = time.perf_counter()
            media = resolver.resolve(request, model, "bench-tenant")
            t2 = time.perf_counter()
            assert len(got) == IMAGE_BYTES and media[url]["size"] == IMAGE_BYTES and media[url]["media_type"] == "image/png"
            if i >= 3:
                raw_times.append((t1 - t0) * 1000)
                resolver_times.append((t2 - t1) * 1000)
        # the two parts of the gateway's own work, measured alone
        t0 = time.perf_counter()
        for _ in range(10):
            base64.b64encode(blob).decode("ascii")
        encode_ms = (time.perf_counter() - t0) * 100
    return {"raw": summary(raw_times), "resolver": summary(resolver_times), "encode_ms": encode_ms}


def _mock_media() -> list[tuple[str, float, int]]:
    from llm_gateway.media import samples

    out = []
    for label, fn in (("PNG 256x256", lambda: samples.png(256, 256, 3, text="prompt")),
                      ("PNG 1024x1024", lambda: samples.png(1024, 1024, 3)),
                      ("WAV speech, 100 characters", lambda: samples.speech_wav("x" * 9 + (" word" * 18))),
                      ("MP4 4 s (16 Motion-JPEG frames)", lambda: samples.mp4(4, fps=4))):
        fn()
        t0 = time.perf_counter()
        data = fn()
        out.append((label, (time.perf_counter() - t0) * 1000, len(data)))
    return out


def main() -> str:
    emb = _embeddings()
    fetch = _fetch()
    mock = _mock_media()
    lines = ["## Media and embeddings (bench/bench_media.py)", "", f"Machine: {machine()}.", "",
             f"### Embeddings: {N_INPUTS} inputs, gateway overhead (provider answered in-process, {ITER} runs)", ""]
    lines.append(table(["dimensions", "encoding_format", "response KB", "P50 ms", "P90 ms", "P99 ms", "P50 incl. AWS calls ms"],
                       [(r["dims"], r["format"], r["response_kb"], ms(r["p50"]), ms(r["p90"]), ms(r["p99"]), ms(r["total_p50"]))
                        for r in emb]))
    b64 = next(r for r in emb if r["dims"] == 1536 and r["format"] == "base64")
    small = next(r for r in emb if r["dims"] == 256 and r["format"] == "float")
    lines += ["", f"Target ≤ 5 ms for 100 inputs: base64 (1536 dims) P50 {ms(b64['p50'])} ms — {verdict(b64['p50'] <= 5)}; "
              f"float (256 dims) P50 {ms(small['p50'])} ms — {verdict(small['p50'] <= 5)}. "
              "base64 answers carry the provider's float32 bytes through (OpenAI is always asked for base64); "
              "float answers pay for Python floats and JSON number rendering, which grows with dimensions × inputs.", ""]
    added = fetch["resolver"]["p50"] - fetch["raw"]["p50"]
    lines += [f"### Fetching and encoding a 5 MB image ({FETCH_ITER} runs, loopback server)", "",
              table(["step", "P50 ms", "P90 ms", "max ms"],
                    [("plain httpx GET (transfer alone)", ms(fetch["raw"]["p50"]), ms(fetch["raw"]["p90"]), ms(fetch["raw"]["max"])),
                     ("MediaResolver.resolve (guard + streamed GET + sniff + base64)", ms(fetch["resolver"]["p50"]),
                      ms(fetch["resolver"]["p90"]), ms(fetch["resolver"]["max"])),
                     ("of which base64 encoding alone", ms(fetch["encode_ms"]), "", "")]),
              "", f"Added by the gateway (P50 difference): {ms(added)} ms — target ≤ 50 ms: {verdict(added <= 50)} "
              f"(the whole fetch+encode P50 is {ms(fetch['resolver']['p50'])} ms).", "",
              "### Mock provider media (one run each, for context)", "",
              table(["file", "ms", "bytes"], [(label, ms(t, 1), size) for label, t, size in mock])]
    return "\n".join(lines)


if __name__ == "__main__":
    print(main())
