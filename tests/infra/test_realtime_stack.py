"""Realtime over API Gateway's WebSocket API (infra/constructs/realtime.py): routes, the $connect
authorizer, the stage, the route and worker functions' settings, and least-privilege grants."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra import spec

pytestmark = pytest.mark.infra


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def realtime_functions(built) -> dict[str, Any]:
    rt = built.stack.realtime
    return {spec.REALTIME.family: rt.function, spec.REALTIME_WORKER.family: rt.worker,
            spec.REALTIME_AUTHORIZER.family: rt.authorizer_function}


def fn_arn(built, fn) -> dict[str, Any]:
    return {"Fn::GetAtt": [built.logical_id(fn), "Arn"]}


def api_id(built) -> str:
    return built.logical_id(built.stack.realtime.api)


def statements_with(statements: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [st for st in statements if any(a.startswith(prefix) for a in as_list(st["Action"]))]


def table_actions(built, fn, setting: str) -> set[str]:
    table = {"Fn::GetAtt": [built.logical_id(built.stack.data.tables[setting]), "Arn"]}
    return {a for st in built.role_statements(fn) for a in as_list(st["Action"]) if table in as_list(st["Resource"])}


# -- the API --------------------------------------------------------------------------------


def test_websocket_api_routes_all_go_to_the_route_function_within_29_s(built):
    (api,) = [r for k, r in built.resources("AWS::ApiGatewayV2::Api").items() if k == api_id(built)]
    assert api["Properties"]["ProtocolType"] == "WEBSOCKET"
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in built.resources("AWS::ApiGatewayV2::Route").values()
              if r["Properties"]["ApiId"] == {"Ref": api_id(built)}}
    assert set(routes) == {"$connect", "$disconnect", "$default"}
    integrations = built.resources("AWS::ApiGatewayV2::Integration")
    route_fn = fn_arn(built, built.stack.realtime.function)
    for key, route in routes.items():
        integration = integrations[route["Target"]["Fn::Join"][1][1]["Ref"]]["Properties"]
        assert integration["IntegrationType"] == "AWS_PROXY", key
        assert route_fn in integration["IntegrationUri"]["Fn::Join"][1], key
        assert integration["TimeoutInMillis"] == 29_000 == spec.WEBSOCKET_INTEGRATION_TIMEOUT_S * 1000
    assert routes["$disconnect"]["AuthorizationType"] == routes["$default"]["AuthorizationType"] == "NONE"


def test_connect_is_authorized_by_the_authorizer_code_on_every_attempt(built):
    (connect,) = [r["Properties"] for r in built.resources("AWS::ApiGatewayV2::Route").values()
                  if r["Properties"]["RouteKey"] == "$connect"]
    assert connect["AuthorizationType"] == "CUSTOM"
    authorizer = built.json["Resources"][connect["AuthorizerId"]["Ref"]]["Properties"]
    assert authorizer["AuthorizerType"] == "REQUEST"
    assert fn_arn(built, built.stack.realtime.authorizer_function) in authorizer["AuthorizerUri"]["Fn::Join"][1]
    # No identity source: API Gateway would refuse a connection lacking it (the key may be in
    # Authorization, x-api-key or ?api_key) before the authorizer ran.
    assert "IdentitySource" not in authorizer
    permissions = [p["Properties"] for p in built.resources("AWS::Lambda::Permission").values()
                   if p["Properties"]["FunctionName"] == fn_arn(built, built.stack.realtime.authorizer_function)]
    assert [p["Principal"] for p in permissions] == ["apigateway.amazonaws.com"]


def test_authorizer_function_deploys_functions_authorizer(built):
    """Same asset as functions/authorizer (the route and worker share functions/realtime's)."""
    outdir = Path(built.stack.node.root.outdir)
    props = built.function(built.stack.realtime.authorizer_function)
    asset = outdir / ("asset." + props["Code"]["S3Key"].removesuffix(".zip"))
    assert (asset / "handler.py").read_text() == (spec.FUNCTIONS_SOURCE / "authorizer" / "handler.py").read_text()
    route, worker = built.function(built.stack.realtime.function), built.function(built.stack.realtime.worker)
    assert route["Code"] == worker["Code"] and route["Handler"] == worker["Handler"] == "handler.lambda_handler"
    assert (outdir / ("asset." + route["Code"]["S3Key"].removesuffix(".zip")) / "handler.py").read_text() == \
        (spec.FUNCTIONS_SOURCE / "realtime" / "handler.py").read_text()


def test_authorizer_service_answers_websocket_connects_and_the_route_trusts_its_context():
    """What the deployed wiring relies on: the authorizer code handles WebSocket REQUEST events
    (IAM policy + flat context, key from a header or ?api_key), and `$connect` takes that context."""
    from llm_gateway.pipeline.auth import Authenticator
    from llm_gateway.service.authorizer import AuthorizerService
    from llm_gateway.stores.keys import Principal

    class Keys(Authenticator):
        def __init__(self) -> None:
            pass

        def check_key(self, raw: str) -> Principal:
            from llm_gateway.api.errors import GatewayError

            if raw != "good":
                raise GatewayError("unauthorized", "bad key")
            return Principal(tenant_id="t1", user_id="u1", key_id="k1", scopes=frozenset({"inference"}), source="api_key")

    arn = "arn:aws:execute-api:eu-west-1:123456789012:abc123/realtime/$connect"
    service = AuthorizerService(Keys())
    allowed = service.authorize({"methodArn": arn, "headers": {}, "queryStringParameters": {"api_key": "good"}})
    assert allowed["policyDocument"]["Statement"] == [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": arn}]
    assert allowed["context"]["tenant_id"] == "t1" and allowed["context"]["scopes"] == "inference"
    by_header = service.authorize({"methodArn": arn, "headers": {"x-api-key": "good"}})
    assert by_header["policyDocument"]["Statement"][0]["Effect"] == "Allow"
    denied = service.authorize({"methodArn": arn, "headers": {}})
    assert denied["policyDocument"]["Statement"][0]["Effect"] == "Deny" and "context" not in denied

    # API Gateway hands the route the context flat, beside its own keys
    flat = {**allowed["context"], "principalId": allowed["principalId"], "integrationLatency": 12}
    principal = Authenticator.from_authorizer({"lambda": flat})
    assert (principal.tenant_id, principal.user_id, principal.key_id, principal.source) == ("t1", "u1", "k1", "authorizer")


# -- stage and output -----------------------------------------------------------------------


def test_stage_auto_deploys_throttled_with_metadata_only_access_logs(built):
    stages = [r["Properties"] for r in built.resources("AWS::ApiGatewayV2::Stage").values()
              if r["Properties"]["ApiId"] == {"Ref": api_id(built)}]
    (stage,) = stages
    assert stage["StageName"] == spec.REALTIME_STAGE == "realtime"
    assert stage["AutoDeploy"] is True
    assert stage["DefaultRouteSettings"] == {"ThrottlingRateLimit": spec.REALTIME_THROTTLE_RATE,
                                             "ThrottlingBurstLimit": spec.REALTIME_THROTTLE_BURST}
    fmt = json.loads(stage["AccessLogSettings"]["Format"])
    assert fmt["connectionId"] == "$context.connectionId" and fmt["eventType"] == "$context.eventType"
    assert not any(w in v.lower() for v in fmt.values() for w in ("header", "body", "querystring", "api_key"))
    log_groups = built.resources("AWS::Logs::LogGroup")
    assert stage["AccessLogSettings"]["DestinationArn"]["Fn::GetAtt"][0] in log_groups


def test_output_is_the_wss_url_of_the_stage(built):
    value = built.json["Outputs"]["RealtimeUrl"]["Value"]["Fn::Join"][1]
    assert value[0] == "wss://" and value[1] == {"Ref": api_id(built)} and value[-1] == "/" + spec.REALTIME_STAGE


# -- functions ------------------------------------------------------------------------------


def test_realtime_functions_run_arm64_with_the_layer_tracing_and_their_own_logs(built):
    layer = {"Ref": built.logical_id(built.stack.layer.layer)}
    log_groups = built.resources("AWS::Logs::LogGroup")
    seen_logs = set()
    for family, fn in realtime_functions(built).items():
        props = built.function(fn)
        assert props["Runtime"] == f"python{spec.PYTHON_VERSION}" and props["Architectures"] == ["arm64"], family
        assert props["Layers"] == [layer] and props["TracingConfig"] == {"Mode": "Active"}, family
        group = props["LoggingConfig"]["LogGroup"]["Ref"]
        assert group in log_groups and group not in seen_logs, family
        seen_logs.add(group)
        logs = statements_with(built.role_statements(fn), "logs:")
        assert logs and all(st["Resource"] == {"Fn::GetAtt": [group, "Arn"]} for st in logs), family


def test_route_and_worker_timeouts_and_async_invoke(built):
    route, worker = built.function(built.stack.realtime.function), built.function(built.stack.realtime.worker)
    assert route["Timeout"] == 29  # the WebSocket integration limit
    turn_s = int(worker["Environment"]["Variables"]["LLMGW_REALTIME_TURN_TIMEOUT_S"])
    assert turn_s + 30 <= worker["Timeout"] == spec.REALTIME_WORKER.timeout_s <= 900
    (invoke_config,) = [r["Properties"] for r in built.resources("AWS::Lambda::EventInvokeConfig").values()
                        if r["Properties"]["FunctionName"] == {"Ref": built.logical_id(built.stack.realtime.worker)}]
    assert invoke_config["MaximumRetryAttempts"] == 0  # a retried turn would post (and bill) twice


def test_functions_get_the_settings_the_realtime_code_reads(built, monkeypatch):
    from llm_gateway.config import reset_settings, settings

    sessions = {"Ref": built.logical_id(built.stack.data.tables["sessions_table"])}
    route_env = built.function(built.stack.realtime.function)["Environment"]["Variables"]
    worker_env = built.function(built.stack.realtime.worker)["Environment"]["Variables"]
    assert route_env["LLMGW_REALTIME_WORKER"] == "lambda"
    assert route_env["LLMGW_REALTIME_WORKER_FUNCTION"] == {"Ref": built.logical_id(built.stack.realtime.worker)}
    for env in (route_env, worker_env):
        assert env["LLMGW_SESSIONS_TABLE"] == sessions
        assert env["LLMGW_REALTIME_MAX_S"] == str(spec.WEBSOCKET_MAX_CONNECTION_S) == "7200"
        assert {k: env[k] for k in spec.REALTIME_ENV} == spec.REALTIME_ENV
    assert "LLMGW_REALTIME_WORKER_FUNCTION" not in worker_env  # the worker starts nothing

    # each name is one llm_gateway/config.py reads
    names = {"LLMGW_SESSIONS_TABLE": "sessions_table", "LLMGW_REALTIME_WORKER": "realtime_worker",
             "LLMGW_REALTIME_WORKER_FUNCTION": "realtime_worker_function", "LLMGW_REALTIME_MAX_S": "realtime_max_s",
             "LLMGW_REALTIME_TURN_TIMEOUT_S": "realtime_turn_timeout_s",
             "LLMGW_REALTIME_MAX_TURN_AUDIO_BYTES": "realtime_max_turn_audio_bytes"}
    assert {n for n in {**route_env, **worker_env} if n.startswith("LLMGW_REALTIME")} <= set(names)
    values = {"LLMGW_SESSIONS_TABLE": "deployed-sessions", "LLMGW_REALTIME_WORKER": "lambda",
              "LLMGW_REALTIME_WORKER_FUNCTION": "deployed-worker", "LLMGW_REALTIME_MAX_S": "7100",
              "LLMGW_REALTIME_TURN_TIMEOUT_S": "290", "LLMGW_REALTIME_MAX_TURN_AUDIO_BYTES": "1000"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    try:
        got = {name: str(getattr(settings(), attr)) for name, attr in names.items()}
    finally:
        monkeypatch.undo()
        reset_settings()
    assert got == values


def test_session_settings_yield_to_extra_env_and_a_too_long_turn_is_refused():
    from infra.constructs.realtime import realtime_environment

    assert realtime_environment({}) == spec.REALTIME_ENV
    assert "LLMGW_REALTIME_MAX_S" not in realtime_environment({"LLMGW_REALTIME_MAX_S": "600"})
    with pytest.raises(SystemExit, match="LLMGW_REALTIME_TURN_TIMEOUT_S=400"):
        realtime_environment({"LLMGW_REALTIME_TURN_TIMEOUT_S": "400"})


# -- IAM: least privilege -------------------------------------------------------------------


def test_manage_connections_only_on_this_apis_stage_and_only_for_route_and_worker(built):
    rt = built.stack.realtime
    for fn in (rt.function, rt.worker):
        (st,) = statements_with(built.role_statements(fn), "execute-api:")
        assert as_list(st["Action"]) == ["execute-api:ManageConnections"]
        parts = st["Resource"]["Fn::Join"][1]
        assert {"Ref": api_id(built)} in parts and parts[-1] == f"/{spec.REALTIME_STAGE}/*/@connections/*"
    holders = [k for k, p in built.resources("AWS::IAM::Policy").items()
               if "execute-api:ManageConnections" in json.dumps(p["Properties"]["PolicyDocument"])]
    route_role = built.function(rt.function)["Role"]["Fn::GetAtt"][0]
    worker_role = built.function(rt.worker)["Role"]["Fn::GetAtt"][0]
    assert sorted(r for k in holders for r in (x["Ref"] for x in built.json["Resources"][k]["Properties"]["Roles"])) == \
        sorted([route_role, worker_role])


def test_only_the_route_function_may_invoke_the_worker_and_nothing_else(built):
    rt = built.stack.realtime
    worker = fn_arn(built, rt.worker)
    (invoke,) = statements_with(built.role_statements(rt.function), "lambda:")
    assert as_list(invoke["Action"]) == ["lambda:InvokeFunction"] and invoke["Resource"] == worker  # no `:*` versions
    route_policy = {k for k, p in built.resources("AWS::IAM::Policy").items()
                    if {"Ref": built.function(rt.function)["Role"]["Fn::GetAtt"][0]} in p["Properties"]["Roles"]}
    others = [k for k, p in built.resources("AWS::IAM::Policy").items()
              if k not in route_policy and json.dumps(worker) in json.dumps(p["Properties"]["PolicyDocument"])]
    assert others == []
    # the worker runs pre-call hooks (by prefix) but starts nothing
    hooks = statements_with(built.role_statements(rt.worker), "lambda:")
    assert all(json.dumps(st["Resource"]).endswith(':function:llmgw-hook-*"]]}') for st in hooks)


def test_sessions_table_read_write_for_route_and_worker_only(built):
    rt = built.stack.realtime
    needed = {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem",
              "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}  # stores/sessions.py (transactions need Put/Update)
    for fn in (rt.function, rt.worker):
        assert needed <= table_actions(built, fn, "sessions_table")
    assert not table_actions(built, rt.authorizer_function, "sessions_table")
    granted = {t for fs in spec.DEPLOYED_FUNCTIONS for t in fs.tables}
    assert "sessions_table" in granted and set(built.stack.data.tables) <= granted


def test_each_realtime_function_touches_only_what_its_code_path_needs(built):
    rt = built.stack.realtime
    route, worker, authorizer = rt.function, rt.worker, rt.authorizer_function
    # route: tenant approval at $connect, the session summary at close; trusts the authorizer (no keys)
    assert "dynamodb:GetItem" in table_actions(built, route, "tenants_table")
    assert "dynamodb:PutItem" in table_actions(built, route, "usage_table")
    assert not table_actions(built, route, "usage_table") & {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan"}
    for setting in ("keys_table", "counters_table", "types_table", "jobs_table", "batches_table"):
        if setting in built.stack.data.tables:
            assert not table_actions(built, route, setting), setting
    # worker: governance (tenants, counters), usage records and aggregates
    assert {"dynamodb:GetItem", "dynamodb:UpdateItem"} <= table_actions(built, worker, "counters_table")
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem"} <= table_actions(built, worker, "usage_table")
    assert not table_actions(built, worker, "keys_table")
    # authorizer: reads keys, nothing else
    assert "dynamodb:GetItem" in table_actions(built, authorizer, "keys_table")
    assert not table_actions(built, authorizer, "keys_table") & {"dynamodb:PutItem", "dynamodb:UpdateItem"}
    for setting in built.stack.data.tables:
        if setting != "keys_table":
            assert not table_actions(built, authorizer, setting), setting
    # provider secrets: only the worker calls providers; no function here touches the bucket
    assert len(statements_with(built.role_statements(worker), "secretsmanager:")) == 1
    for fn in (route, authorizer):
        assert not statements_with(built.role_statements(fn), "secretsmanager:")
    for fn in (route, worker, authorizer):
        assert not statements_with(built.role_statements(fn), "s3:")
    for fn in (authorizer,):
        assert not statements_with(built.role_statements(fn), "lambda:")
        assert not statements_with(built.role_statements(fn), "execute-api:")
        assert not statements_with(built.role_statements(fn), "events:")


def test_no_wildcard_actions_and_star_resources_only_for_xray(built):
    for family, fn in realtime_functions(built).items():
        for st in built.role_statements(fn):
            actions = as_list(st["Action"])
            assert not any(a == "*" or a.endswith(":*") for a in actions), (family, actions)
            if "*" in as_list(st["Resource"]):
                assert all(a.startswith("xray:") for a in actions), (family, st)


def test_every_realtime_function_is_alarmed(built):
    descriptions = {a["Properties"].get("AlarmDescription", "") for a in built.resources("AWS::CloudWatch::Alarm").values()}
    for fs in spec.REALTIME_FUNCTIONS:
        assert {f"{fs.family}: Lambda errors in the last 5 minutes",
                f"{fs.family}: Lambda throttles in the last 5 minutes"} <= descriptions, fs.family


# -- code and bundles -----------------------------------------------------------------------


def test_realtime_code_folders_and_the_worker_bundle(tmp_path, monkeypatch):
    from infra import build_layer
    from infra.config import AssetMissing, GatewayConfig

    assert spec.REALTIME_WORKER.folder == spec.REALTIME.folder == "realtime"
    assert spec.REALTIME_AUTHORIZER.folder == "authorizer"
    for fs in spec.REALTIME_FUNCTIONS:
        assert (spec.FUNCTIONS_SOURCE / fs.folder / "handler.py").is_file(), fs.family
        assert fs not in spec.ALL_FUNCTIONS and fs in spec.DEPLOYED_FUNCTIONS
    assert not {fs.family for fs in spec.REALTIME_FUNCTIONS} & {fs.family for fs in spec.ALL_FUNCTIONS}
    # the worker opens the provider's socket with `websockets`: bundled with functions/realtime
    assert any(r.startswith("websockets") for r in build_layer.function_requirements(spec.REALTIME_WORKER))
    seen = {}
    monkeypatch.setattr(build_layer, "pip_install", lambda reqs, target: seen.update(reqs=reqs, target=target))
    out = build_layer.build_function(spec.REALTIME_WORKER, tmp_path)
    assert out == tmp_path / "realtime" == seen["target"] and (out / "handler.py").is_file()
    assert build_layer.build_function(spec.REALTIME_AUTHORIZER, tmp_path) is None  # no extra packages
    cfg = GatewayConfig(layer_asset=tmp_path / "nope", functions_build_dir=tmp_path)
    assert cfg.function_path(spec.REALTIME_WORKER) == out
    assert cfg.function_path(spec.REALTIME_AUTHORIZER) == spec.FUNCTIONS_SOURCE / "authorizer"
    with pytest.raises(AssetMissing, match="websockets"):
        GatewayConfig(functions_build_dir=tmp_path / "none").function_path(spec.REALTIME)


def test_worker_function_name_is_how_the_code_starts_the_worker(monkeypatch):
    """`launch()` on AWS: an async invoke (InvocationType=Event) of LLMGW_REALTIME_WORKER_FUNCTION."""
    from llm_gateway.config import reset_settings
    from llm_gateway.realtime import launch
    from llm_gateway.stores import sessions

    calls = []
    monkeypatch.setenv("LLMGW_REALTIME_WORKER", "lambda")
    monkeypatch.setenv("LLMGW_REALTIME_WORKER_FUNCTION", "stack-RealtimeWorker-abc")
    monkeypatch.setattr(sessions, "invoke_worker", lambda function, payload: calls.append((function, payload)))
    reset_settings()
    try:
        launch.launch({"realtime_task": "greet", "connection_id": "c1", "endpoint": "https://x/realtime"})
    finally:
        monkeypatch.undo()
        reset_settings()
    assert calls == [("stack-RealtimeWorker-abc", {"realtime_task": "greet", "connection_id": "c1",
                                                   "endpoint": "https://x/realtime"})]
