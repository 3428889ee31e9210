"""API Gateway throttling on LocalStack, as on AWS: usage-plan limits per API key and stage method
settings answer 429 {"message": "Too Many Requests"} (our LocalStack plugin, apigw_throttle.py;
the free LocalStack does not throttle at all).

Limits are low (1 request/s) and bursts are sent concurrently, so a slow machine only makes the
assertions easier to meet: the bounds are computed from the measured elapsed time, never asserted on.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

pytestmark = pytest.mark.localstack

TOO_MANY = {"message": "Too Many Requests"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def mock_api(apigw, *, api_key_required: bool) -> str:
    """A REST API with GET /ping -> MOCK integration answering 200 {"ok": true}, deployed to stage 'test'."""
    api_id = apigw.create_rest_api(name=unique("throttle"))["id"]
    root = next(r["id"] for r in apigw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    res = apigw.create_resource(restApiId=api_id, parentId=root, pathPart="ping")["id"]
    apigw.put_method(restApiId=api_id, resourceId=res, httpMethod="GET", authorizationType="NONE",
                     apiKeyRequired=api_key_required)
    apigw.put_integration(restApiId=api_id, resourceId=res, httpMethod="GET", type="MOCK",
                          requestTemplates={"application/json": '{"statusCode": 200}'})
    apigw.put_method_response(restApiId=api_id, resourceId=res, httpMethod="GET", statusCode="200")
    apigw.put_integration_response(restApiId=api_id, resourceId=res, httpMethod="GET", statusCode="200",
                                   responseTemplates={"application/json": '{"ok": true}'})
    apigw.create_deployment(restApiId=api_id, stageName="test")
    return api_id


def key_on_plan(apigw, api_id: str, throttle: dict | None) -> str:
    """A new API key on a new usage plan for the API's 'test' stage; returns the key value."""
    plan = {"name": unique("plan"), "apiStages": [{"apiId": api_id, "stage": "test"}]}
    if throttle:
        plan["throttle"] = throttle
    plan_id = apigw.create_usage_plan(**plan)["id"]
    key = apigw.create_api_key(name=unique("key"), enabled=True)
    apigw.create_usage_plan_key(usagePlanId=plan_id, keyId=key["id"], keyType="API_KEY")
    return key["value"]


def burst(url: str, n: int, headers: dict | None = None) -> tuple[list[requests.Response], float]:
    """n concurrent GETs; the responses and the seconds the burst took."""
    t = time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        responses = list(pool.map(lambda _: requests.get(url, headers=headers, timeout=60), range(n)))
    return responses, time.monotonic() - t


def codes(responses: list[requests.Response]) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in responses:
        out[r.status_code] = out.get(r.status_code, 0) + 1
    return out


@pytest.fixture(scope="module")
def keyed_api(aws_client, localstack):
    apigw = aws_client("apigateway")
    api_id = mock_api(apigw, api_key_required=True)
    yield apigw, api_id, f"{localstack}/_aws/execute-api/{api_id}/test/ping"
    apigw.delete_rest_api(restApiId=api_id)


def test_usage_plan_throttles_a_burst_then_refills(keyed_api):
    apigw, api_id, url = keyed_api
    rate, burst_limit = 1.0, 3
    headers = {"x-api-key": key_on_plan(apigw, api_id, {"rateLimit": rate, "burstLimit": burst_limit})}

    responses, elapsed = burst(url, 20, headers)
    got = codes(responses)
    assert set(got) <= {200, 429}, got
    # the bucket starts full: the burst limit passes; beyond it only what the rate refilled meanwhile
    assert burst_limit <= got.get(200, 0) <= burst_limit + rate * elapsed + 1, (got, elapsed)
    assert got.get(429, 0) >= 1, got
    throttled = next(r for r in responses if r.status_code == 429)
    assert throttled.json() == TOO_MANY
    assert throttled.headers.get("x-amzn-ErrorType") == "TooManyRequestsException"

    # after a wait the tokens are back; requests spaced wider than 1/rate all pass
    time.sleep(burst_limit / rate)
    for _ in range(4):
        r = requests.get(url, headers=headers, timeout=60)
        assert r.status_code == 200 and r.json() == {"ok": True}, (r.status_code, r.text)
        time.sleep(1.5 / rate)


