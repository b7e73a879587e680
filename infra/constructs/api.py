"""The REST API: one resource/method per route of docs/architecture.md, three Lambdas.

API Gateway checks the ``x-api-key`` header against its API keys (usage plan: throttling + quota);
the handler then maps the key to a customer through the api-keys table (ferry/api.py). Request
validation checks the required header/parameters and that bodies are JSON objects; the 256 KB
payload limit is enforced by the handlers (ferry/api.py MAX_BODY_BYTES -> 413), below API Gateway's
own 10 MB limit.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from ferry.names import API_HANDLERS, API_PAGE_ROUTES, API_PUBLIC_ROUTES, API_ROUTES


def _entry(function: str) -> str:
    return API_HANDLERS[function].replace(".", "/") + ".py:handler"


ENDPOINTS_HANDLER = _entry("endpoints")
JOBS_HANDLER = _entry("jobs")
QUERIES_HANDLER = _entry("queries")
ROUTES_HANDLER = _entry("routes")

# (method, path, handler entry): the route table of ferry/names.py, shared with the local stack;
# the console and API docs pages (ferry.console) are public GETs on the queries function: the
# same origin as the API, so the console needs no CORS and no second deployment (see
# docs/console.md for why not S3 + CloudFront).
ROUTES: tuple[tuple[str, str, str], ...] = tuple(
    (method, path, _entry(function)) for method, path, function in (*API_ROUTES, *API_PAGE_ROUTES)
)
PUBLIC_ROUTES = API_PUBLIC_ROUTES  # ferry/api.py PUBLIC_PATHS
# Routes whose body is a JSON object (the others - cancel, redrive, disable, enable - take none)
BODY_ROUTES = frozenset(
    {
        ("POST", "/endpoints"),
        ("PATCH", "/endpoints/{endpoint_id}"),
        ("POST", "/transfers"),
        ("POST", "/routes"),
        ("PATCH", "/routes/{route_id}"),
        ("POST", "/subscriptions"),
        ("POST", "/audit/exports"),
    }
)


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        api_name: str,
        functions: dict[str, lambda_.IFunction],
        rate_limit: float,
        burst_limit: int,
        quota_per_day: int,
        write_routes: bool = True,
    ) -> None:
        """``functions``: handler entry -> function. ``write_routes=False`` (a passive region of
        a global-tables deployment) deploys the GET routes only."""
        super().__init__(scope, construct_id)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays.ONE_YEAR,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=api_name,
            description="Ferry: self-serve managed file transfer",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.DESTROY,
            deploy_options=apigw.StageOptions(
                stage_name="v1",
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,  # bodies carry credentials (POST /endpoints): never log them
                metrics_enabled=True,
                tracing_enabled=True,
                throttling_rate_limit=rate_limit * 4,
                throttling_burst_limit=burst_limit * 4,
            ),
            api_key_source_type=apigw.ApiKeySourceType.HEADER,
        )
        self.body_validator = self.api.add_request_validator(
            "BodyValidator", validate_request_body=True, validate_request_parameters=True
        )
        self.params_validator = self.api.add_request_validator(
            "ParamsValidator", validate_request_body=False, validate_request_parameters=True
        )
        self.json_object = self.api.add_model(
            "JsonObject",
            content_type="application/json",
            model_name="JsonObject",
            schema=apigw.JsonSchema(
                schema=apigw.JsonSchemaVersion.DRAFT4, type=apigw.JsonSchemaType.OBJECT
            ),
        )
        self.methods: dict[tuple[str, str], apigw.Method] = {}
        # No test-invoke permission per method (the API Gateway console's "Test" button): one
        # Lambda permission per method instead of two keeps the stack well under
        # CloudFormation's 500 resources (it had reached 503).
        integrations = {
            entry: apigw.LambdaIntegration(
                fn, timeout=Duration.seconds(29), allow_test_invoke=False
            )
            for entry, fn in functions.items()
        }
        for method, path, entry in ROUTES:
            if method != "GET" and not write_routes:
                continue
            resource = self.api.root.resource_for_path(path)
            public = (method, path) in PUBLIC_ROUTES
            params = {f"method.request.path.{p}": True for p in _path_params(path)}
            if not public:
                params["method.request.header.x-api-key"] = True
            has_body = (method, path) in BODY_ROUTES
            self.methods[(method, path)] = resource.add_method(
                method,
                integrations[entry],
                api_key_required=not public,
                request_parameters=params,
                request_validator=self.body_validator if has_body else self.params_validator,
                request_models={"application/json": self.json_object} if has_body else None,
            )
        self.usage_plan = self.api.add_usage_plan(
            "UsagePlan",
            name=f"{api_name}-default",
            description="Default Ferry plan; every customer API key is attached to it",
            throttle=apigw.ThrottleSettings(rate_limit=rate_limit, burst_limit=burst_limit),
            quota=apigw.QuotaSettings(limit=quota_per_day, period=apigw.Period.DAY),
        )
        self.usage_plan.add_api_stage(stage=self.api.deployment_stage)


def _path_params(path: str) -> list[str]:
    return [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]
