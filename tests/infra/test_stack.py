"""The synthesized CloudFormation template: what is deployed, how it is wired, who may do what."""

from __future__ import annotations

import json
import warnings
from typing import Any

import pytest

from infra import spec

pytestmark = pytest.mark.infra


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def http_functions(built) -> dict[str, Any]:
    return dict(built.stack.functions.by_family)


def all_functions(built) -> dict[str, Any]:
    """Every gateway function the stack deploys, by family."""
    out = {**http_functions(built), spec.CHAT_STREAM.family: built.stack.streaming.function,
           spec.WORKFLOW.family: built.stack.work.function}
    if built.stack.auth.function is not None:  # httpAuthorizer=lambda (the default)
        out[spec.AUTHORIZER.family] = built.stack.auth.function
    return out


SPECS = {fs.family: fs for fs in spec.ALL_FUNCTIONS}


def http_api_resources(built, cfn_type: str) -> dict[str, dict[str, Any]]:
    """Resources of the HTTP API only (the stack has a WebSocket API too)."""
    api = {"Ref": built.logical_id(built.stack.api.api)}
    return {k: r for k, r in built.resources(cfn_type).items() if r["Properties"].get("ApiId") == api}


def deployed_specs(built) -> list[tuple[spec.FunctionSpec, Any]]:
    """(its spec, the function) for every deployed family: the flags say what it may do."""
    return [(SPECS[family], fn) for family, fn in all_functions(built).items()]


def actions_on(built, fn, resource: Any) -> set[str]:
    """Actions `fn`'s role may take on exactly `resource` (a template value such as a GetAtt)."""
    return {a for st in built.role_statements(fn) for a in as_list(st["Action"]) if resource in as_list(st["Resource"])}


# -- data -----------------------------------------------------------------------------------


def test_tables_match_provision_tables_exactly(built):
    """The key schemas deployed on AWS are the ones local mode provisions (provision.TABLES)."""
    from llm_gateway.stores.provision import TABLES

    tables = built.resources("AWS::DynamoDB::Table")
    assert len(tables) == len(TABLES)
    deployed = {}
    for setting, table in built.stack.data.tables.items():
        props = tables[built.logical_id(table)]["Properties"]
        keys = {k["KeyType"]: k["AttributeName"] for k in props["KeySchema"]}
        deployed[setting] = (keys["HASH"], keys.get("RANGE"))
        assert {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]} == {
            name: "S" for name in (keys["HASH"], keys.get("RANGE")) if name
        }
    assert deployed == dict(TABLES)


def test_tables_are_on_demand_encrypted_with_point_in_time_recovery(built):
    for props in (r["Properties"] for r in built.resources("AWS::DynamoDB::Table").values()):
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"]["SSEEnabled"] is True
    for resource in built.resources("AWS::DynamoDB::Table").values():
        assert resource["DeletionPolicy"] == "Retain"  # retainData defaults to true


def test_ttl_only_where_items_expire(built):
    """TTL attributes are the ones provision.py declares (local mode enables the same)."""
    from llm_gateway.stores import provision

    ttls = spec.table_ttls()
    assert ttls == getattr(provision, "TTL_ATTRIBUTES", spec.DEFAULT_TTL_ATTRIBUTES)
    assert ttls.get("usage_table") == "ttl"  # what stores/usage.py writes
    tables = built.resources("AWS::DynamoDB::Table")
    for setting, table in built.stack.data.tables.items():
        props = tables[built.logical_id(table)]["Properties"]
        if setting in ttls:
            assert props["TimeToLiveSpecification"] == {"AttributeName": ttls[setting], "Enabled": True}
        else:
            assert "TimeToLiveSpecification" not in props


def test_table_construct_ids_are_stable():
    from infra.constructs.data import table_construct_id

    # renaming these would replace (empty) the deployed tables
    assert table_construct_id("keys_table") == "KeysTable"
    assert table_construct_id("usage_table") == "UsageTable"


