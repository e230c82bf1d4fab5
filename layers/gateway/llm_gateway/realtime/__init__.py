"""Realtime audio/text sessions over API Gateway's WebSocket API (`WS /realtime`).

A Lambda cannot hold a provider socket between invocations, so a session lives in DynamoDB
(`stores/sessions.py`, TTL) and each committed turn runs in a worker invocation:

    functions/realtime/handler.py   $connect / $default / $disconnect, and worker tasks
    service.py                      the routes: auth + model at connect, client events, close
    protocol.py                     event names (OpenAI Realtime), session config, error codes, limits
    worker.py                       greeting (`session.created`) and turns: audio → upstream → events, usage
    upstream/                       a provider's realtime socket (OpenAI) or an STT → chat → TTS chain
    sender.py                       server events through `@connections` (`stores/connections.py`), frame-sized
    audio.py                        pcm16 / G.711 / WAV checks and conversions
    usage.py                        realtime usage bodies, cost, estimates, the session summary
    launch.py                       how a worker task starts (async Lambda invoke, or a thread locally)

Local mode serves the same handler at `ws://…/realtime` (`llm_gateway/local/realtime.py`).
The README's "Realtime" section documents the protocol, limits and error codes.
"""
