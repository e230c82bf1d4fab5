"""True SSE streaming: the `chat_stream` ASGI app under the AWS Lambda Web Adapter, exposed by a
Function URL with response streaming. The URL's auth is NONE because the app checks the gateway
API key itself (the same authentication step as every other entry point)."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Fn
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra import spec
from infra.constructs.functions import GatewayFunction, SharedDeps

APP_PORT = "8080"


def web_adapter_env() -> dict[str, str]:
    return {
        "AWS_LAMBDA_EXEC_WRAPPER": "/opt/bootstrap",  # the adapter's wrapper, from its layer
        "AWS_LWA_INVOKE_MODE": "response_stream",
        "PORT": APP_PORT,  # run.sh starts uvicorn here; the adapter proxies to it
        "AWS_LWA_READINESS_CHECK_PATH": "/health",  # answered by the app without auth
    }


class Streaming(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: Path,
        lwa_layer_version: int,
        deps: SharedDeps,
    ) -> None:
        super().__init__(scope, construct_id)
        self.web_adapter = lambda_.LayerVersion.from_layer_version_arn(
            self, "WebAdapterLayer",
            Fn.sub(spec.LWA_LAYER_ARN.replace("{version}", str(int(lwa_layer_version)))),
        )
        fn = GatewayFunction(
            self, "ChatStream",
            fn_spec=spec.CHAT_STREAM, code=code, deps=deps,
            extra_layers=(self.web_adapter,), extra_environment=web_adapter_env(),
        )
        self.function = fn.function
        self.function_url = self.function.add_function_url(
            auth_type=lambda_.FunctionUrlAuthType.NONE,
            invoke_mode=lambda_.InvokeMode.RESPONSE_STREAM,
        )

    @property
    def url(self) -> str:
        return self.function_url.url
