"""A small client for the deployed prediction API, found from the stack's outputs.

On LocalStack the URL CDK prints (https://{id}.execute-api.localhost...) does not resolve offline,
so the client uses LocalStack's path form: {endpoint}/_aws/execute-api/{api_id}/{stage}, with the
same endpoint as the boto3 clients (:mod:`driftstack.tools.aws_target`). On AWS the outputs come
from CloudFormation and the URL is the regional execute-api one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from driftstack.tools.aws_target import Target, resolve
from driftstack.tools.deploy import DEFAULT_STACK, STATE_DIR

API_PREFIX = "/v1"


class StackNotDeployed(RuntimeError):
    pass


def stack_outputs(stack: str = DEFAULT_STACK, outputs_file: Path | None = None) -> dict[str, str]:
    path = outputs_file or STATE_DIR / f"cdk-outputs-{stack}.json"
    if not path.exists():
        raise StackNotDeployed(f"no outputs at {path}: deploy first (`driftstack up` or `make up`)")
    return json.loads(path.read_text()).get(stack, {})


def deployed_outputs(target: Target, stack: str = DEFAULT_STACK) -> dict[str, str]:
    """The stack's outputs: the file `driftstack deploy` wrote (LocalStack), CloudFormation (AWS)."""
    if target.is_local:
        return stack_outputs(stack)
    from botocore.exceptions import ClientError

    try:
        found = target.client("cloudformation").describe_stacks(StackName=stack)["Stacks"]
    except ClientError as exc:
        if "does not exist" not in str(exc):
            raise
        found = []
    if not found:
        raise StackNotDeployed(f"stack {stack} is not deployed on {target.describe()}: deploy it with "
                               f"`driftstack deploy`")
    return {o["OutputKey"]: o["OutputValue"] for o in found[0].get("Outputs", [])}


def _output(outputs: dict[str, str], suffix: str) -> str:
    """CfnOutputs of nested constructs get prefixed ids; match on the logical suffix."""
    for key, value in outputs.items():
        if key == suffix or key.endswith(suffix):
            return value
    raise StackNotDeployed(f"stack output {suffix!r} missing (have: {', '.join(sorted(outputs))}); redeploy")


@dataclass
class ApiClient:
    base_url: str
    api_key: str | None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        self.session = requests.Session()
        if self.api_key:
            self.session.headers["x-api-key"] = self.api_key

    @classmethod
    def from_stack(cls, endpoint: str | None = None, stack: str = DEFAULT_STACK,
                   target: Target | None = None) -> ApiClient:
        """The client of ``stack``'s API on ``target`` (default: resolved from ``endpoint`` and the
        environment, as the CLI does)."""
        target = target or resolve(endpoint_url=endpoint)
        outputs = deployed_outputs(target, stack)
        api_id, stage = _output(outputs, "ApiId"), _output(outputs, "ApiStage")
        apigw = target.client("apigateway")
        key = apigw.get_api_key(apiKey=_output(outputs, "ApiKeyId"), includeValue=True)["value"]
        if target.is_local:
            return cls(f"{target.endpoint_url}/_aws/execute-api/{api_id}/{stage}", key)
        return cls(f"https://{api_id}.execute-api.{apigw.meta.region_name}.amazonaws.com/{stage}", key)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        resp = self.session.request(method, self.base_url + API_PREFIX + path, timeout=self.timeout,
                                    data=None if body is None else json.dumps(body),
                                    headers={"content-type": "application/json"} if body is not None else None)
        try:
            payload = resp.json()
        except ValueError:
            payload = resp.text
        return resp.status_code, payload

    def predict(self, features: dict) -> tuple[int, Any]:
        return self.call("POST", "/predict", {"features": features})

    def predict_batch(self, instances: list[dict]) -> tuple[int, Any]:
        return self.call("POST", "/predict", {"instances": instances})

    def feedback(self, request_id: str, actual_fare: float) -> tuple[int, Any]:
        return self.call("POST", "/feedback", {"request_id": request_id, "actual_fare": actual_fare})

    def health(self) -> tuple[int, Any]:
        return self.call("GET", "/health")

    def model(self) -> tuple[int, Any]:
        return self.call("GET", "/model")
