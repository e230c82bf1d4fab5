"""(c) Cold import time and peak RSS of each Lambda handler module, each in a fresh interpreter.

Every `functions/*/handler.py` (and `functions/chat_stream/app.py` when present) is imported in a
new subprocess, timed around the import itself (interpreter start-up excluded, as Lambda's init
phase reports it separately), with peak RSS from `resource.getrusage(RUSAGE_SELF).ru_maxrss`
(whole process, interpreter included). Two environments:
- **Lambda-like**: only what the deployed function has on its path — the layer's requirements
  (`layers/gateway/requirements.txt` + `infra.spec.LAYER_EXTRA_REQUIREMENTS`, pip-installed once
  for this machine's platform into `build/bench-layer/`, reused while the lists are unchanged),
  the `llm_gateway` source and `functions/` — run with `python -S` (no venv site-packages, so
  none of the dev/local extras such as moto, flask, click or requests), and
  `AWS_LAMBDA_FUNCTION_NAME` + `LAMBDA_TASK_ROOT` set so Powertools' Tracer is enabled as on the
  deployed functions (tracing ACTIVE: the X-Ray SDK is imported and patches libraries). When the
  layer cannot be installed (offline), the venv stands in and the section says so;
- **local**: the venv and the local server's environment (Tracer and metrics disabled).
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
RUNS = int(os.environ.get("BENCH_IMPORT_RUNS", "3"))

PROBE = r"""
import json, resource, sys, time, importlib
c0 = time.process_time()
t0 = time.perf_counter()
importlib.import_module(sys.argv[1])
dt = time.perf_counter() - t0
cpu = time.process_time() - c0
rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": dt, "cpu_s": cpu, "rss_mb": rss_kb / 1024, "modules": len(sys.modules)}))
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


def layer_requirements() -> list[str]:
    lines = (REPO / "layers" / "gateway" / "requirements.txt").read_text().splitlines()
    reqs = [line.split("#", 1)[0].strip() for line in lines]
    try:
        sys.path.insert(0, str(REPO))
        from infra import spec

        reqs += list(spec.LAYER_EXTRA_REQUIREMENTS)
    except Exception:  # noqa: BLE001 - infra is optional for this benchmark
        reqs.append("aws-xray-sdk")
    return [r for r in reqs if r]


def ensure_layer() -> tuple[Path | None, str]:
    """build/bench-layer/<hash>/python with the layer's requirements for this platform, or (None, why not)."""
    import hashlib

    reqs = layer_requirements()
    key = hashlib.sha256(("\n".join(sorted(reqs)) + sys.version).encode()).hexdigest()[:12]
    root = REPO / "build" / "bench-layer" / key
    site = root / "python"
    if (root / ".complete").exists():
        return site, ""
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-script-location",
           "--only-binary=:all:", "--target", str(site), *reqs]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=float(os.environ.get("BENCH_LAYER_PIP_TIMEOUT_S", "120")))
    except subprocess.TimeoutExpired:
        return None, "pip timed out"
    if proc.returncode != 0:
        return None, (proc.stderr.strip().splitlines() or ["pip failed"])[-1][:200]
    (root / ".complete").write_text("\n".join(reqs) + "\n")
    return site, ""


def _env(extra: dict[str, str], layer: Path | None = None) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("AWS_", "LLMGW_", "POWERTOOLS_", "PYTHON", "OPENAI_", "ANTHROPIC_", "GEMINI_"))}
    keep.update(extra)
    paths = [str(REPO)] if layer is None else [str(REPO), str(REPO / "layers" / "gateway"), str(layer)]
    keep["PYTHONPATH"] = os.pathsep.join(paths)
    keep["PYTHONDONTWRITEBYTECODE"] = "1"  # bytecode already cached by earlier runs; don't write more
    return keep


def _cmd(env: dict[str, str]) -> list[str]:
    """`python -S` for the layer environment (no site-packages at all), plain python otherwise."""
    return [sys.executable, "-S"] if str(REPO / "layers" / "gateway") in env.get("PYTHONPATH", "") else [sys.executable]


