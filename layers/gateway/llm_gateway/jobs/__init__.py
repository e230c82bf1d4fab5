"""Async jobs and batches (README: "Jobs and batches").

- `service.py` — `POST/GET/DELETE /jobs`, and chat requests that run as jobs;
- `batch_service.py` — `POST /batches`, `GET /batches/{id}`, cancel;
- `jobrunner.py`, `batchrunner.py` — the work itself, run by `worker.py` (the
  `functions/workflow` Lambda) under the Step Functions state machine of `workflow.asl.json`;
- `backends.py` — the OpenAI Batch API and Anthropic Message Batches behind one shape;
- `ids.py` — ids that carry their expiry.

Storage is in `stores/jobs.py`, `stores/batches.py` and `stores/workflows.py` (only `stores`
touches AWS). This module stays import-light: the chat path asks it one question per request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llm_gateway.api.models import ChatRequest


def runs_as_job(request: "ChatRequest") -> bool:
    """True when a chat request runs as a job: `"async": true`, or its model's provider runs
    generations as long tasks (video generation; `ProviderAdapter.is_async`)."""
    if request.async_:
        return True
    from llm_gateway.registry.catalog import get_catalog

    model = get_catalog().lookup(request.model)
    if model is None or ("video_generation" not in model.capabilities and not model.options.get("async_task")):
        return False
    from llm_gateway.providers import adapter_for

    return adapter_for(model.provider).is_async(model)
