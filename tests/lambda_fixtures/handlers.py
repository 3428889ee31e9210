"""Tiny Lambda handlers for the LocalStack integration tests (zipped as one code package)."""

import json
import os
import sys
import time


def noop(event, context):
    """Returns the event unchanged (latency benchmark)."""
    return event


def echo(event, context):
    """Echo the event with facts about the runtime; prints a marker to the function log."""
    import boto3  # provided by the runtime, not by the function zip

    print(f"echo-marker {event.get('marker', '')}")
    time.sleep(event.get("sleep", 0))
    identity = boto3.client("sts").get_caller_identity()
    return {
        "event": event,
        "pid": os.getpid(),
        "python": "%d.%d" % sys.version_info[:2],
        "boto3": boto3.__file__,
        "account": identity["Account"],
        "greeting": os.environ.get("GREETING"),
        "request_id": context.aws_request_id,
        "remaining_ms": context.get_remaining_time_in_millis(),
    }


def log_lines(event, context):
    """Prints each of event["lines"] to the function log (e.g. an embedded-metric-format document)."""
    for line in event.get("lines", []):
        print(line)
    return {"printed": len(event.get("lines", []))}


def fail(event, context):
    raise ValueError(f"bad input: {event.get('why', 'no reason')}")


def sleepy(event, context):
    print(f"sleepy-pid={os.getpid()}", flush=True)
    time.sleep(event.get("seconds", 30))
    return {"slept": event.get("seconds", 30)}


def s3_get(event, context):
    import boto3

    body = boto3.client("s3").get_object(Bucket=event["bucket"], Key=event["key"])["Body"].read()
    return {"body": body.decode()}


def proxy(event, context):
    """API Gateway Lambda-proxy response."""
    return {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "X-Driftstack": "proxied"},
        "body": json.dumps({"path": event["path"], "query": event.get("queryStringParameters"),
                            "method": event["httpMethod"]}),
    }


def record(event, context):
    """EventBridge target: write one item per invocation to the table in env TABLE."""
    import boto3

    boto3.client("dynamodb").put_item(
        TableName=os.environ["TABLE"],
        Item={"pk": {"S": "schedule"}, "sk": {"S": event.get("id", context.aws_request_id)},
              "source": {"S": event.get("source", "")}},
    )
    return {"recorded": True}


def double(event, context):
    """Step Functions task: doubles n, fails when asked."""
    if event.get("fail"):
        raise RuntimeError("task failed on purpose")
    return {"n": event["n"], "doubled": event["n"] * 2}
