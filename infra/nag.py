"""cdk-nag's AwsSolutions checks (v3: a CDK policy-validation plugin).

Accepted findings are acknowledged where the resource is defined (`acknowledge(...)` calls in
infra/constructs/), each on the narrowest construct and with its reason; tests/infra asserts that
nothing else is reported. Acknowledgments use CDK's own `Validations` API, so they cost nothing
when cdk-nag is not installed.
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Acknowledgment, App, Stack, Validations
from constructs import IConstruct


def nag_available() -> bool:
    try:
        import cdk_nag  # noqa: F401
    except ImportError:
        return False
    return True


def apply_nag(app: App, *, verbose: bool = True) -> bool:
    """Register AwsSolutionsChecks on `app`; False when cdk-nag is not installed."""
    if not nag_available():
        return False
    from cdk_nag import AwsSolutionsChecks

    Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=verbose))
    return True


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Accept one AwsSolutions finding (e.g. `L1`, `IAM5[Resource::*]`) on `construct` and below."""
    Validations.of(construct).acknowledge(Acknowledgment(id=f"AwsSolutions-{rule}", reason=reason))


def finding_resource(scope: IConstruct, value: Any) -> str:
    """A resource (ARN token) as cdk-nag prints it in a finding: `Ref` -> `<Id>`, `Fn::GetAtt`
    -> `<Id.Attr>`, joins flattened, literal region/account when the stack has an environment."""

    def render(node: Any) -> str:
        if isinstance(node, str):
            return node
        if isinstance(node, dict) and "Ref" in node:
            return f"<{node['Ref']}>"
        if isinstance(node, dict) and "Fn::GetAtt" in node:
            return "<{}.{}>".format(*node["Fn::GetAtt"])
        if isinstance(node, dict) and "Fn::Join" in node:
            sep, parts = node["Fn::Join"]
            return sep.join(render(p) for p in parts)
        raise ValueError(f"cannot render {node!r}")

    return render(Stack.of(scope).resolve(value))