def test_limits_are_per_key_and_a_plan_without_throttle_is_never_throttled(keyed_api):
    apigw, api_id, url = keyed_api
    limited = {"x-api-key": key_on_plan(apigw, api_id, {"rateLimit": 1.0, "burstLimit": 2})}
    unlimited = {"x-api-key": key_on_plan(apigw, api_id, None)}

    got = codes(burst(url, 10, limited)[0])
    assert got.get(429, 0) >= 1, got
    # the limited key's bucket is empty now; another key (another plan) is not affected
    got = codes(burst(url, 30, unlimited)[0])
    assert got == {200: 30}, got
    # no key, or a wrong one, is still refused before any throttling (403, not 429)
    assert requests.get(url, timeout=60).status_code == 403
    assert requests.get(url, headers={"x-api-key": "not-a-key"}, timeout=60).status_code == 403


def test_stage_method_settings_from_cloudformation_throttle_every_caller(aws_client, localstack):
    """CDK's deploy_options throttling becomes the Stage's MethodSettings; it limits the method for
    all callers together (no API key involved)."""
    cfn, apigw = aws_client("cloudformation"), aws_client("apigateway")
    mock_integration = {
        "Type": "MOCK", "RequestTemplates": {"application/json": '{"statusCode": 200}'},
        "IntegrationResponses": [{"StatusCode": "200", "ResponseTemplates": {"application/json": '{"ok": true}'}}],
    }
    template = {"Resources": {
        "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": unique("stage-throttle")}},
        "Ping": {"Type": "AWS::ApiGateway::Resource", "Properties": {
            "RestApiId": {"Ref": "Api"}, "ParentId": {"Fn::GetAtt": ["Api", "RootResourceId"]}, "PathPart": "ping"}},
        "Get": {"Type": "AWS::ApiGateway::Method", "Properties": {
            "RestApiId": {"Ref": "Api"}, "ResourceId": {"Ref": "Ping"}, "HttpMethod": "GET",
            "AuthorizationType": "NONE", "Integration": mock_integration,
            "MethodResponses": [{"StatusCode": "200"}]}},
        "Deployment": {"Type": "AWS::ApiGateway::Deployment", "DependsOn": ["Get"],
                       "Properties": {"RestApiId": {"Ref": "Api"}}},
        "Stage": {"Type": "AWS::ApiGateway::Stage", "Properties": {
            "RestApiId": {"Ref": "Api"}, "DeploymentId": {"Ref": "Deployment"}, "StageName": "test",
            "MethodSettings": [{"ResourcePath": "/*", "HttpMethod": "*",
                                "ThrottlingRateLimit": 1.0, "ThrottlingBurstLimit": 2}]}},
    }, "Outputs": {"ApiId": {"Value": {"Ref": "Api"}}}}
    name = unique("stage-throttle")
    cfn.create_stack(StackName=name, TemplateBody=json.dumps(template))
    try:
        cfn.get_waiter("stack_create_complete").wait(StackName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        api_id = cfn.describe_stacks(StackName=name)["Stacks"][0]["Outputs"][0]["OutputValue"]
        settings = apigw.get_stage(restApiId=api_id, stageName="test")["methodSettings"]["*/*"]
        assert (settings["throttlingRateLimit"], settings["throttlingBurstLimit"]) == (1.0, 2)

        responses, elapsed = burst(f"{localstack}/_aws/execute-api/{api_id}/test/ping", 12)
        got = codes(responses)
        assert set(got) <= {200, 429}, got
        assert 2 <= got.get(200, 0) <= 2 + elapsed + 1, (got, elapsed)
        assert next(r for r in responses if r.status_code == 429).json() == TOO_MANY
    finally:
        cfn.delete_stack(StackName=name)
