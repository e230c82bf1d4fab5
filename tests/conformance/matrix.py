"""Print the provider × feature conformance matrix (markdown) from the suite's own data.

The rows are `scenarios.FEATURES`, the columns the fakes registered in `tests/fakes/registry.py`
and each cell their `supports` — the same data `test_conformance.py` runs, so the README table
cannot drift from what is tested.

Run: `python -m tests.conformance.matrix`.
"""

from __future__ import annotations

import sys

from tests.conformance.scenarios import ERROR_EXPECT, FEATURES
from tests.fakes.registry import FAKE_PROVIDERS

CELL = {
    ("request", True): "✅",
    ("request", False): "422",
    ("report", True): "✅",
    ("report", False): "—",
    ("always", True): "✅",
    ("always", False): "✅",
}


def matrix() -> str:
    from tests.conformance.conftest import fake_classes

    fakes = fake_classes()
    names = list(FAKE_PROVIDERS)
    header = "| feature | " + " | ".join(f"`{n}`" for n in names) + " |"
    lines = [header, "|" + "---|" * (len(names) + 1)]
    for feature in FEATURES.values():
        cells = []
        for name in names:
            cls = fakes[name]
            if isinstance(cls, Exception):
                cells.append("?")
                continue
            cells.append(CELL[(feature.kind, feature.name in cls.supports)])
        lines.append(f"| {feature.title} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "✅ tested and normalized to the same result for every provider · **422** refused with "
        "`capability_not_supported` before any provider call (tested) · — not reported by the provider.",
        "",
        "Errors, for every provider: " + ", ".join(f"{k} → `{c}` ({s})" for k, (c, s) in ERROR_EXPECT.items())
        + "; 429s carry `Retry-After`. Every streamed answer is also checked against the buffered one "
        "(identical text, tool calls, finish reason and usage), and a stream the provider cuts ends with "
        "`event: error`, never a clean `[DONE]`.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(matrix() + "\n")
