"""A minimal CDK app used by the foundation test: one python3.12 function whose code folder is
passed as context, so the test can change the code and redeploy (the update path)."""

import aws_cdk as cdk
from aws_cdk import aws_lambda as lambda_

app = cdk.App()
stack = cdk.Stack(app, app.node.try_get_context("stack_name") or "DriftstackHello")
fn = lambda_.Function(
    stack, "Hello",
    runtime=lambda_.Runtime.PYTHON_3_12,
    handler="app.handler",
    code=lambda_.Code.from_asset(app.node.get_context("code_dir")),
    timeout=cdk.Duration.seconds(10),
)
cdk.CfnOutput(stack, "FunctionName", value=fn.function_name)
app.synth()
