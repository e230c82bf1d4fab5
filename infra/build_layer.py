"""Build the Lambda assets without Docker: the gateway layer and any function bundle with deps.

    python infra/build_layer.py            # build/layer/python/ + build/functions/<family>/
    python infra/build_layer.py --no-deps  # only copy code (offline; synth works, not deployable)

The layer is `build/layer/python/`: the pinned runtime requirements (layers/gateway/requirements.txt
plus `LAYER_EXTRA_REQUIREMENTS`) installed for Lambda's platform (manylinux2014 aarch64, CPython
`PYTHON_VERSION`, binary wheels only) and the `llm_gateway` package copied in. A function with
extra requirements (e.g. `chat_stream` needs uvicorn, `realtime` websockets) gets
`build/functions/<family>/`: its folder plus those requirements. The stack picks these folders up;
functions without extra requirements deploy straight from `functions/<family>/`.

Needs pip and the package index (PyPI), not Docker and not an AWS account.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra import spec  # noqa: E402

IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")


def pip_install(requirements: list[str], target: Path, *, python_version: str = spec.PYTHON_VERSION) -> None:
    """Install requirement specifiers into `target` for the Lambda platform."""
    if not requirements:
        return
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(requirements) + "\n")
        req_file = f.name
    cmd = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "-r", req_file,
        "--platform", spec.PIP_PLATFORM,
        "--only-binary=:all:",
        "--python-version", python_version,
        "--implementation", "cp",
        "--target", str(target),
        "--upgrade",
    ]
    print("+", " ".join(cmd), flush=True)
    try:
        subprocess.run(cmd, check=True)
    finally:
        Path(req_file).unlink(missing_ok=True)


def read_requirements(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def strip_caches(root: Path) -> None:
    for cache in root.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def build_layer(out: Path = spec.LAYER_BUILD_DIR, *, deps: bool = True) -> Path:
    """build/layer/python/{deps..., llm_gateway/} -> returns build/layer."""
    shutil.rmtree(out, ignore_errors=True)
    site = out / "python"
    site.mkdir(parents=True)
    if deps:
        pip_install(read_requirements(spec.LAYER_REQUIREMENTS) + list(spec.LAYER_EXTRA_REQUIREMENTS), site)
    shutil.rmtree(site / "bin", ignore_errors=True)  # console scripts: useless in a layer
    shutil.copytree(spec.LAYER_SOURCE / "llm_gateway", site / "llm_gateway", ignore=IGNORE)
    strip_caches(out)
    return out


def function_requirements(fs: spec.FunctionSpec) -> list[str]:
    return list(fs.requirements) + read_requirements(spec.FUNCTIONS_SOURCE / fs.folder / "requirements.txt")


def build_function(fs: spec.FunctionSpec, out_root: Path = spec.FUNCTIONS_BUILD_DIR, *, deps: bool = True) -> Path | None:
    """build/functions/<folder>/ = functions/<folder>/ + its requirements; None when it has none.
    (`folder` is the family's, or the one whose code it runs: the realtime worker's is `realtime`.)"""
    reqs = function_requirements(fs)
    src = spec.FUNCTIONS_SOURCE / fs.folder
    out = out_root / fs.folder
    shutil.rmtree(out, ignore_errors=True)
    if not reqs:
        return None
    if not src.is_dir():
        raise SystemExit(f"functions/{fs.folder}/ does not exist")
    shutil.copytree(src, out, ignore=IGNORE)
    if deps:
        pip_install(reqs, out)
    strip_caches(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-deps", action="store_true",
                        help="copy code only, skip pip (offline synth; the result is not deployable)")
    args = parser.parse_args(argv)
    deps = not args.no_deps
    layer = build_layer(deps=deps)
    print(f"layer: {layer.relative_to(ROOT)}/python")
    built: set[str] = set()
    for fs in spec.DEPLOYED_FUNCTIONS:
        if fs.folder in built:  # a second function from the same code shares its bundle
            continue
        built.add(fs.folder)
        out = build_function(fs, deps=deps)
        if out is not None:
            print(f"function {fs.folder}: {out.relative_to(ROOT)}")
    if not deps:
        print("note: --no-deps: assets hold code only; rebuild without it before deploying")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
