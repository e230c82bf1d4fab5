"""Realtime sessions in DynamoDB (`LLMGW_SESSIONS_TABLE`, keys `pk`/`sk`, TTL attribute `ttl`).

Per WebSocket connection (`pk = C#<connection id>`):

- one meta item (`sk = META`): who (tenant, user, key), the model, the session configuration,
  the audio buffer counters, the running turn, and the usage totals of the session (numbers
  added atomically per turn);
- the text history of the conversation (`sk = HISTORY`: transcripts, bounded), which a new
  provider socket is told at the start of each turn; deleted when the session closes;
- buffered audio (`sk = A#<buffer no>#<seq>`): one item per `input_audio_buffer.append`, read in
  order when a turn starts and deleted after it.

Every state change is one conditional `UpdateItem`, so concurrent invocations for the same
connection (API Gateway may run them side by side) cannot start two turns, lose an append past
the limit, or close twice. Items expire (`ttl`) an hour after the session's 2-hour cap; reads
filter on `expires_at`/`closed_at` themselves (DynamoDB deletes expired items lazily).
"""

from __future__ import annotations

import json
import time
from typing import Any

from llm_gateway.config import settings
from llm_gateway.stores.aws import client

META = "META"
HISTORY = "HISTORY"
TTL_GRACE_S = 3600
AUDIO_TTL_S = 3600


def stale_after_s() -> float:
    """A turn still marked running this long after it started died with its worker (a Lambda
    timeout): the next turn may replace it instead of waiting for the session's end."""
    return settings().realtime_turn_timeout_s + 60.0


class SessionGone(Exception):
    """No such session, or it is closed."""


class ConditionFailed(Exception):
    """A state change's condition did not hold; `item` is the meta item as it is now (or None)."""

    def __init__(self, item: dict[str, Any] | None) -> None:
        super().__init__("condition failed")
        self.item = item


def _pk(connection_id: str) -> dict[str, str]:
    return {"S": f"C#{connection_id}"}


def _key(connection_id: str, sk: str = META) -> dict[str, Any]:
    return {"pk": _pk(connection_id), "sk": {"S": sk}}


def _audio_sk(buffer_no: int, seq: int) -> str:
    return f"A#{buffer_no:08d}#{seq:010d}"


