"""Storage shared by every concern: the artifact bucket and the models table."""

from aws_cdk import CfnOutput, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_s3 as s3
from constructs import Construct


class Storage(Construct):
    """``bucket`` holds model artifacts (models/), the request-log archive (requests/), drift results
    and reports (drift/) and decision records (decisions/). ``models_table`` holds the champion pointer
    (pk="pointer#champion", updated by conditional writes) and, later, decision records."""

    def __init__(self, scope: Construct, construct_id: str, *, removal_policy: RemovalPolicy) -> None:
        super().__init__(scope, construct_id)
        self.bucket = s3.Bucket(
            self, "Artifacts",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            versioned=True,  # an overwritten artifact or report can be recovered
            removal_policy=removal_policy,
        )
        self.models_table = dynamodb.Table(
            self, "Models",
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True),
            removal_policy=removal_policy,
        )
        CfnOutput(scope, "BucketName", value=self.bucket.bucket_name)
        CfnOutput(scope, "ModelsTableName", value=self.models_table.table_name)
