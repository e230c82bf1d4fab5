"""The `llm_gateway` Lambda layer, from a folder built by infra/build_layer.py (no Docker)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import spec

ASSET_EXCLUDE = ["**/__pycache__", "**/*.pyc", "*.egg-info", "**/*.egg-info"]


def runtime() -> lambda_.Runtime:
    """The managed runtime matching `spec.PYTHON_VERSION` (the layer's wheels are built for it)."""
    return getattr(lambda_.Runtime, "PYTHON_" + spec.PYTHON_VERSION.replace(".", "_"))


class GatewayLayer(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, asset: Path) -> None:
        super().__init__(scope, construct_id)
        self.layer = lambda_.LayerVersion(
            self, "Layer",
            code=lambda_.Code.from_asset(str(asset), exclude=ASSET_EXCLUDE),
            compatible_runtimes=[runtime()],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description="llm_gateway package and its runtime dependencies",
        )
