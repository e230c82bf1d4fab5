"""What the job and batch runners share: the chat pipeline, governance and the usage reporter,
built on first use (a workflow task that only polls never imports the pipeline)."""

from __future__ import annotations

from typing import Any


class PipelineCollaborators:
    _pipeline: Any = None
    _usage: Any = None

    @property
    def pipeline(self) -> Any:
        if self._pipeline is None:
            from llm_gateway.pipeline.chat import ChatPipeline

            self._pipeline = ChatPipeline()
        return self._pipeline

    @property
    def governance(self) -> Any:
        """Steps 2, 3, 5 of the pipeline for the work the worker does outside `ChatPipeline`."""
        from llm_gateway.pipeline.governance import get_governance

        return get_governance()

    @property
    def usage(self) -> Any:
        if self._usage is None:
            from llm_gateway.pipeline.usage import UsageReporter

            self._usage = UsageReporter()
        return self._usage
