"""cdk-nag's AwsSolutions checks pass (with the documented acknowledgments), context parsing, and
the Docker-free asset build (its pip command, without running pip)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from infra import spec
from infra.config import AssetMissing, GatewayConfig
from tests.infra.conftest import make_config, synth


@pytest.mark.infra
@pytest.mark.parametrize("env", [None, {"account": "123456789012", "region": "eu-west-1"}], ids=["agnostic", "deploy-env"])
def test_aws_solutions_checks_pass(tmp_path_factory, env):
    """With and without an environment: the CLI sets one from the AWS profile, which turns the
    region and account in ARNs (and so in the findings to acknowledge) into literals."""
    pytest.importorskip("cdk_nag")
    try:
        synth(make_config(tmp_path_factory), nag=True, outdir=tmp_path_factory.mktemp("nag.out"), env=env)
    except Exception as exc:  # ValidationFailed: the report names each finding
        pytest.fail(f"cdk-nag findings not acknowledged (see infra/nag.py):\n{exc}")


@pytest.mark.infra
def test_context_changes_what_is_deployed(tmp_path_factory):
    cfg = make_config(
        tmp_path_factory, lwa_layer_version=27, log_retention_days=7, file_expiry_days={"generated/": 2, "tmp/": 1},
        retain_data=False, provider_secret_prefix="", hook_function_prefix="",
        extra_env={"LLMGW_CATALOG": "/opt/python/catalog.json"},
    )
    built = synth(cfg)
    rules = {r.get("Prefix"): r for r in built.resources("AWS::S3::Bucket").popitem()[1]["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["generated/"]["ExpirationInDays"] == 2 and rules["tmp/"]["ExpirationInDays"] == 1
    assert all(t["DeletionPolicy"] == "Delete" for t in built.resources("AWS::DynamoDB::Table").values())
    assert all(lg["Properties"]["RetentionInDays"] == 7 for lg in built.resources("AWS::Logs::LogGroup").values())
    stream = built.function(built.stack.streaming.function)
    assert any("LambdaAdapterLayerArm64:27" in str(layer) for layer in stream["Layers"])
    assert stream["Environment"]["Variables"]["LLMGW_CATALOG"] == "/opt/python/catalog.json"
    statements = [st for st in built.role_statements(built.stack.functions.by_family["chat"]) if st.get("Sid") != "ReadIdKey"]
    assert not any("secretsmanager" in str(st["Action"]) or "lambda:" in str(st["Action"]) for st in statements)
    assert all(s["DeletionPolicy"] == "Delete" for s in built.resources("AWS::SecretsManager::Secret").values())


# -- context parsing (no jsii) --------------------------------------------------------------


def node(**context):
    return SimpleNamespace(try_get_context=context.get)


def test_defaults_without_context():
    cfg = GatewayConfig.from_context(node(), environ={})
    assert cfg == GatewayConfig()
    assert cfg.layer_asset == spec.ROOT / "build" / "layer"
    assert cfg.file_expiry_days == {"generated/": 7} and cfg.retain_data and cfg.nag


def test_cli_strings_are_parsed():
    cfg = GatewayConfig.from_context(node(
        lwaLayerVersion="26", logRetentionDays="90", retainData="false", nag="0",
        fileExpiryDays='{"generated/": 3}', layerAsset="/tmp/layer", extraEnv='{"LLMGW_EGRESS_BASE_URL": "https://egress"}',
        hookFunctionPrefix="acme-hooks-",
    ), environ={})
    assert cfg.hook_function_prefix == "acme-hooks-"
    assert cfg.lwa_layer_version == 26 and cfg.log_retention_days == 90
    assert cfg.retain_data is False and cfg.nag is False
    assert cfg.file_expiry_days == {"generated/": 3}
    assert cfg.layer_asset == Path("/tmp/layer")
    assert cfg.extra_env == {"LLMGW_EGRESS_BASE_URL": "https://egress"}


def test_provider_env_copies_values_from_the_deploying_shell_and_refuses_unset_ones():
    cfg = GatewayConfig.from_context(node(providerEnv=["OPENAI_API_KEY"]), environ={"OPENAI_API_KEY": "sk-x"})
    assert cfg.provider_env == {"OPENAI_API_KEY": "sk-x"}
    with pytest.raises(SystemExit, match="ANTHROPIC_API_KEY"):
        GatewayConfig.from_context(node(providerEnv='["ANTHROPIC_API_KEY"]'), environ={})


def test_missing_built_assets_fail_with_the_command_to_run(tmp_path):
    cfg = GatewayConfig(layer_asset=tmp_path / "nope", functions_build_dir=tmp_path / "none")
    with pytest.raises(AssetMissing, match="infra/build_layer.py"):
        cfg.layer_path()
    with pytest.raises(AssetMissing, match="uvicorn"):
        cfg.function_path(spec.CHAT_STREAM)
    chat = next(fs for fs in spec.FUNCTIONS if fs.family == "chat")
    assert cfg.function_path(chat) == spec.FUNCTIONS_SOURCE / "chat"  # no extra packages: source folder


@pytest.mark.infra
def test_bad_log_retention_is_refused():
    from infra.constructs.observability import retention  # imports aws_cdk (cheap once jsii is up)

    with pytest.raises(SystemExit, match="logRetentionDays=31"):
        retention(31)


# -- the asset build (pip mocked) -----------------------------------------------------------


def test_layer_build_targets_lambda_platform_and_runtime_abi(tmp_path, monkeypatch):
    from infra import build_layer

    calls = []

    def fake_run(cmd, check):
        calls.append(cmd)
        target = Path(cmd[cmd.index("--target") + 1])
        (target / "bin").mkdir(parents=True, exist_ok=True)
        (target / "pydantic").mkdir(exist_ok=True)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(build_layer.subprocess, "run", fake_run)
    out = build_layer.build_layer(tmp_path / "layer")
    (cmd,) = calls
    flag = lambda name: cmd[cmd.index(name) + 1]  # noqa: E731
    assert flag("--platform") == "manylinux2014_aarch64"
    assert flag("--python-version") == spec.PYTHON_VERSION
    assert flag("--implementation") == "cp" and "--only-binary=:all:" in cmd
    assert flag("--target") == str(tmp_path / "layer" / "python")
    assert (out / "python" / "llm_gateway" / "__init__.py").is_file()
    assert (out / "python" / "llm_gateway" / "stores" / "provision.py").is_file()
    assert not (out / "python" / "bin").exists()
    assert not list(out.rglob("__pycache__"))


def test_layer_requirements_are_the_gateway_requirements_plus_xray(tmp_path, monkeypatch):
    from infra import build_layer

    seen = {}
    monkeypatch.setattr(build_layer, "pip_install", lambda reqs, target: seen.setdefault("reqs", reqs))
    build_layer.build_layer(tmp_path / "layer")
    gateway = build_layer.read_requirements(spec.LAYER_REQUIREMENTS)
    assert gateway and seen["reqs"][: len(gateway)] == gateway
    assert any(r.startswith("aws-xray-sdk") for r in seen["reqs"])


def test_function_bundle_holds_the_code_and_its_packages(tmp_path, monkeypatch):
    from infra import build_layer

    seen = {}
    monkeypatch.setattr(build_layer, "pip_install", lambda reqs, target: seen.update(reqs=reqs, target=target))
    out = build_layer.build_function(spec.CHAT_STREAM, tmp_path)
    assert out == tmp_path / "chat_stream" == seen["target"]
    assert (out / "run.sh").is_file() and (out / "run.sh").stat().st_mode & 0o111
    assert any(r.startswith("uvicorn") for r in seen["reqs"])
    chat = next(fs for fs in spec.FUNCTIONS if fs.family == "chat")
    assert build_layer.build_function(chat, tmp_path) is None  # deployed straight from functions/chat
