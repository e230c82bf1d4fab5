"""Server-sent events parsing shared by the HTTP adapters (WHATWG event-stream rules)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    event: str
    data: str


def iter_sse(lines: Iterable[str]) -> Iterator[SSEEvent]:
    """Events from decoded lines: `event:`/`data:` fields, blank line dispatches, `:` comments."""
    event = ""
    data: list[str] = []
    for line in lines:
        if line[:6] == "data: ":  # the common case first
            data.append(line[6:])
            continue
        if not line:
            if data:
                yield SSEEvent(event or "message", "\n".join(data))
            event, data = "", []
            continue
        if line[0] == ":":
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
    if data:
        yield SSEEvent(event or "message", "\n".join(data))
