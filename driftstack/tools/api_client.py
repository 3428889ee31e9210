"""A small client for the deployed prediction API, found from the stack's outputs.

On LocalStack the URL CDK prints (https://{id}.execute-api.localhost...) does not resolve offline,
so the client uses LocalStack's path form: {endpoint}/_aws/execute-api/{api_id}/{stage}, on the
same host and port as the boto3 clients (:mod:`driftstack.tools.aws_target`), over HTTPS verified
against the local CA that `driftstack up` made (.state/tls/ca.pem; LocalStack's port speaks both).
On AWS the outputs come from CloudFormation, the URL is the regional execute-api one and the
certificate is checked against the usual CA bundle (certifi). ``cacert`` overrides both.
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


class CertificateNotTrusted(RuntimeError):
    """The API's certificate does not verify against the CA the client trusts."""


def local_ca_file() -> Path:
    from driftstack.tools import local_ca, localstack_host

    return localstack_host.TLS_DIR / local_ca.CA_FILE


def local_https(endpoint_url: str, cacert: str | Path | None = None) -> tuple[str, str | bool]:
    """The LocalStack endpoint as HTTPS, and the CA file that verifies it: ``cacert``, else the local
    CA. Without a local CA here, or for a host its certificate does not name (a LocalStack that
    `driftstack up` did not start), the URL stays as given."""
    from urllib.parse import urlsplit

    from driftstack.tools import local_ca

    ca = Path(cacert) if cacert else local_ca_file()
    if not cacert and not (ca.exists() and local_ca.covers(urlsplit(endpoint_url).hostname or "")):
        return endpoint_url, True
    scheme, sep, rest = endpoint_url.partition("://")
    return (f"https://{rest}" if sep and scheme == "http" else endpoint_url), str(ca)


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
    verify: str | bool = True  # a CA file (the local CA on LocalStack) or True: the usual bundle

    def __post_init__(self) -> None:
        self.session = requests.Session()
        self.session.verify = self.verify
        if self.api_key:
            self.session.headers["x-api-key"] = self.api_key

    @classmethod
    def from_stack(cls, endpoint: str | None = None, stack: str = DEFAULT_STACK,
                   target: Target | None = None, cacert: str | Path | None = None) -> ApiClient:
        """The client of ``stack``'s API on ``target`` (default: resolved from ``endpoint`` and the
        environment, as the CLI does); ``cacert``: the CA file to verify the API's certificate with."""
        target = target or resolve(endpoint_url=endpoint)
        outputs = deployed_outputs(target, stack)
        api_id, stage = _output(outputs, "ApiId"), _output(outputs, "ApiStage")
        apigw = target.client("apigateway")
        key = apigw.get_api_key(apiKey=_output(outputs, "ApiKeyId"), includeValue=True)["value"]
        if target.is_local:
            endpoint, verify = local_https(target.endpoint_url, cacert)
            return cls(f"{endpoint}/_aws/execute-api/{api_id}/{stage}", key, verify=verify)
        return cls(f"https://{api_id}.execute-api.{apigw.meta.region_name}.amazonaws.com/{stage}", key,
                   verify=str(cacert) if cacert else True)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        try:
            # verify per request: requests lets REQUESTS_CA_BUNDLE override a session's CA file
            resp = self.session.request(method, self.base_url + API_PREFIX + path, timeout=self.timeout,
                                        verify=self.verify, data=None if body is None else json.dumps(body),
                                        headers={"content-type": "application/json"} if body is not None else None)
        except requests.exceptions.SSLError as exc:
            trusted = self.verify if isinstance(self.verify, str) else "the system's CA bundle"
            raise CertificateNotTrusted(
                f"the API's certificate at {self.base_url} does not verify against {trusted} — a LocalStack "
                f"started before its certificate was made: restart it (`driftstack down && driftstack up`); "
                f"another CA: --cacert PATH ({exc.__class__.__name__})") from exc
        if "charset=" not in resp.headers.get("content-type", ""):
            resp.encoding = "utf-8"  # the API's text (e.g. the Swagger page) is UTF-8; requests would read latin-1
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
