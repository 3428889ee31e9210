"""cdk-nag (AwsSolutions pack): every accepted finding of the stack, in one place, each with its reason.

``acknowledge(stack)`` is called once from stack.py; ``add_checks(app)`` registers the rule pack as a
synth-time validation plugin (tests/unit/test_nag.py, or ``cdk synth -c nag=true``): synthesis then
fails on any finding not acknowledged here.  Acknowledgments are attached to the narrowest construct
(the role of one function, the API, the bucket) and, for IAM5, to the exact wildcard they accept, so
a new wildcard elsewhere still fails the check.

Real fixes made instead of acknowledgments: PITR on every table, TLS-only bucket/queues/topic,
S3-managed encryption, public access blocked, no s3:Delete* grants, drift check limited to
states:ListExecutions, X-Ray on the state machine, API key required on every method.
"""

from __future__ import annotations

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_apigateway as apigw
from constructs import Construct, IConstruct

PACK = "AwsSolutions"

# Wildcard *actions* CDK's grant_read/grant_put emit (s3:GetObject*, ...): each is a family of the
# same read or write verb (GetObjectVersion, GetObjectTagging, ...), always on a prefix-scoped resource.
S3_GRANT_ACTIONS = ("s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:Abort*", "s3:DeleteObject*")
# Key prefixes functions are granted (resource wildcards below a prefix: content-addressed keys).
PREFIXES = ("models", "requests", "feedback", "aggregates", "log-spill", "drift", "decisions", "retrain")

REASONS = {
    "AwsSolutions-IAM4": "AWSLambdaBasicExecutionRole only allows writing this function's CloudWatch Logs "
                         "(logs:CreateLogGroup/CreateLogStream/PutLogEvents); a hand-written copy adds nothing",
    "AwsSolutions-L1": "python3.12 is pinned on purpose: the numpy/onnxruntime layer is built for it and the "
                       "LocalStack host runner executes it with the same interpreter (see DESIGN.md)",
    "s3-actions": "CDK grant_read/grant_put action families (GetObject*, List*, ...), each statement scoped "
                  "to one key prefix of the artifact bucket; s3:DeleteObject* comes only with grant_put's "
                  "overwrite semantics on that prefix",
    "s3-prefix": "keys under the prefix are content-addressed or time-partitioned (models/<name>/<sha>/, "
                 "requests/<date>/<slot>, log-spill/<ts>-<id>): unknown in advance, so the grant is the prefix itself",
    "xray": "xray:PutTraceSegments/PutTelemetryRecords support no resource-level permissions (Resource '*' "
            "is the only option, added by tracing=ACTIVE)",
    "ddb-index": "CDK grants on a table include its indexes (<table>/index/*); none of our tables is scanned through one",
    "log-retention": "CDK's LogRetention helper sets retention on /aws/lambda/* log groups, which it creates "
                     "on demand: logs:PutRetentionPolicy/DeleteRetentionPolicy on '*' is how CDK ships it",
    "log-retention-runtime": "the LogRetention provider is CDK's own Node.js handler and CDK picks its runtime "
                             "(nodejs24.x, the latest, with aws-cdk-lib 2.275); upgrading aws-cdk-lib moves it",
    "lambda-version": "Step Functions LambdaInvoke grants <fn>:* so a published version or alias of that one "
                      "function can be invoked; the function itself is fixed",
    "AwsSolutions-APIG2": "the Lambda validates every body against the pydantic models and answers 422 naming "
                          "each bad field (tested); an API Gateway model would duplicate the contract",
    "AwsSolutions-APIG4": "machine-to-machine API: every method requires an API key bound to a usage plan "
                          "(throttled); callers are services, not Cognito users",
    "AwsSolutions-COG4": "no end users sign in: callers are services holding an API key bound to a throttled "
                         "usage plan (see APIG4), so there is no Cognito user pool to authorize against",
    "AwsSolutions-APIG1": "access logs need the account-level API Gateway CloudWatch role, which this stack "
                          "deliberately does not create (cloud_watch_role=False); the Lambda logs every request "
                          "(id, latency, status) in structured JSON and EMF metrics",
    "AwsSolutions-APIG6": "see APIG1: execution logging needs the account-level CloudWatch role; the function's "
                          "own logs and metrics cover every method",
    "AwsSolutions-APIG3": "WAF is an account/edge decision (cost, rules) left to the operator; throttling is "
                          "enforced by the usage plan and stage limits",
    "AwsSolutions-S1": "the bucket holds model artifacts and archives written only by our functions; object-level "
                       "auditing belongs to CloudTrail data events on AWS, and a log bucket would need the same "
                       "exemption",
    "AwsSolutions-SF1": "every execution's outcome is recorded by the workflow itself (history table + S3 decision "
                        "record, also on failure); CloudWatch Logs delivery needs logs:*Delivery on '*' and is "
                        "not available on LocalStack's free edition",
}


