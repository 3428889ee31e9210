"""LocalStack plugins that let driftstack run LocalStack on a host without Docker.

- ``driftstack-host`` Lambda runtime executor (``lambda_executor.py`` + ``lambda_shim.py``):
  runs Python handlers in host interpreter processes, isolated like the AWS runtime.
- ``dynamodb:moto`` provider (``plugins.py``): DynamoDB served by moto, no DynamoDB Local download.
- ``runtime_deps``: builds the "runtime-provided" boto3/botocore per Python version (run once at setup).
"""

EXECUTOR_NAME = "driftstack-host"
DYNAMODB_PROVIDER_NAME = "moto"
