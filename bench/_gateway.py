"""`python -m bench._gateway` — the local gateway exactly as `python -m llm_gateway.local` runs it,
with one benchmark knob: `--usage-sink memory` swaps the usage table write (a `PutItem` on the
embedded moto) for an in-memory counter, to separate the gateway's own cost from the emulator's.
"""

from __future__ import annotations

import sys


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
    from llm_gateway.local.__main__ import main as local_main

    return local_main(args)


if __name__ == "__main__":
    raise SystemExit(main())
