"""`python -m llm_gateway.local` — run the whole gateway on one port with an embedded AWS.

Prints the URL and the development API key. Real providers are used when their keys are set
in the environment (OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, Bedrock through a
catalog entry with `credential.profile`); the `mock` provider always works offline.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_gateway.local", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("LLMGW_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("LLMGW_PORT", "8080")))
    parser.add_argument("--aws-port", type=int, default=int(os.environ.get("LLMGW_AWS_PORT", "0")) or None,
                        help="port of the embedded AWS emulator (default: a free port)")
    parser.add_argument("--log-level", default=os.environ.get("LLMGW_LOG_LEVEL", "WARNING"))
    args = parser.parse_args(argv)

    os.environ["LLMGW_LOCAL"] = "1"
    # background threads (write-behind, lease refills) hold the GIL for at most this long before
    # a request's thread gets it back (Python's default is 5 ms: a latency tail of its own)
    sys.setswitchinterval(float(os.environ.get("LLMGW_SWITCH_INTERVAL_MS", "0.5")) / 1000)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", args.log_level.upper())
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
    # a long-running process: usage, audit and budget writes after the response, not before it
    os.environ.setdefault("LLMGW_USAGE_ASYNC", "1")
    # jobs and batches: moto's Wait states really wait, so poll often (AWS defaults: 2-30 s, 15-300 s)
    for name, value in (("LLMGW_JOB_POLL_INITIAL_S", "1"), ("LLMGW_JOB_POLL_MAX_S", "2"),
                        ("LLMGW_BATCH_POLL_INITIAL_S", "1"), ("LLMGW_BATCH_POLL_MAX_S", "5")):
        os.environ.setdefault(name, value)
    repo_root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
    if os.path.isdir(os.path.join(repo_root, "functions")) and repo_root not in sys.path:
        sys.path.insert(0, repo_root)

    from llm_gateway.local.aws import DEV_API_KEY, provision_and_seed, start_embedded_aws

    server, endpoint = start_embedded_aws(args.aws_port)
    provision_and_seed()
    from llm_gateway.local.server import LocalGateway

    import uvicorn

    url = f"http://{args.host}:{args.port}"
    print(f"LLM Gateway (local) listening on {url}", flush=True)
    print(f"  embedded AWS (moto): {endpoint}", flush=True)
    print(f"  development API key: {DEV_API_KEY}", flush=True)
    print(f"  realtime (WebSocket): ws://{args.host}:{args.port}/realtime?model=mock::realtime", flush=True)
    print(f"  try: curl -s {url}/chat/completions -H 'Authorization: Bearer {DEV_API_KEY}' "
          "-H 'Content-Type: application/json' "
          "-d '{\"model\":\"mock::echo\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hello\"}]}]}'",
          flush=True)
    try:
        uvicorn.run(LocalGateway(), host=args.host, port=args.port, log_level="warning", access_log=False,
                    timeout_graceful_shutdown=2)
    finally:
        from llm_gateway.pipeline import parallel

        parallel.drain()  # the last requests' usage records
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
