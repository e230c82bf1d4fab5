"""How a turn reaches the model: a provider's realtime socket, or a speech chain.

| transport | used for                                                        | module                 |
| --------- | --------------------------------------------------------------- | ---------------------- |
| `socket`  | OpenAI Realtime (`openai`, the kind's default)                  | `upstream/openai.py`   |
| `socket`  | Gemini Live (`gemini` models with `realtime_transport: socket`) | `upstream/gemini.py`   |
| `chain`   | everyone else (the `mock`, …): speech-to-text → chat → text-to-speech through the provider adapters | `upstream/chain.py` |

The model option `realtime_transport` (`socket` | `chain`) overrides the default of its provider
kind: `socket` for the kinds in `DEFAULT_SOCKET_KINDS`, `chain` for the others. A `gemini` model
takes the socket only when its option says so (only Live models have a Live API; the kind's other
models keep the chain). A `chain` model names its steps in the option `realtime` (`{"stt": id,
"chat": id, "tts": id}`); a step it does not name is the model itself (which then needs that
capability). The socket upstreams share `upstream/socket_base.py` (the background handshake under
the circuit breaker, the provider's HTTP refusals mapped to errors, closing).

An upstream runs one turn: `run(turn)` yields `UpEvent`s (audio already in the session's output
format) and ends with exactly one `usage` event; `status` says how it ended (`completed`,
`incomplete`, `cancelled`). A failure raises `GatewayError` (provider_error / provider_timeout /
capability_not_supported), after yielding the usage it knows.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llm_gateway.realtime.usage import RealtimeUsage
    from llm_gateway.registry.catalog import ModelSpec

SOCKET_KINDS = {"openai": "llm_gateway.realtime.upstream.openai:OpenAIRealtime",
                "gemini": "llm_gateway.realtime.upstream.gemini:GeminiLive"}
# kinds whose realtime models take the socket unless their option says `chain`; the others opt in
DEFAULT_SOCKET_KINDS = frozenset({"openai"})
CHAIN = "llm_gateway.realtime.upstream.chain:SpeechChain"


@dataclass(slots=True)
class Turn:
    session_id: str
    response_id: str
    input_item_id: str
    output_item_id: str
    model: "ModelSpec"
    config: dict[str, Any]
    history: list[dict[str, str]]
    audio: bytes  # in config["input_audio_format"]
    tenant_id: str
    request_id: str
    deadline_s: float  # monotonic deadline of the whole turn
    cancelled: Callable[[], bool] = lambda: False
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class UpEvent:
    kind: str  # input_transcript | transcript | text | audio | usage
    text: str = ""
    data: bytes = b""
    usage: "RealtimeUsage | None" = None


class Upstream(ABC):
    transport: str = ""

    def __init__(self, model: "ModelSpec") -> None:
        self.model = model
        self.status = "completed"
        self.usage: "RealtimeUsage | None" = None  # set by run(), also when it raises or is cancelled

    @abstractmethod
    def run(self, turn: Turn) -> Iterator[UpEvent]:
        """The turn's events; the last is `usage`."""

    def prepare(self, config: dict[str, Any]) -> None:
        """Start what can start before the turn's audio is read and governance admitted it (a
        provider socket's handshake); `close()` undoes it when the turn does not run."""

    def check(self, config: dict[str, Any]) -> None:
        """Reject, at connect or session.update time, what this transport cannot do."""

    def close(self) -> None:
        """Abort whatever is open (provider socket)."""


def transport_of(model: "ModelSpec") -> str:
    explicit = model.options.get("realtime_transport")
    if explicit in ("socket", "chain"):
        return explicit
    return "socket" if model.provider.kind in DEFAULT_SOCKET_KINDS else "chain"


def upstream_for(model: "ModelSpec") -> Upstream:
    import importlib

    from llm_gateway.api.errors import GatewayError

    if transport_of(model) == "socket":
        target = SOCKET_KINDS.get(model.provider.kind)
        if target is None:
            raise GatewayError("capability_not_supported",
                               f"Model '{model.id}': provider kind '{model.provider.kind}' has no realtime socket in the gateway.",
                               model=model.id)
    else:
        target = CHAIN
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)(model)
