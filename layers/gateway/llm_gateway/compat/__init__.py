"""OpenAI- and Anthropic-compatible front doors.

Both doors translate into the native contract and call the same services (`ChatService`,
`EmbeddingsService`), so authentication, governance, hooks, fallback, usage and audit are the
native path's, unchanged. The modules:

- `openai.py`, `anthropic.py`: pure translation — a door body (+ extension headers) → a native
  request dict; a native response / SSE frame iterator → the door's body / events; a native
  problem → the door's error shape and status.
- `common.py`: what both doors share (extension headers, SSE frame parsing, multipart).
- `service.py`: `CompatService`, one method per route (HttpRequest → HttpResponse), used by the
  HTTP API Lambda (`functions/compat`) and, for streamed chat, by the streaming app.
- `stream.py`: the ASGI wrapper that lets the streaming app (Function URL / local server) serve
  the doors' streamed chat routes with true SSE.
"""
