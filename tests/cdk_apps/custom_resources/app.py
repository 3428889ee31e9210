"""A CDK app using the constructs that add Node.js custom resources, as a user would write it:
a bucket with auto_delete_objects (Custom::S3AutoDeleteObjects) and a function with log_retention
(Custom::LogRetention), plus an AwsCustomResource reading an SSM-free, SDK v3 call (s3:ListBuckets).
Deployed and destroyed by tests/integration/test_cdk_custom_resources.py."""

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import custom_resources as cr

app = cdk.App()
stack = cdk.Stack(app, app.node.try_get_context("stack_name") or "DriftstackCustomResources")
bucket = s3.Bucket(stack, "Data", removal_policy=cdk.RemovalPolicy.DESTROY, auto_delete_objects=True)
fn = lambda_.Function(
    stack, "Hello",
    runtime=lambda_.Runtime.PYTHON_3_12,
    handler="index.handler",
    code=lambda_.Code.from_inline("def handler(event, context):\n    return {'ok': True}\n"),
    log_retention=logs.RetentionDays.ONE_WEEK,
)
lookup = cr.AwsCustomResource(
    stack, "HeadBucket",
    on_create=cr.AwsSdkCall(service="S3", action="getBucketVersioning",
                            parameters={"Bucket": bucket.bucket_name},
                            physical_resource_id=cr.PhysicalResourceId.of("versioning")),
    policy=cr.AwsCustomResourcePolicy.from_sdk_calls(resources=cr.AwsCustomResourcePolicy.ANY_RESOURCE),
    install_latest_aws_sdk=False,
)
cdk.CfnOutput(stack, "BucketName", value=bucket.bucket_name)
cdk.CfnOutput(stack, "FunctionName", value=fn.function_name)
cdk.CfnOutput(stack, "SdkCallPhysicalId", value=lookup.node.default_child.ref)
app.synth()
