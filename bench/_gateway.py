"""`python -m bench._gateway` — the local gateway exactly as `python -m llm_gateway.local` runs it,
plus benchmark instrumentation:

- every response carries `x-bench-aws-ms` (the time AWS calls kept that request waiting: the
  union of the botocore calls' intervals, so calls made side by side count once — here that is
  the embedded moto's emulation) and `x-bench-aws-calls` (how many calls);
- `--usage-sink memory` swaps the usage table write (`UsageStore.record`) for a no-op.
"""

from __future__ import annotations

import sys
from typing import Any


def _instrument() -> None:
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parent.parent))
    from bench._common import AwsCallTimer
    from llm_gateway.local import server

    timer = AwsCallTimer().install()
    original = server.LocalGateway.handler

    def handler(self: Any, module: str) -> Any:
        fn = original(self, module)

        def timed(event: dict, context: Any) -> dict:
            wall0, calls0 = timer.wall_now_ns(), sum(timer.calls.values())
            result = fn(event, context)
            if isinstance(result, dict):
                headers = dict(result.get("headers") or {})
                headers["x-bench-aws-ms"] = f"{(timer.wall_now_ns() - wall0) / 1e6:.3f}"
                headers["x-bench-aws-calls"] = str(sum(timer.calls.values()) - calls0)
                result = {**result, "headers": headers}
            return result

        return timed

    server.LocalGateway.handler = handler  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    sink = "dynamodb"
    if "--usage-sink" in args:
        i = args.index("--usage-sink")
        sink = args[i + 1]
        del args[i : i + 2]
    if sink == "memory":
        from llm_gateway.stores import usage

        def record(self: object, record: dict) -> None:  # noqa: ARG001 - same signature as UsageStore.record
            return None

        usage.UsageStore.record = record  # type: ignore[method-assign]
    elif sink != "dynamodb":
        raise SystemExit(f"unknown --usage-sink {sink!r} (memory | dynamodb)")
    _instrument()
    from llm_gateway.local.__main__ import main as local_main

    return local_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
