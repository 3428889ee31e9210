"""LocalStack's internal calls on a request's path go to its gateway in memory, not over HTTP.

Each prediction through API Gateway makes LocalStack call itself: API Gateway invokes the Lambda
function, the function's log batch is shipped with ``PutLogEvents``, the EMF line becomes a
``PutMetricData`` (``emf_metrics.py``) and the Lambda service records its ``AWS/Lambda`` metric with
another. By default each of these internal boto3 calls is serialised to HTTP, sent over the loopback,
accepted by the gateway's server, parsed back into a request and answered the same way: on our
2 cores, with one GIL for all of it, most of LocalStack's CPU per prediction.

LocalStack has the in-memory path built in (``IN_MEMORY_CLIENT=1``: the client hands the request to
the gateway's handler chain directly, with the same parsing of parameters, handlers and response),
but for every internal client at once, CloudFormation's deploys included. Here only the clients of
the services on the request path use it (``SERVICES``). ``DRIFTSTACK_IN_MEMORY_CLIENTS=0`` leaves it
out (to compare).
"""

from __future__ import annotations

import logging

LOG = logging.getLogger(__name__)
SERVICES = frozenset({"lambda", "logs", "cloudwatch"})


def install() -> None:
    from localstack.aws.client import GatewayShortCircuit, botocore_in_memory_endpoint_patch
    from localstack.aws.connect import InternalClientFactory
    from localstack.runtime import get_current_runtime
    from localstack.utils.patch import patch

    botocore_in_memory_endpoint_patch.apply()  # requests carry their parameters (ignored over HTTP)

    @patch(InternalClientFactory._get_client_post_hook)
    def in_memory_on_the_request_path(fn, self, client):
        client = fn(self, client)
        if client.meta.service_model.service_name in SERVICES:
            GatewayShortCircuit.modify_client(client, get_current_runtime().components.gateway)
        return client

    LOG.info("internal %s clients call the gateway in memory", ", ".join(sorted(SERVICES)))
