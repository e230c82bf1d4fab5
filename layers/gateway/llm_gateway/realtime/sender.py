"""Server events to one client, through `@connections`, in order, off the turn's critical path.

Two lanes, each an ordered queue with its own posting thread: audio deltas, and everything else
(so the audio a user hears never waits behind transcript deltas). Order between the lanes is kept
for whole events: an audio delta is posted only after every event queued before it (such as
`response.created` and the input transcription) was posted; text deltas never hold audio back. Deltas that pile up while a post is in flight are merged (same
kind and item) before the next post — no waiting is ever added to merge — and every post is cut
to fit one WebSocket frame (`protocol.FRAME_BYTES`): audio in pieces of `AUDIO_DELTA_BYTES` raw
bytes, text in pieces of `TEXT_DELTA_CHARS`. A client that is gone (410) sets `gone` and the rest
is dropped; the turn checks `gone` and stops its provider. The worker flushes both lanes before
the closing events (`response.*.done`), so those come last.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import deque
from typing import Any

from llm_gateway.observability import logger
from llm_gateway.realtime.protocol import AUDIO_DELTA_BYTES, MESSAGE_BYTES, TEXT_DELTA_CHARS, dumps, new_id
from llm_gateway.stores.connections import ConnectionGone

MAX_FAILURES = 3


class EventSender:
    def __init__(self, connections: Any, connection_id: str) -> None:
        self.connections = connections
        self.connection_id = connection_id
        self.gone = False
        self.posted = 0
        self.first_audio_at: float | None = None
        self._failures = 0
        self._lock = threading.Lock()
        self._order = threading.Condition()  # main-lane events queued / posted: audio waits for those before it
        self._events_queued = 0
        self._events_posted = 0
        self._lanes = {"main": _Lane(self, "main"), "audio": _Lane(self, "audio")}

    # ------------------------------------------------------------ queueing (turn side)

    def event(self, event: dict[str, Any]) -> None:
        self._events_queued += 1  # only the turn's thread queues
        self._lanes["main"].put(("event", event, None, 0))

    def audio(self, base: dict[str, Any], data: bytes) -> None:
        """`response.audio.delta` with `base` fields (response_id, item_id, …) and raw audio bytes.
        Audio has its own lane: it never waits behind text deltas, only behind the whole events
        queued before it."""
        if data:
            self._lanes["audio"].put(("audio", base, data, self._events_queued))

    def text(self, kind: str, base: dict[str, Any], delta: str) -> None:
        """`response.audio_transcript.delta` / `response.text.delta`."""
        if delta:
            self._lanes["main"].put((kind, base, delta, 0))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued was posted (or dropped); False on timeout."""
        end = time.monotonic() + timeout
        return all(lane.flush(max(0.0, end - time.monotonic())) for lane in self._lanes.values())

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        for lane in self._lanes.values():
            lane.stop()

    # ------------------------------------------------------------ posting (lane threads)

    def _event_posted(self) -> None:
        with self._order:
            self._events_posted += 1
            self._order.notify_all()

    def _wait_for_events(self, count: int, timeout: float = 30.0) -> None:
        with self._order:
            self._order.wait_for(lambda: self.gone or self._events_posted >= count, timeout)

    def _send(self, item: tuple[str, dict[str, Any], Any, int]) -> None:
        kind, base, payload, _ = item
        if self.gone:
            return
        try:
            if kind == "event":
                self._post(dumps(fit(base)))
            elif kind == "audio":
                for i in range(0, len(payload), AUDIO_DELTA_BYTES):
                    self._post(dumps({"type": "response.audio.delta", "event_id": new_id("event"), **base,
                                      "delta": base64.b64encode(payload[i:i + AUDIO_DELTA_BYTES]).decode("ascii")}))
                    if self.first_audio_at is None:
                        self.first_audio_at = time.perf_counter()
            else:
                for i in range(0, len(payload), TEXT_DELTA_CHARS):
                    self._post(dumps({"type": kind, "event_id": new_id("event"), **base,
                                      "delta": payload[i:i + TEXT_DELTA_CHARS]}))
        except ConnectionGone:
            self._drop()
        except Exception as exc:  # noqa: BLE001 - a post that failed for another reason: log, go on
            with self._lock:
                self._failures += 1
                failures = self._failures
            logger.warning("realtime post failed", extra={"connection_id": self.connection_id, "error": type(exc).__name__})
            if failures >= MAX_FAILURES:
                self._drop()

    def _drop(self) -> None:
        self.gone = True
        with self._order:
            self._order.notify_all()
        for lane in self._lanes.values():
            lane.clear()

    def _post(self, data: bytes) -> None:
        self.connections.post(self.connection_id, data)
        with self._lock:
            self.posted += 1
            self._failures = 0


class _Lane:
    """One ordered queue and the thread posting it. Deltas that piled up behind the one being
    posted are merged (same kind and item), never waiting for more."""

    def __init__(self, sender: EventSender, name: str) -> None:
        self.sender = sender
        self.name = name
        self._queue: deque[tuple[str, dict[str, Any], Any, int]] = deque()  # kind, base, payload, events before it
        self._cond = threading.Condition()
        self._idle = True
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"rt-send-{name}", daemon=True)
        self._thread.start()

    def put(self, item: tuple[str, dict[str, Any], Any, int]) -> None:
        if self.sender.gone:
            return
        with self._cond:
            self._queue.append(item)
            self._idle = False
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._queue.clear()
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def flush(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        with self._cond:
            while not (self._idle and not self._queue):
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _take(self) -> tuple[str, dict[str, Any], Any, int] | None:
        with self._cond:
            while not self._queue:
                self._idle = True
                self._cond.notify_all()
                if self._stopped:
                    return None
                self._cond.wait()
            kind, base, payload, after = self._queue.popleft()
            if kind != "event":
                parts = [payload]
                size = len(payload)
                limit = AUDIO_DELTA_BYTES * 4 if kind == "audio" else TEXT_DELTA_CHARS * 4
                while self._queue and size < limit:
                    k2, b2, p2, a2 = self._queue[0]
                    if k2 != kind or b2.get("item_id") != base.get("item_id") or a2 != after:
                        break
                    self._queue.popleft()
                    parts.append(p2)
                    size += len(p2)
                payload = b"".join(parts) if kind == "audio" else "".join(parts)
            self._idle = False
            return kind, base, payload, after

    def _run(self) -> None:
        sender = self.sender
        while True:
            item = self._take()
            if item is None:
                return
            if self.name == "audio":
                sender._wait_for_events(item[3])
            sender._send(item)
            if item[0] == "event":
                sender._event_posted()


def fit(event: dict[str, Any], limit: int = MESSAGE_BYTES) -> dict[str, Any]:
    """An event within the message limit: long transcripts in `*.done` events are cut (their
    text already went out in deltas), marked `"truncated": true`."""
    if len(dumps(event)) <= limit:
        return event
    import copy

    out = copy.deepcopy(event)

    def cut(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in list(node.items()):
                if k in ("transcript", "text") and isinstance(v, str) and len(v) > 2000:
                    node[k] = v[:2000]
                    node["truncated"] = True
                else:
                    cut(v)
        elif isinstance(node, list):
            for v in node:
                cut(v)

    cut(out)
    return out
