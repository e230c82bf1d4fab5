"""Realtime: time from `input_audio_buffer.commit` to the first `response.audio.delta`, and how
much of it the gateway adds, against a fake OpenAI Realtime server on loopback.

One process, as `make run` serves it: the local gateway (uvicorn + the embedded moto, the WebSocket
API emulation running `functions/realtime/handler.py`, turns in worker threads), the fake OpenAI
Realtime server (`tests/fakes/openai_realtime.py`: it answers `response.create` at once), and a
`websockets` client holding one session (`openai::gpt-4o-realtime-preview`, pcm16). Per turn the
client appends 0.2 s of audio (a `ping` round trip makes sure it was stored), then sends `commit`
and `response.create` back to back; end-to-end = commit sent → first audio delta received;
provider = the fake's own time from receiving `response.create` to sending its first audio delta;
gateway adds = end-to-end − provider. It includes the two route invocations, the worker start, the
session store reads, governance (rate limits, budget), the provider socket's handshake (per turn:
a Lambda cannot keep it between invocations), and the `@connections` posts — each DynamoDB or
`@connections` call a round trip to the embedded moto (a new TCP connection per call: moto answers
`Connection: close`); the AWS-emulator row is the wall time with a boto3 call in flight inside the
window, so "without the emulator" approximates the gateway's own share.

Target (issue 9): the gateway adds ≤ 50 ms from commit to the first audio delta.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import threading
import time
from typing import Any

from bench._common import AwsCallTimer, machine, ms, setup_env, summary, table, verdict

TARGET_MS = 50.0
ROUNDS = int(os.environ.get("BENCH_REALTIME_N", "40"))
WARMUP = int(os.environ.get("BENCH_REALTIME_WARMUP", "5"))
MODEL = "openai::gpt-4o-realtime-preview"
KEY_ENV = "BENCH_FAKE_REALTIME_KEY"


def _serve(app: Any) -> tuple[Any, int]:
    import uvicorn

    from llm_gateway.local.aws import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                           lifespan="off"))
    threading.Thread(target=server.run, daemon=True).start()
    end = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > end:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return server, port


def run() -> dict[str, Any]:
    setup_env({"LLMGW_REALTIME_CANCEL_POLL_MS": "250"})
    from tests.fakes.openai_realtime import FakeOpenAIRealtime, tone_pcm16

    fake = FakeOpenAIRealtime(deltas=4).start()
    os.environ[KEY_ENV] = fake.api_key
    from llm_gateway.registry.catalog import DEFAULT_CATALOG

    data = json.loads(DEFAULT_CATALOG.read_text())
    for p in data["providers"]:
        if p["id"] == "openai":
            p["base_url"], p["credential"] = fake.base_url, {"env": KEY_ENV}
    catalog = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump(data, catalog)
    catalog.close()
    os.environ["LLMGW_CATALOG"] = catalog.name

    from llm_gateway.local.aws import DEV_API_KEY, provision_and_seed, start_embedded_aws

    moto, _ = start_embedded_aws()
    provision_and_seed()
    from llm_gateway.local.server import LocalGateway

    server, port = _serve(LocalGateway())
    from websockets.sync.client import connect

    timer = AwsCallTimer().install()
    audio = base64.b64encode(tone_pcm16(0.2)).decode()
    e2e: list[float] = []
    provider: list[float] = []
    emulator: list[float] = []
    with connect(f"ws://127.0.0.1:{port}/realtime?model={MODEL}", additional_headers={"Authorization": f"Bearer {DEV_API_KEY}"},
                 compression=None) as ws:
        def recv_until(kind: str) -> float:
            while True:
                event = json.loads(ws.recv(timeout=30))
                if event["type"] == kind:
                    return time.perf_counter()
                if event["type"] == "error":
                    raise RuntimeError(f"error event: {event['error']}")

        recv_until("session.created")
        for i in range(WARMUP + ROUNDS):
            ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
            ws.send(json.dumps({"type": "ping"}))
            recv_until("pong")
            aws0 = timer.wall_now_ns()
            t0 = time.perf_counter()
            ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
            ws.send(json.dumps({"type": "response.create"}))
            t1 = recv_until("response.audio.delta")
            aws1 = timer.wall_now_ns()
            recv_until("response.done")
            if i >= WARMUP:
                e2e.append((t1 - t0) * 1000)
                provider.append((fake.first_delta_times[-1] - fake.create_times[-1]) * 1000)
                emulator.append((aws1 - aws0) / 1e6)
        ws.send(json.dumps({"type": "session.close"}))
        recv_until("session.closed")
    timer.uninstall()
    server.should_exit = True
    moto.stop()
    fake.stop()
    os.unlink(catalog.name)
    added = [a - b for a, b in zip(e2e, provider)]
    own = [a - b for a, b in zip(added, emulator)]
    return {"e2e": e2e, "provider": provider, "added": added, "emulator": emulator, "own": own}


def main() -> str:
    r = run()
    rows = []
    labels = [("e2e", "commit sent → first audio delta received (client)"),
              ("provider", "provider: response.create in → first audio delta out (fake)"),
              ("added", "**gateway adds** (end-to-end − provider)"),
              ("emulator", "… of which AWS emulator (moto) calls in flight"),
              ("own", "… gateway without the emulator")]
    for key, label in labels:
        s = summary(r[key])
        rows.append([label, ms(s["p50"], 1), ms(s["p90"], 1), ms(s["p99"], 1), ms(s["max"], 1)])
    added = summary(r["added"])
    return "\n\n".join([
        "## Realtime: commit → first audio delta",
        f"{ROUNDS} turns (after {WARMUP} warm-up) in one WebSocket session with `{MODEL}` against a fake OpenAI Realtime "
        f"server on loopback, through the local server (uvicorn, embedded moto, `@connections` emulation, turns in worker "
        f"threads), 0.2 s of pcm16 per turn; {machine()}. Milliseconds.",
        table(["", "P50", "P90", "P99", "max"], rows),
        f"Target: the gateway adds ≤ {TARGET_MS:.0f} ms — P50 {added['p50']:.1f} ms, P99 {added['p99']:.1f} ms: "
        f"{verdict(added['p50'] <= TARGET_MS)} (median; each turn opens a new provider socket and makes ~7 sequential "
        "round trips to the session store and `@connections`, which the emulator serves over a new TCP connection each).",
    ])


if __name__ == "__main__":
    print(main())
