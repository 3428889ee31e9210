"""AWS services our stack uses, against the host LocalStack: S3, DynamoDB (moto provider, also via
CloudFormation), API Gateway REST -> Lambda proxy, EventBridge schedules, Step Functions."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.localstack

ROLE = "arn:aws:iam::000000000000:role/driftstack-test"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_s3_put_get(aws_client):
    s3 = aws_client("s3")
    bucket = unique("bucket")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="models/x/model.onnx", Body=b"\x00bytes\xff")
    assert s3.get_object(Bucket=bucket, Key="models/x/model.onnx")["Body"].read() == b"\x00bytes\xff"
    with pytest.raises(ClientError) as err:
        s3.get_object(Bucket=bucket, Key="missing")
    assert err.value.response["Error"]["Code"] == "NoSuchKey"


def _create_table(ddb, name: str) -> None:
    ddb.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "model")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{
            "IndexName": "by-model",
            "KeySchema": [{"AttributeName": "model", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
        BillingMode="PAY_PER_REQUEST",
    )
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1})


def test_dynamodb_conditional_writes_query_gsi_ttl(aws_client):
    ddb = aws_client("dynamodb")
    table = unique("table")
    _create_table(ddb, table)
    ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"})
    assert ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"] == {
        "TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}

    item = {"pk": {"S": "pointer#champion"}, "sk": {"S": "v1"}, "model": {"S": "gbt"},
            "expires_at": {"N": str(int(time.time()) + 3600)}}
    ddb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    with pytest.raises(ClientError) as err:  # second writer loses
        ddb.put_item(TableName=table, Item={**item, "model": {"S": "other"}}, ConditionExpression="attribute_not_exists(pk)")
    assert err.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    ddb.put_item(TableName=table, Item={"pk": {"S": "pointer#champion"}, "sk": {"S": "v2"}, "model": {"S": "gbt"}})
    ddb.put_item(TableName=table, Item={"pk": {"S": "run#1"}, "sk": {"S": "v1"}, "model": {"S": "linear"}})

    by_key = ddb.query(TableName=table, KeyConditionExpression="pk = :pk AND begins_with(sk, :v)",
                       ExpressionAttributeValues={":pk": {"S": "pointer#champion"}, ":v": {"S": "v"}})
    assert [i["sk"]["S"] for i in by_key["Items"]] == ["v1", "v2"]
    assert by_key["Items"][0]["model"]["S"] == "gbt"  # the rejected write changed nothing
    by_gsi = ddb.query(TableName=table, IndexName="by-model", KeyConditionExpression="model = :m",
                       ExpressionAttributeValues={":m": {"S": "linear"}})
    assert [(i["pk"]["S"], i["sk"]["S"]) for i in by_gsi["Items"]] == [("run#1", "v1")]


def test_dynamodb_table_from_cloudformation(aws_client):
    cfn, ddb = aws_client("cloudformation"), aws_client("dynamodb")
    stack, table = unique("stack"), unique("cfn-table")
    template = {"Resources": {"T": {"Type": "AWS::DynamoDB::Table", "Properties": {
        "TableName": table,
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "g", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "GlobalSecondaryIndexes": [{"IndexName": "by-g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                    "Projection": {"ProjectionType": "KEYS_ONLY"}}],
        "TimeToLiveSpecification": {"AttributeName": "ttl", "Enabled": True},
        "BillingMode": "PAY_PER_REQUEST"}}}}
    cfn.create_stack(StackName=stack, TemplateBody=json.dumps(template))
    cfn.get_waiter("stack_create_complete").wait(StackName=stack, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    desc = ddb.describe_table(TableName=table)["Table"]
    assert desc["TableStatus"] == "ACTIVE"
    assert [g["IndexName"] for g in desc["GlobalSecondaryIndexes"]] == ["by-g"]
    assert ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]["TimeToLiveStatus"] == "ENABLED"
    ddb.put_item(TableName=table, Item={"pk": {"S": "a"}, "g": {"S": "x"}})
    assert ddb.query(TableName=table, IndexName="by-g", KeyConditionExpression="g = :g",
                     ExpressionAttributeValues={":g": {"S": "x"}})["Count"] == 1
    cfn.delete_stack(StackName=stack)
    cfn.get_waiter("stack_delete_complete").wait(StackName=stack, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    assert table not in ddb.list_tables()["TableNames"]


def test_api_gateway_rest_lambda_proxy_over_http(aws_client, lambda_function, localstack):
    apigw, lam = aws_client("apigateway"), aws_client("lambda")
    fn_arn = lam.get_function(FunctionName=lambda_function("handlers.proxy"))["Configuration"]["FunctionArn"]
    api_id = apigw.create_rest_api(name=unique("api"))["id"]
    root = next(r["id"] for r in apigw.get_resources(restApiId=api_id)["items"] if r["path"] == "/")
    res = apigw.create_resource(restApiId=api_id, parentId=root, pathPart="{proxy+}")["id"]
    apigw.put_method(restApiId=api_id, resourceId=res, httpMethod="ANY", authorizationType="NONE")
    apigw.put_integration(restApiId=api_id, resourceId=res, httpMethod="ANY", type="AWS_PROXY",
                          integrationHttpMethod="POST",
                          uri=f"arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/{fn_arn}/invocations")
    apigw.create_deployment(restApiId=api_id, stageName="test")

    url = f"{localstack}/_aws/execute-api/{api_id}/test/predict/now?trip=42"
    with urllib.request.urlopen(urllib.request.Request(url, method="GET"), timeout=60) as resp:
        status, headers, body = resp.status, resp.headers, json.loads(resp.read())
    assert status == 201
    assert headers["X-Driftstack"] == "proxied"
    assert headers["Content-Type"] == "application/json"
    assert body == {"path": "/predict/now", "query": {"trip": "42"}, "method": "GET"}


@pytest.mark.slow
def test_eventbridge_rate_schedule_invokes_lambda_and_stops_when_disabled(aws_client, lambda_function):
    ddb, events, lam = aws_client("dynamodb"), aws_client("events"), aws_client("lambda")
    table = unique("schedule")
    _create_table(ddb, table)
    name = lambda_function("handlers.record", env={"TABLE": table})
    fn_arn = lam.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    rule = unique("every-minute")
    rule_arn = events.put_rule(Name=rule, ScheduleExpression="rate(1 minute)", State="ENABLED")["RuleArn"]
    lam.add_permission(FunctionName=name, StatementId="events", Action="lambda:InvokeFunction",
                       Principal="events.amazonaws.com", SourceArn=rule_arn)
    events.put_targets(Rule=rule, Targets=[{"Id": "fn", "Arn": fn_arn}])
    # What a CloudFormation update of the rule does: PutRule, PutTargets again. (LocalStack alone then
    # runs one scheduler job per PutTargets: two invocations per tick, and DisableRule stops one.)
    events.put_rule(Name=rule, ScheduleExpression="rate(1 minute)", State="ENABLED", Description="updated")
    events.put_targets(Rule=rule, Targets=[{"Id": "fn", "Arn": fn_arn}])
    try:
        deadline = time.monotonic() + 90
        items = []
        while time.monotonic() < deadline and not items:
            items = _schedule_items(ddb, table)
            time.sleep(2)
        assert items, "the rate(1 minute) rule did not invoke the Lambda within 90 s"
        assert items[0]["source"]["S"] == "aws.events"
        time.sleep(10)  # a second invocation of the same tick would be in by now
        assert len(_schedule_items(ddb, table)) == 1, "one tick of one rule invoked its target more than once"

        # A disabled schedule stops firing, as on AWS (LocalStack 2026.3 needs our plugin's patches).
        events.disable_rule(Name=rule)
        time.sleep(3)  # an invocation already in flight may still land
        count = len(_schedule_items(ddb, table))
        time.sleep(70)
        assert len(_schedule_items(ddb, table)) == count, "a disabled rate(1 minute) rule still fired"
    finally:
        events.remove_targets(Rule=rule, Ids=["fn"])
        events.delete_rule(Name=rule)


def _schedule_items(ddb, table: str) -> list:
    return ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                     ExpressionAttributeValues={":p": {"S": "schedule"}}, ConsistentRead=True)["Items"]


def _run_state_machine(sfn, arn: str, payload: dict) -> dict:
    execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload))["executionArn"]
    for _ in range(600):
        desc = sfn.describe_execution(executionArn=execution)
        if desc["status"] != "RUNNING":
            return desc
        time.sleep(0.1)
    pytest.fail(f"execution {execution} still running")


def test_step_functions_choice_lambda_task_and_catch(aws_client, lambda_function):
    sfn, lam = aws_client("stepfunctions"), aws_client("lambda")
    fn_arn = lam.get_function(FunctionName=lambda_function("handlers.double"))["Configuration"]["FunctionArn"]
    definition = {
        "StartAt": "Route",
        "States": {
            "Route": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericGreaterThan": 0, "Next": "Double"}],
                      "Default": "NonPositive"},
            "Double": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                       "Parameters": {"FunctionName": fn_arn, "Payload.$": "$"}, "OutputPath": "$.Payload",
                       "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Recovered"}],
                       "End": True},
            "NonPositive": {"Type": "Pass", "Result": {"skipped": True}, "End": True},
            "Recovered": {"Type": "Pass", "Parameters": {"recovered": True, "cause.$": "$.error.Cause"}, "End": True},
        },
    }
    arn = sfn.create_state_machine(name=unique("sm"), definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]

    ok = _run_state_machine(sfn, arn, {"n": 21})
    assert ok["status"] == "SUCCEEDED", ok
    assert json.loads(ok["output"]) == {"n": 21, "doubled": 42}

    skipped = _run_state_machine(sfn, arn, {"n": -1})
    assert skipped["status"] == "SUCCEEDED" and json.loads(skipped["output"]) == {"skipped": True}

    caught = _run_state_machine(sfn, arn, {"n": 1, "fail": True})
    assert caught["status"] == "SUCCEEDED", caught
    output = json.loads(caught["output"])
    assert output["recovered"] is True
    assert "task failed on purpose" in output["cause"]
    sfn.delete_state_machine(stateMachineArn=arn)
