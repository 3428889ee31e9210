"""A small client for the deployed prediction API, found from the stack's outputs.

On LocalStack the URL CDK prints (https://{id}.execute-api.localhost...) does not resolve offline,
so the client uses LocalStack's path form: {endpoint}/_aws/execute-api/{api_id}/{stage}.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from driftstack.tools.deploy import DEFAULT_STACK, STATE_DIR

API_PREFIX = "/v1"


class StackNotDeployed(RuntimeError):
    pass


def stack_outputs(stack: str = DEFAULT_STACK, outputs_file: Path | None = None) -> dict[str, str]:
    path = outputs_file or STATE_DIR / f"cdk-outputs-{stack}.json"
    if not path.exists():
        raise StackNotDeployed(f"no outputs at {path}: deploy first (`driftstack up` or `make up`)")
    return json.loads(path.read_text()).get(stack, {})


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
    def from_stack(cls, endpoint: str | None = None, stack: str = DEFAULT_STACK) -> "ApiClient":
        import boto3

        endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL", "http://localhost:4566")
        outputs = stack_outputs(stack)
        api_id, stage = _output(outputs, "ApiId"), _output(outputs, "ApiStage")
        key_id = _output(outputs, "ApiKeyId")
        apigw = boto3.client("apigateway", endpoint_url=endpoint, region_name="us-east-1",
                             aws_access_key_id="test", aws_secret_access_key="test")
        key = apigw.get_api_key(apiKey=key_id, includeValue=True)["value"]
        return cls(f"{endpoint.rstrip('/')}/_aws/execute-api/{api_id}/{stage}", key)

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
