"""Audit events on an EventBridge bus (`LLMGW_EVENT_BUS`, default `llmgw-audit`).

Every entry has `Source: llm-gateway`, a `DetailType` such as `request.completed`, and a JSON
`Detail` with metadata only (the schema is in docs/audit-events.md). Entries are sent with
`PutEvents`, ten per call (the API's limit); entries EventBridge reports as failed are retried
once, then logged by count (never by content).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from llm_gateway.config import settings
from llm_gateway.stores.aws import client

SOURCE = "llm-gateway"
MAX_ENTRIES = 10


class EventSink:
    def __init__(self, bus: str | None = None) -> None:
        self.bus = bus or settings().event_bus

    def entries(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for e in events:
            entry = {"Source": SOURCE, "DetailType": e["detail-type"], "EventBusName": self.bus,
                     "Detail": json.dumps(e["detail"], separators=(",", ":"), default=str)}
            if e.get("time"):
                entry["Time"] = dt.datetime.fromtimestamp(e["time"], dt.timezone.utc)
            if e.get("resources"):
                entry["Resources"] = e["resources"]
            out.append(entry)
        return out

    def put(self, events: list[dict[str, Any]]) -> int:
        """Send events; returns how many could not be delivered."""
        pending = self.entries(events)
        from llm_gateway.stores.writebehind import writer

        behind = writer()
        if behind is not None:
            behind.event_entries(pending)
            return 0
        return put_entries(pending)


def put_entries(entries: list[dict[str, Any]]) -> int:
    """`PutEvents`, ten entries a call, the failed ones retried once; returns how many failed."""
    failed = 0
    eb = client("events")
    for start in range(0, len(entries), MAX_ENTRIES):
        batch = entries[start:start + MAX_ENTRIES]
        for _ in range(2):
            resp = eb.put_events(Entries=batch)
            if not resp.get("FailedEntryCount"):
                batch = []
                break
            batch = [entry for entry, result in zip(batch, resp.get("Entries", [])) if result.get("ErrorCode")]
        failed += len(batch)
    return failed