def _ack(scope: IConstruct, rule: str, reason: str) -> None:
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=f"{PACK}::{rule}", reason=reason))


def _ack_iam5(scope: IConstruct, finding: str, reason: str) -> None:
    _ack(scope, f"AwsSolutions-IAM5[{finding}]", reason)


def _token(stack: cdk.Stack, construct: Construct) -> str:
    """How cdk-nag spells an attribute reference in a finding: <LogicalId.Arn>."""
    return stack.get_logical_id(construct.node.default_child)  # type: ignore[arg-type]


def acknowledge(stack: cdk.Stack) -> None:
    """Attach every accepted finding (with its reason) to the constructs of ``stack``."""
    nodes = stack.node.find_all()
    buckets = [n for n in nodes if isinstance(n, s3.Bucket)]
    functions = [n for n in nodes if isinstance(n, lambda_.Function)]
    machines = [n for n in nodes if isinstance(n, sfn.StateMachine)]
    tables = [n for n in nodes if type(n).__name__ == "Table" and n.node.default_child is not None]

    for fn in functions:
        role = fn.role
        assert role is not None
        _ack(role, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                   "AWSLambdaBasicExecutionRole]", REASONS["AwsSolutions-IAM4"])
        _ack(fn, "AwsSolutions-L1", REASONS["AwsSolutions-L1"])
        for action in S3_GRANT_ACTIONS:
            _ack_iam5(role, f"Action::{action}", REASONS["s3-actions"])
        for bucket in buckets:
            for prefix in PREFIXES:
                _ack_iam5(role, f"Resource::<{_token(stack, bucket)}.Arn>/{prefix}/*", REASONS["s3-prefix"])
        for table in tables:
            _ack_iam5(role, f"Resource::<{_token(stack, table)}.Arn>/index/*", REASONS["ddb-index"])
        if _traced(fn):
            _ack_iam5(role, "Resource::*", REASONS["xray"])

    for machine in machines:
        role = machine.role
        for fn in functions:
            _ack_iam5(role, f"Resource::<{_token(stack, fn)}.Arn>:*", REASONS["lambda-version"])
        _ack(machine, "AwsSolutions-SF1", REASONS["AwsSolutions-SF1"])
        _ack_iam5(role, "Resource::*", REASONS["xray"])  # tracing_enabled on the state machine

    for api in (n for n in nodes if isinstance(n, apigw.RestApi)):
        for rule in ("AwsSolutions-APIG1", "AwsSolutions-APIG2", "AwsSolutions-APIG3", "AwsSolutions-APIG4",
                     "AwsSolutions-APIG6", "AwsSolutions-COG4"):
            _ack(api, rule, REASONS[rule])
    for bucket in buckets:
        _ack(bucket, "AwsSolutions-S1", REASONS["AwsSolutions-S1"])
    # CDK's own singleton that applies log retention to log groups (a CDK-maintained Node function).
    # It is created when the LogRetention aspect (log_retention.py) runs at synth, after this call,
    # so it is acknowledged by an aspect too (CDK re-walks the tree for constructs aspects add).
    cdk.Aspects.of(stack).add(_LogRetentionProvider(stack))


@jsii.implements(cdk.IAspect)
class _LogRetentionProvider:
    """Acknowledges the findings of CDK's LogRetention singleton provider (a direct child of the stack)."""

    def __init__(self, stack: cdk.Stack) -> None:
        self.stack = stack

    def visit(self, node: IConstruct) -> None:
        if node.node.scope is self.stack and node.node.id.startswith("LogRetention"):
            _ack(node, "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                       "AWSLambdaBasicExecutionRole]", REASONS["AwsSolutions-IAM4"])
            _ack_iam5(node, "Resource::*", REASONS["log-retention"])
            _ack(node, "AwsSolutions-L1", REASONS["log-retention-runtime"])


def _traced(fn: lambda_.Function) -> bool:
    cfn = fn.node.default_child
    tracing = getattr(cfn, "tracing_config", None)
    return bool(tracing) and getattr(tracing, "mode", None) == "Active"


def add_checks(app: cdk.App, *, verbose: bool = False) -> None:
    """Run the AwsSolutions pack at synth: any unacknowledged finding fails synthesis."""
    from cdk_nag import AwsSolutionsChecks

    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app, verbose=verbose))


__all__ = ["acknowledge", "add_checks", "REASONS"]
