"""Usage of realtime turns and sessions: OpenAI-Realtime-shaped usage bodies, cost, estimates."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from llm_gateway.providers.base import TokenUsage
from llm_gateway.registry.catalog import cost_of

# estimates when a provider never reported usage (a socket that dropped mid-turn): OpenAI bills
# about 10 audio tokens a second of input and 20 a second of output; text about 4 characters a token
AUDIO_IN_TOKENS_PER_S = 10
AUDIO_OUT_TOKENS_PER_S = 20
CHARS_PER_TOKEN = 4


@dataclass(slots=True)
class RealtimeUsage:
    input_text_tokens: int = 0
    input_audio_tokens: int = 0
    cached_tokens: int = 0
    output_text_tokens: int = 0
    output_audio_tokens: int = 0
    audio_in_s: float = 0.0
    audio_out_s: float = 0.0
    cost_usd: float | None = None  # set by the chain (each step at its own model's prices)
    estimated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_tokens(self) -> int:
        return self.input_text_tokens + self.input_audio_tokens

    @property
    def output_tokens(self) -> int:
        return self.output_text_tokens + self.output_audio_tokens

    def token_usage(self) -> TokenUsage:
        return TokenUsage(input_tokens=self.input_tokens, output_tokens=self.output_tokens,
                          cached_input_tokens=self.cached_tokens, seconds=round(self.audio_in_s + self.audio_out_s, 3))

    def body(self, cost: float | None = None) -> dict[str, Any]:
        """The `usage` of a `response.done` (OpenAI's fields, plus the gateway's audio seconds and cost)."""
        out: dict[str, Any] = {
            "total_tokens": self.input_tokens + self.output_tokens,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "input_token_details": {"cached_tokens": self.cached_tokens, "text_tokens": self.input_text_tokens,
                                    "audio_tokens": self.input_audio_tokens},
            "output_token_details": {"text_tokens": self.output_text_tokens, "audio_tokens": self.output_audio_tokens},
            "audio_in_seconds": round(self.audio_in_s, 3),
            "audio_out_seconds": round(self.audio_out_s, 3),
        }
        if cost is not None:
            out["cost_usd"] = round(cost, 10)
        if self.estimated:
            out["estimated"] = True
        return out

    @classmethod
    def from_openai(cls, raw: dict[str, Any] | None) -> "RealtimeUsage | None":
        if not isinstance(raw, dict):
            return None
        ind = raw.get("input_token_details") or {}
        outd = raw.get("output_token_details") or {}
        in_total = int(raw.get("input_tokens") or 0)
        out_total = int(raw.get("output_tokens") or 0)
        in_audio = int(ind.get("audio_tokens") or 0)
        out_audio = int(outd.get("audio_tokens") or 0)
        in_text = int(ind["text_tokens"]) if "text_tokens" in ind else max(0, in_total - in_audio)
        out_text = int(outd["text_tokens"]) if "text_tokens" in outd else max(0, out_total - out_audio)
        return cls(input_text_tokens=in_text, input_audio_tokens=in_audio, cached_tokens=int(ind.get("cached_tokens") or 0),
                   output_text_tokens=out_text, output_audio_tokens=out_audio)


def turn_cost(pricing: dict[str, float], usage: RealtimeUsage) -> float:
    """USD for one turn. Audio tokens use `audio_input_per_mtok` / `audio_output_per_mtok` when the
    model is priced so, else the text prices; cached tokens `cached_input_per_mtok`."""
    if usage.cost_usd is not None:
        return usage.cost_usd
    p_in = pricing.get("input_per_mtok", 0.0)
    p_out = pricing.get("output_per_mtok", 0.0)
    cached = min(usage.cached_tokens, usage.input_tokens)
    text_in = max(0, usage.input_text_tokens - cached)
    total = (text_in * p_in + usage.input_audio_tokens * pricing.get("audio_input_per_mtok", p_in)
             + cached * pricing.get("cached_input_per_mtok", p_in)
             + usage.output_text_tokens * p_out + usage.output_audio_tokens * pricing.get("audio_output_per_mtok", p_out)) / 1e6
    for unit, value in (("per_second", usage.audio_in_s + usage.audio_out_s),):
        if unit in pricing:
            total += pricing[unit] * value
    return round(total, 10)


def step_cost(pricing: dict[str, float], usage: TokenUsage) -> float:
    return cost_of(pricing, usage)


def estimate(audio_in_s: float, audio_out_s: float, text_in_chars: int, text_out_chars: int) -> RealtimeUsage:
    return RealtimeUsage(input_text_tokens=-(-text_in_chars // CHARS_PER_TOKEN),
                         input_audio_tokens=round(audio_in_s * AUDIO_IN_TOKENS_PER_S),
                         output_text_tokens=-(-text_out_chars // CHARS_PER_TOKEN),
                         output_audio_tokens=round(audio_out_s * AUDIO_OUT_TOKENS_PER_S),
                         audio_in_s=audio_in_s, audio_out_s=audio_out_s, estimated=True)


def totals_delta(usage: RealtimeUsage, cost: float, status: str) -> dict[str, float]:
    """What one turn adds to the session totals (stores/sessions.py `u_*` numbers)."""
    return {
        "input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens, "cached_tokens": usage.cached_tokens,
        "audio_in_tokens": usage.input_audio_tokens, "audio_out_tokens": usage.output_audio_tokens,
        "audio_in_s": round(usage.audio_in_s, 3), "audio_out_s": round(usage.audio_out_s, 3), "cost_usd": round(cost, 10),
        "turns_ok": 1 if status in ("completed", "incomplete") else 0,
        "turns_failed": 1 if status == "failed" else 0,
        "turns_cancelled": 1 if status == "cancelled" else 0,
    }


def summary_of(meta: dict[str, Any], closed_at: float) -> dict[str, Any]:
    """The session's usage summary (sent with `session.closed`, stored as its usage summary)."""
    g = lambda k: meta.get(f"u_{k}") or 0  # noqa: E731
    return {
        "session_id": meta.get("session_id"),
        "model": meta.get("model"),
        "duration_s": round(max(0.0, closed_at - float(meta.get("connected_at") or closed_at)), 3),
        "turns": int(g("turns_ok") + g("turns_failed") + g("turns_cancelled")),
        "turns_completed": int(g("turns_ok")),
        "turns_failed": int(g("turns_failed")),
        "turns_cancelled": int(g("turns_cancelled")),
        "total_tokens": int(g("input_tokens") + g("output_tokens")),
        "input_tokens": int(g("input_tokens")),
        "output_tokens": int(g("output_tokens")),
        "input_token_details": {"cached_tokens": int(g("cached_tokens")), "audio_tokens": int(g("audio_in_tokens")),
                                "text_tokens": int(g("input_tokens") - g("audio_in_tokens"))},
        "output_token_details": {"audio_tokens": int(g("audio_out_tokens")),
                                 "text_tokens": int(g("output_tokens") - g("audio_out_tokens"))},
        "audio_in_seconds": round(float(g("audio_in_s")), 3),
        "audio_out_seconds": round(float(g("audio_out_s")), 3),
        "cost_usd": round(float(g("cost_usd")), 10),
    }
