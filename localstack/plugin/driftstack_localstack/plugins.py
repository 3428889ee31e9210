"""Entry points registered in pyproject.toml. Kept import-light: the real work is loaded lazily."""

from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin
from localstack.services.plugins import Service, aws_provider

from driftstack_localstack import DYNAMODB_PROVIDER_NAME, EXECUTOR_NAME


class HostRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    """LAMBDA_RUNTIME_EXECUTOR=driftstack-host: run Lambda handlers as host processes (no Docker)."""

    name = EXECUTOR_NAME

    def load(self, *args, **kwargs):
        from driftstack_localstack.lambda_executor import HostRuntimeExecutor

        return HostRuntimeExecutor


@aws_provider(api="dynamodb", name=DYNAMODB_PROVIDER_NAME)
def dynamodb_moto():
    """PROVIDER_OVERRIDE_DYNAMODB=moto: every DynamoDB operation is answered by moto's in-memory backend.

    LocalStack's own providers proxy to DynamoDB Local (Java + a download), impossible offline.
    The generated DynamodbApi raises NotImplementedError for every operation, so the moto fallback
    dispatcher forwards all of them to moto (conditional writes, TTL, GSIs, Query, transactions ...),
    one request at a time so conditional writes stay atomic (``dynamodb_atomic``).
    """
    from localstack.aws.api.dynamodb import DynamodbApi
    from localstack.services.moto import MotoFallbackDispatcher

    from driftstack_localstack import dynamodb_atomic

    dynamodb_atomic.install()

    return Service.for_provider(DynamodbApi(), dispatch_table_factory=MotoFallbackDispatcher)