def _probe(module: str, env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run([*_cmd(env), "-c", PROBE, module], cwd=str(REPO), env=env, capture_output=True, text=True,
                          timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"importing {module} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def heaviest_imports(module: str, env: dict[str, str], top: int = 6) -> list[tuple[str, float]]:
    """Top-level packages by import time (the sum of their modules' self times, µs → ms), from `-X importtime`."""
    proc = subprocess.run([*_cmd(env), "-X", "importtime", "-c", f"import {module}"], cwd=str(REPO), env=env,
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


LOCAL_RUNS = int(os.environ.get("BENCH_IMPORT_LOCAL_RUNS", "1"))


def measure(runs: int = RUNS, local_runs: int = LOCAL_RUNS) -> dict[str, Any]:
    layer, why = ensure_layer()
    results: dict[str, Any] = {"runs": runs, "local_runs": local_runs, "modules": {}, "layer": str(layer) if layer else None,
                               "layer_error": why}
    envs = {name: _env(extra, layer if name == "Lambda-like" else None) for name, extra in ENVIRONMENTS.items()}
    if layer is not None:
        # the layer's own first import compiles its bytecode: do it once, not in a measured run
        for module, _ in handler_modules():
            subprocess.run([*_cmd(envs["Lambda-like"]), "-c", f"import {module}"], cwd=str(REPO),
                           env={**envs["Lambda-like"], "PYTHONDONTWRITEBYTECODE": ""}, capture_output=True, timeout=120)
    for module, rel in handler_modules():
        entry: dict[str, Any] = {"path": rel}
        for env_name in ENVIRONMENTS:
            env = envs[env_name]
            if env_name == "Lambda-like":
                _probe(module, env)  # first run compiles/caches bytecode and warms the page cache
            samples = [_probe(module, env) for _ in range(runs if env_name == "Lambda-like" else local_runs)]
            secs = [s["seconds"] for s in samples]
            rss = [s["rss_mb"] for s in samples]
            entry[env_name] = {
                "median_s": statistics.median(secs), "max_s": max(secs),
                "median_cpu_s": statistics.median(s["cpu_s"] for s in samples),
                "median_mb": statistics.median(rss), "max_mb": max(rss), "modules": samples[-1]["modules"],
            }
        results["modules"][module] = entry
    # where the time goes, for the slowest modules (Lambda-like)
    slowest = sorted(results["modules"], key=lambda m: -results["modules"][m]["Lambda-like"]["median_s"])[:2]
    for module in slowest:
        results["modules"][module]["heaviest"] = heaviest_imports(module, envs["Lambda-like"])
    return results


def render(r: dict[str, Any]) -> str:
    rows = []
    all_ok = all_ok_cpu = True
    for module, e in r["modules"].items():
        for env_name in ENVIRONMENTS:
            m = e[env_name]
            ok = m["median_s"] <= TARGET_S and m["max_mb"] <= TARGET_MB
            ok_cpu = m["median_cpu_s"] <= TARGET_S and m["max_mb"] <= TARGET_MB
            all_ok &= ok
            all_ok_cpu &= ok_cpu
            rows.append([f"`{e['path']}`", env_name, f"{m['median_s']:.3f}", f"{m['max_s']:.3f}", f"{m['median_cpu_s']:.3f}",
                         f"{m['median_mb']:.1f}", f"{m['max_mb']:.1f}", m["modules"], verdict(ok), verdict(ok_cpu)])
    where = ("the layer's requirements only (`build/bench-layer/`, `python -S`)" if r.get("layer") else
             f"**the venv** (the layer could not be installed: {r.get('layer_error')}; dev extras inflate the figures)")
    heavy = [f"- `{e['path']}`: " + ", ".join(f"{name} {ms_:.0f} ms" for name, ms_ in e["heaviest"])
             for e in r["modules"].values() if e.get("heaviest")]
    return "\n".join([
        "## Cold import (handler modules)",
        "",
        f"Each module imported in a fresh `{Path(sys.executable).name}` process: {r['runs']} Lambda-like runs after "
        f"one warm-up run (bytecode cached), {r['local_runs']} local run(s); time around the import only, peak RSS "
        f"of the whole process (interpreter included). Lambda-like runs see {where}. "
        f"Machine: {machine()}.",
        "",
        table(["module", "environment", "import s (median)", "import s (max)", "CPU s (median)", "peak RSS MB (median)",
               "peak RSS MB (max)", "modules loaded", f"wall ≤ {TARGET_S} s, ≤ {TARGET_MB:g} MB",
               f"CPU ≤ {TARGET_S} s, ≤ {TARGET_MB:g} MB"], rows),
        "",
        "Heaviest packages of the two slowest modules (Lambda-like, one `-X importtime` run, sum of self "
        "times — module bodies included):",
        *heavy,
        "",
        f"Targets import ≤ {TARGET_S} s and peak RSS ≤ {TARGET_MB:g} MB (max), every module and environment: on median "
        f"wall time {verdict(all_ok)}, on median CPU time {verdict(all_ok_cpu)}. CPU time is the process's own (user + "
        "system): it does not grow when other processes compete for the CPU, and on an idle machine the wall time "
        "is close to it.",
        "",
    ])


def main() -> str:
    return render(measure())


if __name__ == "__main__":
    print(main())
