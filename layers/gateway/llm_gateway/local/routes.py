"""Which Lambda entry point serves which path — the local twin of the HTTP API's routes.

Local mode emulates API Gateway, so it is the one place outside `functions/` that names the
handlers (by module path, imported on first use).
"""

from __future__ import annotations

# (path prefix, handler module); first match wins
HTTP_ROUTES: list[tuple[str, str]] = [
    ("/chat/completions", "functions.chat.handler"),
    ("/models", "functions.chat.handler"),
    ("/embeddings", "functions.embeddings.handler"),
    ("/jobs", "functions.jobs.handler"),
    ("/batches", "functions.batches.handler"),
    ("/usage", "functions.admin.handler"),
    ("/openai/", "functions.compat.handler"),
    ("/anthropic/", "functions.compat.handler"),
]


def handler_module_for(path: str) -> str | None:
    for prefix, module in HTTP_ROUTES:
        if path == prefix or path.startswith(prefix.rstrip("/") + "/") or (prefix.endswith("/") and path.startswith(prefix)):
            return module
    return None
