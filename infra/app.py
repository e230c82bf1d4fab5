#!/usr/bin/env python3
"""CDK entry point (`cdk.json`: `python3 infra/app.py`, run with the project venv active).

    python infra/build_layer.py     # build/layer + build/functions (pip, no Docker)
    python infra/app.py             # synthesize into cdk.out/ without the CDK CLI (offline)
    npx aws-cdk deploy              # or: npx aws-cdk deploy --app cdk.out
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, Python puts infra/ first on sys.path, where infra/constructs/ would shadow the
# `constructs` library; use the repo root instead.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "infra"]
sys.path.insert(0, str(ROOT))

from infra.jsii_env import configure_jsii  # noqa: E402

configure_jsii()

import aws_cdk as cdk  # noqa: E402

from infra.config import GatewayConfig  # noqa: E402
from infra.nag import apply_nag  # noqa: E402
from infra.stack import GatewayStack  # noqa: E402


def main() -> None:
    if os.environ.get("CDK_OUTDIR"):  # run by the CDK CLI: it passes cdk.json's context itself
        app = cdk.App()
    else:  # run directly: read cdk.json's context and write the same cdk.out the CLI would
        context = json.loads((ROOT / "cdk.json").read_text()).get("context", {})
        app = cdk.App(outdir=str(ROOT / "cdk.out"), context=context)
    config = GatewayConfig.from_context(app.node)
    env = cdk.Environment(
        account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=os.environ.get("CDK_DEFAULT_REGION"),
    )
    GatewayStack(app, config.stack_name, config=config, env=env)
    if config.nag:
        apply_nag(app)
    app.synth()


if __name__ == "__main__":
    main()
