"""LocalStack plugins that let driftstack run LocalStack on a host without Docker.

- ``driftstack-host`` Lambda runtime executor (``lambda_executor.py`` + ``lambda_shim.py``):
  runs Python handlers in host interpreter processes, isolated like the AWS runtime.
- ``dynamodb:moto`` provider (``plugins.py``): DynamoDB served by moto, no DynamoDB Local download;
  requests are applied one at a time so conditional writes are atomic (``dynamodb_atomic.py``).
- ``runtime_deps``: builds the "runtime-provided" boto3/botocore per Python version (run once at setup).
- fixes applied at LocalStack start (``patches.py``): EventBridge disabled schedules stop firing;
  API Gateway usage-plan and stage throttling answer 429 as on AWS (``apigw_throttle.py``); the host
  runner starts only a few Lambda environments at a time (``lambda_assignment.py``); embedded-metric-format
  log lines become CloudWatch metrics, as on AWS (``emf_metrics.py``); LocalStack's internal calls on a
  request's path skip the loopback HTTP (``in_memory_clients.py``) and CloudWatch's metric store skips
  the fsync per datapoint (``cloudwatch_metrics_db.py``).
"""

EXECUTOR_NAME = "driftstack-host"
DYNAMODB_PROVIDER_NAME = "moto"
