"""(c) Cold import time and peak RSS of each Lambda handler module, each in a fresh interpreter.

Every `functions/*/handler.py` (and `functions/chat_stream/app.py` when present) is imported in a
new subprocess, timed around the import itself (interpreter start-up excluded, as Lambda's init
phase reports it separately), with peak RSS from `resource.getrusage(RUSAGE_SELF).ru_maxrss`
(whole process, interpreter included). Two environments:
- **Lambda-like**: `AWS_LAMBDA_FUNCTION_NAME` and `LAMBDA_TASK_ROOT` set, so Powertools' Tracer is
  enabled as on the deployed functions (tracing ACTIVE: the X-Ray SDK is imported and patches
  libraries), no local-mode variables;
- **local**: the local server's environment (Tracer and metrics disabled).
One extra run per module under `python -X importtime` names the heaviest top-level imports.

Targets: import ≤ 0.35 s and peak RSS ≤ 80 MB.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench._common import BENCH_ENV, REPO, machine, table, verdict

TARGET_S = 0.35
TARGET_MB = 80.0
RUNS = int(os.environ.get("BENCH_IMPORT_RUNS", "5"))

PROBE = r"""
import json, resource, sys, time, importlib
t0 = time.perf_counter()
importlib.import_module(sys.argv[1])
dt = time.perf_counter() - t0
rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": dt, "rss_mb": rss_kb / 1024, "modules": len(sys.modules)}))
"""

ENVIRONMENTS: dict[str, dict[str, str]] = {
    "Lambda-like": {
        "AWS_LAMBDA_FUNCTION_NAME": "llmgw-bench",
        "LAMBDA_TASK_ROOT": "/var/task",  # Powertools enables its Tracer only inside Lambda
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_SERVICE_NAME": "llm-gateway",
        "POWERTOOLS_METRICS_NAMESPACE": "LLMGateway",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
    },
    "local": dict(BENCH_ENV),
}


def handler_modules() -> list[tuple[str, str]]:
    """(module name, path relative to the repo) for every handler and the streaming app."""
    out = []
    for path in sorted((REPO / "functions").glob("*/handler.py")):
        out.append((f"functions.{path.parent.name}.handler", str(path.relative_to(REPO))))
    app = REPO / "functions" / "chat_stream" / "app.py"
    if app.exists():
        out.append(("functions.chat_stream.app", str(app.relative_to(REPO))))
    return out


def _env(extra: dict[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "LLMGW_", "POWERTOOLS_", "PYTHON", "OPENAI_", "ANTHROPIC_", "GEMINI_"))}
    keep.update(extra)
    keep["PYTHONPATH"] = str(REPO)
    keep["PYTHONDONTWRITEBYTECODE"] = "1"  # bytecode already cached by earlier runs; don't write more
    return keep


def _probe(module: str, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-c", PROBE, module], cwd=str(REPO), env=env, capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"importing {module} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def heaviest_imports(module: str, env: dict[str, str], top: int = 6) -> list[tuple[str, float]]:
    """Top-level packages by import time (the sum of their modules' self times, µs → ms), from `-X importtime`."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"], cwd=str(REPO), env=env,
                          capture_output=True, text=True, timeout=60)
    totals: dict[str, float] = {}
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        try:
            self_us, _cumulative, name = line[len("import time:"):].split("|")
        except ValueError:
            continue
        pkg = name.strip().split(".")[0]
        if pkg == "functions":
            continue
        totals[pkg] = totals.get(pkg, 0.0) + int(self_us) / 1000
    return sorted(totals.items(), key=lambda kv: -kv[1])[:top]


def measure(runs: int = RUNS) -> dict[str, Any]:
    results: dict[str, Any] = {"runs": runs, "modules": {}}
    for module, rel in handler_modules():
        entry: dict[str, Any] = {"path": rel}
        for env_name, extra in ENVIRONMENTS.items():
            env = _env(extra)
            _probe(module, env)  # first run compiles/caches bytecode and warms the page cache
            samples = [_probe(module, env) for _ in range(runs)]
            secs = [s["seconds"] for s in samples]
            rss = [s["rss_mb"] for s in samples]
            entry[env_name] = {
                "median_s": statistics.median(secs), "max_s": max(secs),
                "median_mb": statistics.median(rss), "max_mb": max(rss), "modules": samples[-1]["modules"],
            }
        entry["heaviest"] = heaviest_imports(module, _env(ENVIRONMENTS["Lambda-like"]))
        results["modules"][module] = entry
    return results


def render(r: dict[str, Any]) -> str:
    rows = []
    all_ok = True
    for module, e in r["modules"].items():
        for env_name in ENVIRONMENTS:
            m = e[env_name]
            ok = m["max_s"] <= TARGET_S and m["max_mb"] <= TARGET_MB
            all_ok &= ok
            rows.append([f"`{e['path']}`", env_name, f"{m['median_s']:.3f}", f"{m['max_s']:.3f}", f"{m['median_mb']:.1f}",
                         f"{m['max_mb']:.1f}", m["modules"], verdict(ok)])
    heavy = [f"- `{e['path']}`: " + ", ".join(f"{name} {ms_:.0f} ms" for name, ms_ in e["heaviest"])
             for e in r["modules"].values()]
    return "\n".join([
        "## Cold import (handler modules)",
        "",
        f"Each module imported in a fresh `{Path(sys.executable).name}` process, {r['runs']} runs per environment "
        f"after one warm-up run (bytecode cached); time around the import only, peak RSS of the whole process. "
        f"Machine: {machine()}.",
        "",
        table(["module", "environment", "import s (median)", "import s (max)", "peak RSS MB (median)", "peak RSS MB (max)",
               "modules loaded", f"≤ {TARGET_S} s, ≤ {TARGET_MB:g} MB"], rows),
        "",
        "Heaviest packages (Lambda-like, one `-X importtime` run, sum of self times — module bodies included):",
        *heavy,
        "",
        f"Targets import ≤ {TARGET_S} s and peak RSS ≤ {TARGET_MB:g} MB (max over runs): {verdict(all_ok)}.",
        "",
    ])


def main() -> str:
    return render(measure())


if __name__ == "__main__":
    print(main())
