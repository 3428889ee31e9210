"""CDK constructs that add Node.js custom resources deploy and destroy on the host LocalStack, and
their handlers really run (on the host Node, with the runtime's AWS SDK v3): log retention is set on
the function's log group, an AwsCustomResource SDK call answers, and auto_delete_objects empties a
bucket holding objects (versions included) so `cdk destroy` can delete it."""

import time
from pathlib import Path

import pytest

from driftstack.tools import deploy

pytestmark = [pytest.mark.localstack, pytest.mark.slow]

APP = Path(__file__).resolve().parent.parent / "cdk_apps" / "custom_resources"
STACK = "DriftstackCustomResources"


def test_node_custom_resources_deploy_work_and_destroy(localstack, aws_client):
    outputs = deploy.deploy(localstack, app_dir=APP, stack=STACK, build=False)
    s3, logs, lam = aws_client("s3"), aws_client("logs"), aws_client("lambda")
    bucket, fn = outputs["BucketName"], outputs["FunctionName"]
    destroyed = False
    try:
        # Custom::LogRetention (Node) created the log group with the retention
        groups = logs.describe_log_groups(logGroupNamePrefix=f"/aws/lambda/{fn}")["logGroups"]
        assert [g.get("retentionInDays") for g in groups] == [7], groups
        # Custom::AWS (AwsCustomResource, Node + @aws-sdk/client-s3 from the runtime) answered
        assert outputs["SdkCallPhysicalId"] == "versioning"
        # the providers ran on a nodejs runtime
        runtimes = {f["Runtime"] for f in lam.list_functions()["Functions"] if STACK in f["FunctionName"]}
        assert any(r.startswith("nodejs") for r in runtimes), runtimes

        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        for i in range(5):
            s3.put_object(Bucket=bucket, Key=f"data/{i}.txt", Body=b"x")
            s3.put_object(Bucket=bucket, Key=f"data/{i}.txt", Body=b"y")  # a second version
        deploy.destroy(localstack, app_dir=APP, stack=STACK)
        destroyed = True
        names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
        assert bucket not in names  # emptied by Custom::S3AutoDeleteObjects, then deleted
        cfn = aws_client("cloudformation")
        for _ in range(50):
            stacks = [s for s in cfn.list_stacks()["StackSummaries"]
                      if s["StackName"] == STACK and s["StackStatus"] != "DELETE_COMPLETE"]
            if not stacks:
                break
            time.sleep(0.2)
        assert not stacks, stacks
    finally:
        if not destroyed:
            deploy.destroy(localstack, app_dir=APP, stack=STACK)
