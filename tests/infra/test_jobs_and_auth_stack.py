"""The work state machine (jobs and batches), the workflow function, the id key, and the HTTP API's
authorizer modes (Lambda API-key authorizer by default, JWT when configured, none)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from infra import spec
from infra.config import GatewayConfig
from tests.infra.conftest import make_config, synth


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def http_routes(built) -> dict[str, dict[str, Any]]:
    api = {"Ref": built.logical_id(built.stack.api.api)}
    return {r["Properties"]["RouteKey"]: r["Properties"] for r in built.resources("AWS::ApiGatewayV2::Route").values()
            if r["Properties"]["ApiId"] == api}


def http_authorizers(built) -> dict[str, dict[str, Any]]:
    api = {"Ref": built.logical_id(built.stack.api.api)}
    return {k: r["Properties"] for k, r in built.resources("AWS::ApiGatewayV2::Authorizer").items()
            if r["Properties"]["ApiId"] == api}


# -- the work state machine -----------------------------------------------------------------


@pytest.mark.infra
def test_state_machine_runs_the_one_asl_file_with_the_workflow_function_substituted(built):
    from llm_gateway.jobs.definition import DEFINITION_PATH, PLACEHOLDERS

    sm = built.stack.work.state_machine
    props = built.json["Resources"][built.logical_id(sm)]["Properties"]
    assert props["StateMachineType"] == "STANDARD"
    assert props["DefinitionString"] == DEFINITION_PATH.read_text(encoding="utf-8")  # the file, unchanged
    fn_id = built.logical_id(built.stack.work.function)
    assert props["DefinitionSubstitutions"] == {name: {"Fn::GetAtt": [fn_id, "Arn"]} for name in PLACEHOLDERS}
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] == "ALL" and logging["IncludeExecutionData"] is False
    (dest,) = logging["Destinations"]
    log_group_id = dest["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]
    assert built.json["Resources"][log_group_id]["Properties"]["RetentionInDays"] == 30


@pytest.mark.infra
def test_state_machine_role_may_invoke_only_the_workflow_function(built):
    sm = built.json["Resources"][built.logical_id(built.stack.work.state_machine)]["Properties"]
    role_id = sm["RoleArn"]["Fn::GetAtt"][0]
    statements = [st for p in built.resources("AWS::IAM::Policy").values()
                  if {"Ref": role_id} in p["Properties"]["Roles"] for st in p["Properties"]["PolicyDocument"]["Statement"]]
    fn_arn = {"Fn::GetAtt": [built.logical_id(built.stack.work.function), "Arn"]}
    invoke = [st for st in statements if any(a.startswith("lambda:") for a in as_list(st["Action"]))]
    assert [(as_list(st["Action"]), st["Resource"]) for st in invoke] == [(["lambda:InvokeFunction"], fn_arn)]
    for st in statements:  # the rest: log delivery and X-Ray, which accept no resource scope
        if st not in invoke:
            assert all(a.split(":")[0] in ("logs", "xray") for a in as_list(st["Action"])), st
    role = built.json["Resources"][role_id]["Properties"]
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "states.amazonaws.com"}


@pytest.mark.infra
def test_workflow_function_is_off_the_api_with_the_runners_grants(built):
    fn = built.stack.work.function
    props = built.function(fn)
    assert props["Timeout"] == spec.WORKFLOW.timeout_s == 900
    assert not spec.WORKFLOW.routes and not spec.WORKFLOW.job_control  # it never starts executions
    assert spec.WORKFLOW.provider_secrets and spec.WORKFLOW.audit_events and spec.WORKFLOW.hooks
    assert spec.WORKFLOW.bucket == spec.READ_WRITE
    assert {"jobs_table", "batches_table", "counters_table", "usage_table", "keys_table"} <= set(spec.WORKFLOW.tables)
    integrations = json.dumps(built.resources("AWS::ApiGatewayV2::Integration"))
    assert built.logical_id(fn) not in integrations
    # invoked only by Step Functions (no resource policy for anyone else)
    perms = [p["Properties"] for p in built.resources("AWS::Lambda::Permission").values()
             if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [built.logical_id(fn), "Arn"]}]
    assert perms == []


@pytest.mark.infra
def test_id_key_is_a_generated_secret_passed_by_arn(built):
    secret = built.json["Resources"][built.logical_id(built.stack.work.id_key)]
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    assert "SecretString" not in secret["Properties"]
    assert secret["DeletionPolicy"] == "Retain"  # retainData: live ids keep verifying after a stack replacement
    for fn in [*built.stack.functions.by_family.values(), built.stack.streaming.function, built.stack.work.function]:
        assert "LLMGW_ID_KEY" not in built.function(fn)["Environment"]["Variables"]


@pytest.mark.infra
def test_work_state_machine_name_in_execution_arns_matches_what_the_code_derives(built, monkeypatch):
    """stores/workflows.py derives `arn:…:execution:<name>:<id>` from LLMGW_JOB_STATE_MACHINE_ARN;
    the stop/describe grant covers exactly that pattern."""
    from llm_gateway.config import reset_settings
    from llm_gateway.stores.workflows import execution_arn

    executions = built.stack.resolve(built.stack.work.executions_arn)
    parts = executions["Fn::Join"][1]
    assert parts[-1] == ":*" and parts[-2] == {"Fn::GetAtt": [built.logical_id(built.stack.work.state_machine), "Name"]}
    assert str(parts[-3]).endswith(":execution:")
    monkeypatch.setenv("LLMGW_JOB_STATE_MACHINE_ARN", "arn:aws:states:eu-west-1:123456789012:stateMachine:WorkSM-abc")
    reset_settings()
    try:
        assert execution_arn("job_1") == "arn:aws:states:eu-west-1:123456789012:execution:WorkSM-abc:job_1"
    finally:
        monkeypatch.undo()
        reset_settings()


# -- the Lambda authorizer (default) --------------------------------------------------------


@pytest.mark.infra
def test_lambda_authorizer_uses_simple_responses_cached_per_key(built):
    authorizers = http_authorizers(built)
    assert authorizers
    fn_id = built.logical_id(built.stack.auth.function)
    for props in authorizers.values():
        assert props["AuthorizerType"] == "REQUEST"
        assert props["AuthorizerPayloadFormatVersion"] == "2.0" and props["EnableSimpleResponses"] is True
        assert props["AuthorizerResultTtlInSeconds"] == 30
        assert fn_id in json.dumps(props["AuthorizerUri"])
    sources = sorted(p["IdentitySource"][0] for p in authorizers.values())
    assert sources == ["$request.header.Authorization", "$request.header.x-api-key"]
    # API Gateway may invoke it
    perms = [p["Properties"] for p in built.resources("AWS::Lambda::Permission").values()
             if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [fn_id, "Arn"]}]
    assert perms and all(p["Principal"] == "apigateway.amazonaws.com" for p in perms)


@pytest.mark.infra
def test_authorizer_function_reads_only_the_keys_table(built):
    fn = built.stack.auth.function
    props = built.function(fn)
    assert props["Handler"] == "handler.lambda_handler" and props["Timeout"] == 10
    keys = {"Fn::GetAtt": [built.logical_id(built.stack.data.tables["keys_table"]), "Arn"]}
    statements = built.role_statements(fn)
    data = [st for st in statements if any(a.startswith("dynamodb:") for a in as_list(st["Action"]))]
    assert data and all(as_list(st["Resource"]) == [keys] for st in data)
    assert not any(a in ("dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
                   for st in data for a in as_list(st["Action"]))
    services = {a.split(":")[0] for st in statements for a in as_list(st["Action"])}
    assert services == {"logs", "xray", "dynamodb"}


def test_the_authorizer_service_answers_in_the_configured_format():
    """HttpLambdaResponseType.SIMPLE + payload 2.0 is what service/authorizer.py returns."""
    from llm_gateway.service.authorizer import AuthorizerService
    from llm_gateway.stores.keys import Principal

    class Auth:
        def check_key(self, raw):
            return Principal(tenant_id="t", user_id="u", key_id="k", scopes=None, source="key")

    event = {"version": "2.0", "type": "REQUEST", "routeArn": "arn:aws:execute-api:…", "identitySource": ["Bearer x"],
             "headers": {"authorization": "Bearer llmgw_k_secret"}}
    answer = AuthorizerService(auth=Auth()).authorize(event)
    assert answer == {"isAuthorized": True, "context": {"tenant_id": "t", "user_id": "u", "key_id": "k", "scopes": ""}}
    event = {"version": "2.0", "type": "REQUEST", "identitySource": ["llmgw_k_secret"], "headers": {"x-api-key": "llmgw_k_secret"}}
    assert AuthorizerService(auth=Auth()).authorize(event)["isAuthorized"] is True  # the x-api-key routes


def test_functions_trust_the_lambda_authorizer_context_and_still_check_keys_without_it():
    """Deployed: API Gateway adds `requestContext.authorizer.lambda`; local mode has none."""
    from llm_gateway.api.errors import GatewayError
    from llm_gateway.pipeline.auth import Authenticator

    auth = Authenticator(keys=SimpleNamespace(check=lambda raw: SimpleNamespace(principal=None, reason="unknown", key_id=None)))
    ctx = {"lambda": {"tenant_id": "acme", "user_id": "alice", "key_id": "k1", "scopes": "usage"}}
    p = auth.authenticate({}, ctx)
    assert (p.tenant_id, p.user_id, p.key_id, p.scopes, p.source) == ("acme", "alice", "k1", frozenset({"usage"}), "authorizer")
    with pytest.raises(GatewayError):
        auth.authenticate({"authorization": "Bearer llmgw_x_y"}, None)


@pytest.mark.infra
def test_uncached_lambda_authorizer_has_no_identity_source_so_either_key_header_works(tmp_path_factory):
    built = synth(make_config(tmp_path_factory, authorizer_cache_ttl_s=0))
    (props,) = http_authorizers(built).values()
    assert props["AuthorizerResultTtlInSeconds"] == 0
    assert not props.get("IdentitySource")
    assert {r.get("AuthorizerId", {}).get("Ref") for r in http_routes(built).values()} == set(http_authorizers(built))


# -- JWT mode and no authorizer -------------------------------------------------------------

JWT = dict(http_authorizer="jwt", jwt_issuer="https://login.example.com/", jwt_audience=("llm-gateway",),
           jwt_tenant_claim="org.tenant", jwt_user_claim="email")


@pytest.mark.infra
def test_jwt_mode_puts_the_jwt_authorizer_on_every_route_and_claim_names_on_the_api_functions(tmp_path_factory):
    pytest.importorskip("cdk_nag")
    built = synth(make_config(tmp_path_factory, **JWT), nag=True, outdir=tmp_path_factory.mktemp("jwt.out"))
    (authorizer_id, props), = http_authorizers(built).items()
    assert props["AuthorizerType"] == "JWT"
    assert props["JwtConfiguration"] == {"Issuer": "https://login.example.com/", "Audience": ["llm-gateway"]}
    assert props["IdentitySource"] == ["$request.header.Authorization"]
    routes = http_routes(built)
    assert set(routes) == spec.route_keys()
    assert all(r["AuthorizationType"] == "JWT" and r["AuthorizerId"] == {"Ref": authorizer_id} for r in routes.values())
    assert built.stack.auth.function is None  # no API-key authorizer function in JWT mode
    claims = {"LLMGW_JWT_TENANT_CLAIM": "org.tenant", "LLMGW_JWT_USER_CLAIM": "email", "LLMGW_JWT_SCOPES_CLAIM": "scope"}
    for family, fn in built.stack.functions.by_family.items():
        env = built.function(fn)["Environment"]["Variables"]
        assert {k: env.get(k) for k in claims} == claims, family
    for fn in (built.stack.streaming.function, built.stack.work.function):  # they never see JWT claims
        assert "LLMGW_JWT_TENANT_CLAIM" not in built.function(fn)["Environment"]["Variables"]
    assert built.json["Outputs"]["HttpApiAuthorizer"]["Value"] == "jwt"


@pytest.mark.infra
def test_no_authorizer_mode_leaves_authentication_to_the_functions(tmp_path_factory):
    pytest.importorskip("cdk_nag")
    built = synth(make_config(tmp_path_factory, http_authorizer="none"), nag=True, outdir=tmp_path_factory.mktemp("none.out"))
    assert not http_authorizers(built)
    assert all(r["AuthorizationType"] == "NONE" for r in http_routes(built).values())
    assert built.stack.auth.function is None


# -- context parsing (no jsii) --------------------------------------------------------------


def node(**context):
    return SimpleNamespace(try_get_context=context.get)


def test_authorizer_context_defaults_to_the_lambda_authorizer():
    cfg = GatewayConfig.from_context(node(), environ={})
    assert (cfg.http_authorizer, cfg.authorizer_cache_ttl_s, cfg.jwt_issuer) == ("lambda", 30, None)
    assert cfg.jwt_environment() == {}


def test_an_issuer_switches_to_jwt_mode_and_claims_are_configurable():
    cfg = GatewayConfig.from_context(node(
        jwtIssuer="https://idp.example.com/realms/acme", jwtAudience='["gw", "gw-dev"]', jwtTenantClaim="org.id",
        jwtUserClaim="preferred_username", jwtScopesClaim="scp", authorizerCacheTtlSeconds="0",
    ), environ={})
    assert cfg.http_authorizer == "jwt" and cfg.jwt_audience == ("gw", "gw-dev") and cfg.authorizer_cache_ttl_s == 0
    assert cfg.jwt_environment() == {"LLMGW_JWT_TENANT_CLAIM": "org.id", "LLMGW_JWT_USER_CLAIM": "preferred_username",
                                     "LLMGW_JWT_SCOPES_CLAIM": "scp"}
    assert GatewayConfig.from_context(node(jwtIssuer="https://i", jwtAudience="gw"), environ={}).jwt_audience == ("gw",)
    # an explicit mode wins over the issuer
    assert GatewayConfig.from_context(node(jwtIssuer="https://i", jwtAudience="gw", httpAuthorizer="lambda"),
                                      environ={}).http_authorizer == "lambda"


@pytest.mark.parametrize("context, message", [
    ({"httpAuthorizer": "jwt"}, "jwtIssuer"),
    ({"httpAuthorizer": "jwt", "jwtIssuer": "http://insecure"}, "https://"),
    ({"jwtIssuer": "https://i"}, "jwtAudience"),
    ({"httpAuthorizer": "cognito"}, "lambda, jwt or none"),
    ({"authorizerCacheTtlSeconds": "7200"}, "0 to 3600"),
])
def test_bad_authorizer_settings_are_refused_at_synth(context, message):
    with pytest.raises(SystemExit, match=message):
        GatewayConfig.from_context(node(**context), environ={})
