"""Structured output: validating a typical ~2 KB answer against a cached schema (target ≤ 200 µs P99).

Measures `pipeline.structured.validate_answer` — JSON parsing plus validation with the compiled
Draft 2020-12 validator the gateway caches by schema hash — after a warm-up that compiles it.
"""

from __future__ import annotations

import json
import os
import time

from bench._common import machine, setup_env, summary, table, verdict

SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "pattern": "^ord_[a-z0-9]+$"},
        "customer": {"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string"},
                                                      "tier": {"enum": ["free", "pro", "enterprise"]}},
                     "required": ["name", "email", "tier"], "additionalProperties": False},
        "items": {"type": "array", "minItems": 1, "items": {
            "type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1},
                                             "price": {"type": "number", "minimum": 0}, "note": {"type": "string"}},
            "required": ["sku", "qty", "price"], "additionalProperties": False}},
        "total": {"type": "number", "minimum": 0},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["order_id", "customer", "items", "total"],
    "additionalProperties": False,
}


def _answer() -> str:
    items = [{"sku": f"sku-{i:04d}", "qty": i % 5 + 1, "price": 9.99 + i, "note": "gift wrap, leave at the door"} for i in range(18)]
    body = {"order_id": "ord_4f9a2c", "customer": {"name": "Ada Lovelace", "email": "ada@example.com", "tier": "pro"},
            "items": items, "total": sum(i["qty"] * i["price"] for i in items), "tags": ["priority", "gift", "eu"]}
    return json.dumps(body)


def main() -> str:
    setup_env()
    from llm_gateway.pipeline.structured import validate_answer

    text = _answer()
    n = int(os.environ.get("BENCH_STRUCTURED_N", "5000"))
    for _ in range(300):
        validate_answer(SCHEMA, text)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        validate_answer(SCHEMA, text)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    s = summary(samples)
    rows = [[f"{len(text)} B answer", s["n"], f"{s['p50']:.1f}", f"{s['p90']:.1f}", f"{s['p99']:.1f}", f"{s['max']:.1f}"]]
    return "\n".join([
        "## Structured output validation",
        f"`validate_answer` (JSON parse + cached Draft 2020-12 validator) on a {len(text)}-byte answer; {machine()}; µs.",
        "",
        table(["answer", "n", "P50", "P90", "P99", "max"], rows),
        "",
        f"Target P99 ≤ 200 µs: {verdict(s['p99'] <= 200)}",
    ])


if __name__ == "__main__":
    print(main())