def test_files_bucket_is_private_encrypted_tls_only_and_expires_generated_media(built):
    (bucket,) = built.resources("AWS::S3::Bucket").values()
    props = bucket["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"
    }
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True,
    }
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    generated = [r for r in rules.values() if r.get("Prefix") == "generated/"]
    assert len(generated) == 1
    assert generated[0]["ExpirationInDays"] == spec.DEFAULT_FILE_EXPIRY_DAYS["generated/"]
    assert generated[0]["Status"] == "Enabled"
    assert rules["abort-incomplete-uploads"]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    (policy,) = built.resources("AWS::S3::BucketPolicy").values()
    deny_http = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny_http and deny_http[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_generated_prefix_matches_file_storage_layout():
    from llm_gateway.stores.files import tenant_prefixes

    assert tenant_prefixes("t1")[1].startswith(next(iter(spec.DEFAULT_FILE_EXPIRY_DAYS)))


# -- functions ------------------------------------------------------------------------------


def test_every_function_runs_arm64_python_with_the_layer_tracing_and_log_retention(built):
    layer_id = built.logical_id(built.stack.layer.layer)
    log_groups = built.resources("AWS::Logs::LogGroup")
    assert all(lg["Properties"]["RetentionInDays"] == 30 for lg in log_groups.values())
    for family, fn in all_functions(built).items():
        props = built.function(fn)
        assert props["Runtime"] == f"python{spec.PYTHON_VERSION}", family
        assert props["Architectures"] == ["arm64"], family
        assert {"Ref": layer_id} in props["Layers"], family
        assert props["TracingConfig"] == {"Mode": "Active"}, family
        assert props["LoggingConfig"]["LogGroup"]["Ref"] in log_groups, family
        env = props["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == "llm-gateway"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "LLMGateway"


def test_chat_function_shape(built):
    props = built.function(built.stack.functions.by_family["chat"])
    assert props["Handler"] == "handler.lambda_handler"
    assert props["MemorySize"] == 1024
    assert props["Timeout"] == 29
    assert props["Layers"] == [{"Ref": built.logical_id(built.stack.layer.layer)}]


def test_layer_is_arm64_for_the_function_runtime(built):
    (layer,) = built.resources("AWS::Lambda::LayerVersion").values()
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Properties"]["CompatibleRuntimes"] == [f"python{spec.PYTHON_VERSION}"]


def test_functions_get_the_real_table_and_bucket_names_config_reads(built, monkeypatch):
    """Each LLMGW_* name set on the functions is one llm_gateway/config.py actually reads."""
    from llm_gateway.config import reset_settings, settings

    from infra.constructs.jobs import ID_KEY_SECRET_ENV, STATE_MACHINE_ENV

    bucket_id = built.logical_id(built.stack.data.bucket)
    expected = {spec.table_env_var(s): {"Ref": built.logical_id(t)} for s, t in built.stack.data.tables.items()}
    expected[spec.FILES_BUCKET_ENV] = {"Ref": bucket_id}
    bus = {spec.EVENT_BUS_ENV: {"Ref": built.logical_id(built.stack.audit.bus)}}
    work = {STATE_MACHINE_ENV: {"Ref": built.logical_id(built.stack.work.state_machine)},
            ID_KEY_SECRET_ENV: {"Ref": built.logical_id(built.stack.work.id_key)}}
    for fs, fn in deployed_specs(built):
        env = built.function(fn)["Environment"]["Variables"]
        assert {k: env.get(k) for k in expected} == expected, fs.family
        # the bus, the state machine and the id key only where the spec grants them
        assert {k: env.get(k) for k in bus} == (bus if fs.audit_events else dict.fromkeys(bus)), fs.family
        assert {k: env.get(k) for k in work} == (work if fs.job_control else dict.fromkeys(work)), fs.family
        assert "LLMGW_ID_KEY" not in env, fs.family  # never the key itself

    attrs = {spec.table_env_var(s): s for s in built.stack.data.tables} | {spec.FILES_BUCKET_ENV: "files_bucket"}
    attrs[STATE_MACHINE_ENV] = "job_state_machine_arn"
    if "event_bus" in getattr(settings(), "__dataclass_fields__", {}):
        attrs[spec.EVENT_BUS_ENV] = "event_bus"
    for name, attr in attrs.items():
        monkeypatch.setenv(name, f"deployed-{attr}")
    reset_settings()
    try:
        assert {attr: getattr(settings(), attr) for attr in attrs.values()} == {a: f"deployed-{a}" for a in attrs.values()}
    finally:
        monkeypatch.undo()
        reset_settings()


# -- HTTP API -------------------------------------------------------------------------------


def test_http_api_routes_are_the_spec_routes_each_on_its_family_function(built):
    from infra.constructs.auth import key_header

    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in http_api_resources(built, "AWS::ApiGatewayV2::Route").values()}
    assert set(routes) == spec.route_keys()
    assert {"POST /chat/completions", "GET /models", "GET /usage", "POST /jobs", "GET /jobs/{id}", "DELETE /jobs/{id}",
            "POST /batches", "GET /batches/{id}", "POST /batches/{id}/cancel", "DELETE /batches/{id}"} <= set(routes)
    integrations = built.resources("AWS::ApiGatewayV2::Integration")
    authorizers = built.resources("AWS::ApiGatewayV2::Authorizer")
    for fs in spec.FUNCTIONS:
        fn_id = built.logical_id(built.stack.functions.by_family[fs.family])
        for method, path in fs.routes:
            route = routes[f"{method} {path}"]
            # the Lambda API-key authorizer (the default), on the header this route's clients use
            assert route["AuthorizationType"] == "CUSTOM", path
            authorizer = authorizers[route["AuthorizerId"]["Ref"]]["Properties"]
            assert authorizer["IdentitySource"] == [f"$request.header.{key_header(path)}"], path
            integration_id = route["Target"]["Fn::Join"][1][1]["Ref"]
            props = integrations[integration_id]["Properties"]
            assert props["IntegrationType"] == "AWS_PROXY" and props["PayloadFormatVersion"] == "2.0"
            assert props["IntegrationUri"] == {"Fn::GetAtt": [fn_id, "Arn"]}


def test_deployed_routes_and_local_server_routes_agree():
    """The local server (llm_gateway/local/routes.py) sends each deployed route to the same handler."""
    from llm_gateway.local.routes import handler_module_for

    for fs in spec.FUNCTIONS:
        for _, path in fs.routes:
            assert handler_module_for(path) == f"functions.{fs.family}.handler", path


def test_every_family_folder_has_its_entry_point():
    for fs in spec.ALL_FUNCTIONS:
        entry = fs.handler if fs.handler.endswith(".sh") else fs.handler.rsplit(".", 1)[0] + ".py"
        assert (spec.FUNCTIONS_SOURCE / fs.family / entry).is_file(), fs.family


def test_stage_is_auto_deployed_default_with_metadata_only_access_logs(built):
    (stage,) = http_api_resources(built, "AWS::ApiGatewayV2::Stage").values()
    props = stage["Properties"]
    assert props["StageName"] == "$default" and props["AutoDeploy"] is True
    fmt = json.loads(props["AccessLogSettings"]["Format"])
    assert fmt["requestId"] == "$context.requestId"
    assert not any("header" in v or "body" in v or "querystring" in v.lower() for v in fmt.values())


# -- streaming ------------------------------------------------------------------------------


def test_chat_stream_runs_the_asgi_app_under_the_web_adapter(built):
    from infra.constructs.streaming import web_adapter_env

    props = built.function(built.stack.streaming.function)
    assert props["Handler"] == "run.sh"
    assert props["Timeout"] == spec.CHAT_STREAM.timeout_s and 29 < props["Timeout"] <= 900
    env = props["Environment"]["Variables"]
    assert env["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/bootstrap"
    assert env["AWS_LWA_INVOKE_MODE"] == "response_stream"
    assert env["PORT"] == "8080" == web_adapter_env()["PORT"]
    assert env["AWS_LWA_READINESS_CHECK_PATH"] == "/health"
    assert "AWS_LWA_ENABLE_COMPRESSION" not in env  # not supported with streaming
    layers = props["Layers"]
    assert {"Ref": built.logical_id(built.stack.layer.layer)} in layers
    assert {"Fn::Sub": f"arn:aws:lambda:${{AWS::Region}}:753240598075:layer:LambdaAdapterLayerArm64:{spec.LWA_DEFAULT_VERSION}"} in layers


def test_chat_stream_function_url_streams_and_leaves_auth_to_the_app(built):
    fn_id = built.logical_id(built.stack.streaming.function)
    (url,) = built.resources("AWS::Lambda::Url").values()
    assert url["Properties"] == {
        "AuthType": "NONE", "InvokeMode": "RESPONSE_STREAM", "TargetFunctionArn": {"Fn::GetAtt": [fn_id, "Arn"]},
    }
    public = [p["Properties"] for p in built.resources("AWS::Lambda::Permission").values() if p["Properties"]["Principal"] == "*"]
    assert {p["Action"] for p in public} <= {"lambda:InvokeFunctionUrl", "lambda:InvokeFunction"}
    for p in public:  # public invocation only through the URL
        assert p["FunctionName"] == {"Fn::GetAtt": [fn_id, "Arn"]}
        assert p.get("FunctionUrlAuthType") == "NONE" or p.get("InvokedViaFunctionUrl") is True


def test_chat_stream_script_starts_uvicorn_on_port_with_the_layer_on_pythonpath():
    run = (spec.FUNCTIONS_SOURCE / "chat_stream" / "run.sh")
    text = run.read_text()
    assert run.stat().st_mode & 0o111, "run.sh must be executable (it is the Lambda handler)"
    assert "uvicorn" in text and "app:app" in text and "PORT" in text and "/opt/python" in text
    assert any(r.startswith("uvicorn") for r in spec.CHAT_STREAM.requirements)


def test_outputs_name_both_endpoints(built):
    outputs = built.json["Outputs"]
    assert {"HttpApiUrl", "ChatStreamUrl", "FilesBucketName", "KeysTableName", "AuditEventBusName",
            "WorkStateMachineArn", "IdKeySecretArn", "JobsTableName", "BatchesTableName"} <= set(outputs)
    assert outputs["WorkStateMachineArn"]["Value"] == {"Ref": built.logical_id(built.stack.work.state_machine)}
    assert outputs["HttpApiAuthorizer"]["Value"] == "lambda"
    assert outputs["ChatStreamUrl"]["Value"]["Fn::GetAtt"][1] == "FunctionUrl"


# -- IAM: least privilege -------------------------------------------------------------------


def test_no_service_wide_wildcard_actions_and_star_resources_only_for_xray(built):
    for family, fn in all_functions(built).items():
        for st in built.role_statements(fn):
            actions = as_list(st["Action"])
            assert not any(a == "*" or a.endswith(":*") for a in actions), (family, actions)
            if "*" in as_list(st["Resource"]):
                assert all(a.startswith("xray:") for a in actions), (family, st)


def test_chat_reads_keys_writes_usage_and_touches_s3_objects_only_in_its_bucket(built):
    data = built.stack.data
    statements = built.role_statements(built.stack.functions.by_family["chat"])

    def actions_on(resource_id: str) -> set[str]:
        out: set[str] = set()
        for st in statements:
            for res in as_list(st["Resource"]):
                if res == {"Fn::GetAtt": [resource_id, "Arn"]}:
                    out |= set(as_list(st["Action"]))
        return out

    keys = actions_on(built.logical_id(data.tables["keys_table"]))
    assert "dynamodb:GetItem" in keys and not keys & {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    usage = actions_on(built.logical_id(data.tables["usage_table"]))
    assert "dynamodb:PutItem" in usage and not usage & {"dynamodb:GetItem", "dynamodb:Scan", "dynamodb:Query"}

    bucket_id = built.logical_id(data.bucket)
    s3 = [st for st in statements if any(a.startswith("s3:") for a in as_list(st["Action"]))]
    assert s3
    for st in s3:
        assert set(as_list(st["Action"])) <= {"s3:GetObject", "s3:PutObject", "s3:ListBucket"}
        assert "*" not in as_list(st["Resource"])
        assert bucket_id in json.dumps(st["Resource"])
    assert not any("s3:DeleteObject" in as_list(st["Action"]) for st in statements)


def test_embeddings_has_no_bucket_access(built):
    statements = built.role_statements(built.stack.functions.by_family["embeddings"])
    assert not any(a.startswith("s3:") for st in statements for a in as_list(st["Action"]))


def test_provider_secrets_are_read_only_under_the_prefix(built):
    """Exactly the secrets each spec grants: provider credentials under the prefix
    (`provider_secrets`), the id key (`job_control`), nothing else."""
    id_key = {"Ref": built.logical_id(built.stack.work.id_key)}
    for fs, fn in deployed_specs(built):
        secret = [st for st in built.role_statements(fn) if any(a.startswith("secretsmanager:") for a in as_list(st["Action"]))]
        assert all(as_list(st["Action"]) == ["secretsmanager:GetSecretValue"] for st in secret), fs.family
        providers = [st for st in secret if json.dumps(st["Resource"]).endswith(':secret:llmgw/*"]]}')]
        keys = [st for st in secret if st["Resource"] == id_key]
        assert len(providers) == int(fs.provider_secrets), fs.family
        assert len(keys) == int(fs.job_control), fs.family
        assert len(secret) == len(providers) + len(keys), fs.family
    assert {fs.family for fs in spec.ALL_FUNCTIONS if not fs.provider_secrets} >= {"admin", "authorizer"}


def test_roles_use_no_aws_managed_policies_and_log_only_to_their_group(built):
    for role in built.resources("AWS::IAM::Role").values():
        assert not role["Properties"].get("ManagedPolicyArns")
    for family, fn in all_functions(built).items():
        log_group = built.function(fn)["LoggingConfig"]["LogGroup"]["Ref"]
        logs = [st for st in built.role_statements(fn) if any(a.startswith("logs:") for a in as_list(st["Action"]))]
        assert logs and all(st["Resource"] == {"Fn::GetAtt": [log_group, "Arn"]} for st in logs), family


def test_every_deployed_table_is_granted_to_some_function(built):
    """A table added to provision.TABLES is deployed automatically; a warning (not a failure, so a
    store can land before its family's infra) reminds you to grant it in infra/spec.py."""
    used = {t for fs in spec.DEPLOYED_FUNCTIONS for t in fs.tables}  # + realtime (sessions_table)
    assert all(t.endswith("_table") for t in used)  # Settings attribute names
    assert {"jobs_table", "batches_table"} <= used
    unused = sorted(set(built.stack.data.tables) - used)
    if unused:
        warnings.warn(
            f"tables {unused} are deployed but no function may access them: "
            "add them to a FunctionSpec's `tables` in infra/spec.py",
            stacklevel=1,
        )


def test_request_path_tables_are_granted_to_every_family(built):
    """Each function may touch exactly the tables its spec lists, with exactly that access."""
    reads, writes = {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:BatchGetItem"}, {"dynamodb:PutItem", "dynamodb:UpdateItem"}
    for fs, fn in deployed_specs(built):
        assert fs.tables.get("keys_table") == spec.READ, fs.family  # every family authenticates (or is the authorizer)
        for setting, table in built.stack.data.tables.items():
            actions = actions_on(built, fn, {"Fn::GetAtt": [built.logical_id(table), "Arn"]})
            access = fs.tables.get(setting)
            if access is None:
                assert not actions, (fs.family, setting)  # least privilege: no access at all
                continue
            assert (reads <= actions) == (access in (spec.READ, spec.READ_WRITE)), (fs.family, setting)
            assert not (reads & actions) or access != spec.WRITE, (fs.family, setting)
            assert (writes <= actions) == (access in (spec.WRITE, spec.READ_WRITE)), (fs.family, setting)
            assert not (writes & actions) or access != spec.READ, (fs.family, setting)
        if fs.routes and fs.family != "admin" and fs.audit_events:  # generation: governed, usage recorded
            assert fs.tables["usage_table"] == spec.WRITE and fs.tables["counters_table"] == spec.READ_WRITE, fs.family


def test_admin_reads_usage_aggregates_and_keys_only(built):
    fs = SPECS["admin"]
    assert fs.routes == (("GET", "/usage"),)
    assert fs.tables == {"keys_table": spec.READ, "usage_table": spec.READ}
    assert not (fs.provider_secrets or fs.audit_events or fs.hooks or fs.job_control or fs.bucket)
    statements = built.role_statements(built.stack.functions.by_family["admin"])
    services = {a.split(":")[0] for st in statements for a in as_list(st["Action"])}
    assert services == {"logs", "xray", "dynamodb"}


def test_audit_events_only_to_the_gateway_bus_and_hooks_only_by_prefix(built):
    """Audit events and hook invocations exactly where the spec grants them (`audit_events`, `hooks`)."""
    bus_id = built.logical_id(built.stack.audit.bus)
    for fs, fn in deployed_specs(built):
        statements = built.role_statements(fn)
        events = [st for st in statements if any(a.startswith("events:") for a in as_list(st["Action"]))]
        hooks = [st for st in statements if any(a.startswith("lambda:") for a in as_list(st["Action"]))]
        if fs.audit_events:
            assert [as_list(st["Action"]) for st in events] == [["events:PutEvents"]], fs.family
            assert events[0]["Resource"] == {"Fn::GetAtt": [bus_id, "Arn"]}
        else:
            assert not events, fs.family
        if fs.hooks:
            assert [as_list(st["Action"]) for st in hooks] == [["lambda:InvokeFunction"]], fs.family
            assert json.dumps(hooks[0]["Resource"]).endswith(':function:llmgw-hook-*"]]}')
        else:
            assert not hooks, fs.family


def test_step_functions_access_only_for_job_control_families(built):
    """Start on the work state machine only; stop/describe on its executions only; nothing else."""
    sm = built.stack.work.state_machine
    sm_ref = {"Ref": built.logical_id(sm)}
    for fs, fn in deployed_specs(built):
        states = [st for st in built.role_statements(fn) if any(a.startswith("states:") for a in as_list(st["Action"]))]
        if not fs.job_control:
            assert not states, fs.family
            continue
        by_action = {a: st["Resource"] for st in states for a in as_list(st["Action"])}
        assert set(by_action) == {"states:StartExecution", "states:StopExecution", "states:DescribeExecution"}, fs.family
        assert by_action["states:StartExecution"] == sm_ref
        executions = json.dumps(by_action["states:StopExecution"])
        assert by_action["states:DescribeExecution"] == by_action["states:StopExecution"]
        assert ":execution:" in executions and built.logical_id(sm) in executions and executions.endswith(':*"]]}')
    # the families whose code starts executions: chat ("async": true), compat (OpenAI batches), jobs, batches
    assert {fs.family for fs in spec.ALL_FUNCTIONS if fs.job_control} >= {"chat", "chat_stream", "compat", "jobs", "batches"}


# -- observability --------------------------------------------------------------------------


def test_alarms_and_dashboard(built):
    alarms = built.resources("AWS::CloudWatch::Alarm")
    dims = [json.dumps(a["Properties"].get("Dimensions", [])) + json.dumps(a["Properties"].get("Metrics", []))
            for a in alarms.values()]
    for family, fn in all_functions(built).items():  # errors + throttles of every function
        assert sum(built.logical_id(fn) in d for d in dims) == 2, family
    sm = built.logical_id(built.stack.work.state_machine)
    assert sum(sm in d for d in dims) == 1  # work executions failed or timed out
    assert len(built.resources("AWS::CloudWatch::Dashboard")) == 1