def _number(value: int | float) -> str:
    """A DynamoDB number: plain decimal notation (no exponent, which some readers reject)."""
    if isinstance(value, int):
        return str(value)
    from decimal import Decimal

    text = format(Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def to_attr(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, (int, float)):
        return {"N": _number(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"B": bytes(value)}
    if value is None:
        return {"NULL": True}
    if isinstance(value, (dict, list)):
        return {"S": json.dumps(value, separators=(",", ":"), ensure_ascii=False)}
    return {"S": str(value)}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in item.items():
        (t, x), = v.items()
        if t == "N":
            out[k] = float(x) if any(c in x for c in ".eE") else int(x)
        elif t == "NULL":
            out[k] = None
        else:
            out[k] = x
    for k in ("config", "history", "scopes"):
        if isinstance(out.get(k), str):
            out[k] = json.loads(out[k])
    return out


USAGE_FIELDS = ("input_tokens", "output_tokens", "cached_tokens", "audio_in_tokens", "audio_out_tokens",
                "audio_in_s", "audio_out_s", "cost_usd", "turns_ok", "turns_failed", "turns_cancelled")


class SessionStore:
    def __init__(self, table: str | None = None) -> None:
        self.table = table or settings().sessions_table

    @property
    def ddb(self) -> Any:
        return client("dynamodb")

    # ------------------------------------------------------------ create / read

    def create(self, connection_id: str, fields: dict[str, Any]) -> None:
        item = {k: to_attr(v) for k, v in fields.items() if v is not None}
        item.update(_key(connection_id))
        item.update({"buffer_no": {"N": "0"}, "buffered_bytes": {"N": "0"}, "append_seq": {"N": "0"}, "turns": {"N": "0"}})
        for f in USAGE_FIELDS:
            item[f"u_{f}"] = {"N": "0"}
        item["ttl"] = {"N": str(int(fields["expires_at"]) + TTL_GRACE_S)}
        self.ddb.put_item(TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)")

    def get(self, connection_id: str, attrs: tuple[str, ...] | None = None) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"TableName": self.table, "Key": _key(connection_id), "ConsistentRead": True}
        if attrs:
            kwargs["ProjectionExpression"] = ", ".join(f"#a{i}" for i in range(len(attrs)))
            kwargs["ExpressionAttributeNames"] = {f"#a{i}": a for i, a in enumerate(attrs)}
        item = self.ddb.get_item(**kwargs).get("Item")
        return from_item(item) if item else None

    def live(self, connection_id: str, now: float | None = None) -> dict[str, Any]:
        """The meta item of an open session; SessionGone when there is none or it is closed."""
        meta = self.get(connection_id)
        if meta is None or meta.get("closed_at") is not None:
            raise SessionGone(connection_id)
        return meta

    def _update(self, connection_id: str, expr: str, values: dict[str, Any], *, condition: str | None = None,
                names: dict[str, str] | None = None, returns: str = "NONE") -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {"TableName": self.table, "Key": _key(connection_id), "UpdateExpression": expr,
                                  "ReturnValues": returns}
        if values:
            kwargs["ExpressionAttributeValues"] = {k: to_attr(v) for k, v in values.items()}
        if condition:
            kwargs["ConditionExpression"] = condition
            kwargs["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        if names:
            kwargs["ExpressionAttributeNames"] = names
        try:
            resp = self.ddb.update_item(**kwargs)
        except self.ddb.exceptions.ConditionalCheckFailedException as exc:
            old = exc.response.get("Item")
            raise ConditionFailed(from_item(old) if old else self.get(connection_id)) from None
        attrs = resp.get("Attributes")
        return from_item(attrs) if attrs else None

    # ------------------------------------------------------------ configuration

    def set_config(self, connection_id: str, config: dict[str, Any]) -> None:
        self._update(connection_id, "SET config = :c, last_active = :now", {":c": config, ":now": time.time()},
                     condition="attribute_exists(pk) AND attribute_not_exists(closed_at) AND attribute_not_exists(closing)")

    # ------------------------------------------------------------ audio buffer

    def reserve_append(self, connection_id: str, nbytes: int, max_bytes: int) -> dict[str, Any]:
        """Count `nbytes` into the current buffer (at most `max_bytes` in it): the meta item after
        the change (`buffer_no`, the append's `append_seq`, the buffer's new `buffered_bytes`, the
        config). ConditionFailed when the session is closed/closing or the buffer would exceed the limit."""
        out = self._update(
            connection_id,
            "ADD append_seq :one, buffered_bytes :n SET last_active = :now",
            {":one": 1, ":n": nbytes, ":cap": max_bytes - nbytes, ":now": time.time()},
            condition="attribute_exists(pk) AND attribute_not_exists(closed_at) AND attribute_not_exists(closing) "
                      "AND buffered_bytes <= :cap",
            returns="ALL_NEW")
        assert out is not None
        return out

    def release_append(self, connection_id: str, buffer_no: int, nbytes: int) -> None:
        """Give back a reservation whose audio was refused (same buffer only)."""
        try:
            self._update(connection_id, "ADD buffered_bytes :n", {":n": -nbytes, ":b": buffer_no},
                         condition="buffer_no = :b")
        except ConditionFailed:
            pass

    def put_audio(self, connection_id: str, buffer_no: int, seq: int, data: bytes) -> None:
        self.ddb.put_item(TableName=self.table, Item={
            "pk": _pk(connection_id), "sk": {"S": _audio_sk(buffer_no, seq)}, "data": {"B": data},
            "ttl": {"N": str(int(time.time()) + AUDIO_TTL_S)}})

    def read_audio(self, connection_id: str, first_buffer: int, last_buffer: int) -> bytes:
        """The audio appended to buffers `first_buffer..last_buffer`, in append order."""
        chunks: list[bytes] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table, "ConsistentRead": True,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :a AND :b",
            "ExpressionAttributeValues": {":pk": _pk(connection_id), ":a": {"S": f"A#{first_buffer:08d}#"},
                                          ":b": {"S": f"A#{last_buffer:08d}#~"}},
        }
        while True:
            resp = self.ddb.query(**kwargs)
            chunks.extend(item["data"]["B"] for item in resp.get("Items", []))
            last = resp.get("LastEvaluatedKey")
            if not last:
                return b"".join(chunks)
            kwargs["ExclusiveStartKey"] = last

    def delete_audio(self, connection_id: str, first_buffer: int | None = None, last_buffer: int | None = None) -> int:
        """Delete buffered audio (a range of buffers, or all of the connection's); how many items."""
        lo = f"A#{first_buffer:08d}#" if first_buffer is not None else "A#"
        hi = f"A#{last_buffer:08d}#~" if last_buffer is not None else "A#~"
        kwargs: dict[str, Any] = {
            "TableName": self.table, "ProjectionExpression": "pk, sk",
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :a AND :b",
            "ExpressionAttributeValues": {":pk": _pk(connection_id), ":a": {"S": lo}, ":b": {"S": hi}},
        }
        keys: list[dict[str, Any]] = []
        while True:
            resp = self.ddb.query(**kwargs)
            keys.extend({"pk": i["pk"], "sk": i["sk"]} for i in resp.get("Items", []))
            last = resp.get("LastEvaluatedKey")
            if not last:
                break
            kwargs["ExclusiveStartKey"] = last
        for i in range(0, len(keys), 25):
            requests = [{"DeleteRequest": {"Key": k}} for k in keys[i:i + 25]]
            for _ in range(5):
                resp = self.ddb.batch_write_item(RequestItems={self.table: requests})
                requests = resp.get("UnprocessedItems", {}).get(self.table) or []
                if not requests:
                    break
        return len(keys)

    def clear_buffer(self, connection_id: str) -> dict[str, Any]:
        out = self._update(connection_id, "SET buffer_no = buffer_no + :one, buffered_bytes = :zero, last_active = :now",
                           {":one": 1, ":zero": 0, ":now": time.time()},
                           condition="attribute_exists(pk) AND attribute_not_exists(closed_at) AND attribute_not_exists(closing)",
                           returns="UPDATED_OLD")
        assert out is not None
        return out

    # ------------------------------------------------------------ turns

    def commit(self, connection_id: str, item_id: str) -> dict[str, Any]:
        """`input_audio_buffer.commit`: close the current buffer; it waits (with any committed
        before it) for the next turn. The meta item after the change; ConditionFailed (with the
        item) when the buffer is empty or the session is closed."""
        out = self._update(
            connection_id,
            "SET pending_from = if_not_exists(pending_from, buffer_no), pending_item = if_not_exists(pending_item, :item), "
            "buffer_no = buffer_no + :one, buffered_bytes = :zero, last_active = :now REMOVE implicit_commit",
            {":one": 1, ":zero": 0, ":now": time.time(), ":item": item_id},
            condition="attribute_exists(pk) AND attribute_not_exists(closed_at) AND attribute_not_exists(closing) "
                      "AND buffered_bytes > :zero",
            returns="ALL_NEW")
        assert out is not None
        return out

    def start_turn(self, connection_id: str, turn_id: str) -> dict[str, Any]:
        """Start a turn over the committed buffers (`response.create`, or a commit with
        `turn_detection.create_response`). ConditionFailed when nothing is committed, a turn is
        running, or the session is closed."""
        now = time.time()
        out = self._update(
            connection_id,
            "SET active_turn = :t, active_since = :now, turn_from = pending_from, turn_to = buffer_no - :one, "
            "turn_item = pending_item, turns = turns + :one, last_active = :now "
            "REMOVE pending_from, pending_item, cancel_turn, implicit_commit",
            {":t": turn_id, ":now": now, ":one": 1, ":stale": now - stale_after_s()},
            condition="attribute_exists(pk) AND attribute_not_exists(closed_at) AND attribute_not_exists(closing) "
                      "AND attribute_exists(pending_from) AND (attribute_not_exists(active_turn) OR active_since < :stale)",
            returns="ALL_NEW")
        assert out is not None
        return out

    def start_uncommitted(self, connection_id: str, turn_id: str, item_id: str) -> dict[str, Any]:
        """`response.create` with appended but uncommitted audio: commit it and start the turn in
        one step (so a `commit` + `response.create` pair that API Gateway runs in the opposite
        order still works; the late commit is then acknowledged, not refused)."""
        now = time.time()
        out = self._update(
            connection_id,
            "SET active_turn = :t, active_since = :now, turn_from = if_not_exists(pending_from, buffer_no), "
            "turn_to = buffer_no, turn_item = if_not_exists(pending_item, :item), buffer_no = buffer_no + :one, "
            "buffered_bytes = :zero, turns = turns + :one, implicit_commit = :yes, last_active = :now "
            "REMOVE pending_from, pending_item, cancel_turn",
            {":t": turn_id, ":now": now, ":one": 1, ":zero": 0, ":item": item_id, ":yes": True, ":stale": now - stale_after_s()},
            condition="attribute_exists(pk) AND attribute_not_exists(closed_at) AND attribute_not_exists(closing) "
                      "AND buffered_bytes > :zero AND (attribute_not_exists(active_turn) OR active_since < :stale)",
            returns="ALL_NEW")
        assert out is not None
        return out

    def take_implicit_commit(self, connection_id: str) -> dict[str, Any] | None:
        """A commit that found its audio already taken by `response.create`: the meta item (its
        running turn's `turn_item`) once, else None."""
        try:
            return self._update(connection_id, "REMOVE implicit_commit", {":yes": True},
                                condition="implicit_commit = :yes", returns="ALL_NEW")
        except ConditionFailed:
            return None

    def request_cancel(self, connection_id: str) -> str:
        """Mark the running turn cancelled; its id. ConditionFailed when none runs."""
        out = self._update(connection_id, "SET cancel_turn = active_turn, last_active = :now", {":now": time.time()},
                           condition="attribute_exists(active_turn)", returns="UPDATED_NEW")
        assert out is not None
        return str(out["cancel_turn"])

    def turn_state(self, connection_id: str) -> dict[str, Any] | None:
        return self.get(connection_id, ("active_turn", "cancel_turn", "closing", "closed_at"))

    def finish_turn(self, connection_id: str, turn_id: str, usage: dict[str, float], history: list[dict[str, Any]] | None) -> bool:
        """End the turn in one transaction: add its usage to the session totals, free the turn
        slot and (when given) replace the text history. False when the session was closed
        meanwhile (the turn's own usage record still counts)."""
        parts = [f"u_{k} :{k}" for k in usage]
        values: dict[str, Any] = {f":{k}": to_attr(v) for k, v in usage.items()}
        values[":t"] = {"S": turn_id}
        values[":now"] = to_attr(time.time())
        expr = "REMOVE active_turn, cancel_turn SET last_active = :now"
        if parts:
            expr += " ADD " + ", ".join(parts)
        items: list[dict[str, Any]] = [{"Update": {
            "TableName": self.table, "Key": _key(connection_id), "UpdateExpression": expr,
            "ConditionExpression": "active_turn = :t AND attribute_not_exists(closed_at)",
            "ExpressionAttributeValues": values}}]
        if history is not None:
            meta_ttl = int(time.time()) + settings().realtime_max_s + TTL_GRACE_S
            items.append({"Put": {"TableName": self.table, "Item": {
                **_key(connection_id, HISTORY), "history": to_attr(history), "ttl": {"N": str(meta_ttl)}}}})
        try:
            self.ddb.transact_write_items(TransactItems=items)
            return True
        except self.ddb.exceptions.TransactionCanceledException:
            return False

    def history(self, connection_id: str) -> list[dict[str, Any]]:
        """The text of the conversation so far (what a new provider socket is told)."""
        item = self.ddb.get_item(TableName=self.table, Key=_key(connection_id, HISTORY), ConsistentRead=True).get("Item")
        return json.loads(item["history"]["S"]) if item else []

    # ------------------------------------------------------------ close

    def begin_close(self, connection_id: str, reason: str) -> dict[str, Any] | None:
        """Stop new work (appends, turns) and cancel the running turn. The meta item, or None when
        there is no session or it is already closed."""
        try:
            return self._update(
                connection_id,
                "SET closing = if_not_exists(closing, :now), close_reason = if_not_exists(close_reason, :r), "
                "cancel_turn = if_not_exists(active_turn, :none)",
                {":now": time.time(), ":r": reason, ":none": ""},
                condition="attribute_exists(pk) AND attribute_not_exists(closed_at)", returns="ALL_NEW")
        except ConditionFailed:
            return None

    def finish_close(self, connection_id: str) -> dict[str, Any] | None:
        """Mark the session closed — exactly once: the meta item with its final totals for the one
        caller that closed it, None for everyone else. The conversation history is deleted."""
        try:
            meta = self._update(connection_id, "SET closed_at = :now", {":now": time.time()},
                                condition="attribute_exists(pk) AND attribute_not_exists(closed_at)", returns="ALL_NEW")
        except ConditionFailed:
            return None
        self.ddb.delete_item(TableName=self.table, Key=_key(connection_id, HISTORY))
        return meta


def invoke_worker(function: str, payload: dict[str, Any]) -> None:
    """Start the realtime worker function asynchronously (`InvocationType=Event`)."""
    client("lambda").invoke(FunctionName=function, InvocationType="Event",
                            Payload=json.dumps(payload, separators=(",", ":")).encode("utf-8"))
