"""The state machine definition: one ASL file (`workflow.asl.json`) that CDK and local mode load.

Placeholders are `${Name}` strings, exactly CloudFormation's `DefinitionSubstitutions`, so CDK
passes the file as is (`DefinitionBody.from_file` + `definition_substitutions`) and local mode
substitutes them here. Pure Python: no AWS import.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

DEFINITION_PATH = Path(__file__).resolve().parent / "workflow.asl.json"
PLACEHOLDERS = ("WorkflowFunctionArn",)
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_]+)\}")


def raw_definition() -> str:
    return DEFINITION_PATH.read_text(encoding="utf-8")


def render(substitutions: dict[str, str]) -> str:
    """The definition with every `${Name}` replaced; unknown or missing names are an error."""
    text = raw_definition()
    missing = {m.group(1) for m in _PLACEHOLDER.finditer(text)} - set(substitutions)
    if missing:
        raise ValueError(f"state machine definition needs substitutions for {sorted(missing)}")
    out = _PLACEHOLDER.sub(lambda m: substitutions[m.group(1)], text)
    json.loads(out)  # still valid JSON
    return out


def definition(substitutions: dict[str, str]) -> dict[str, Any]:
    return json.loads(render(substitutions))
