"""CloudFormation custom resources (``Custom::*`` / ``AWS::CloudFormation::CustomResource``) backed by Lambda.

The free localstack-core 2026.3 has no provider for them: a custom resource is "deployed as a
fallback" without its function ever being called, so CDK's Node custom resources (LogRetention,
S3 auto_delete_objects, AwsCustomResource, Provider framework, …) silently do nothing. This provider
does what CloudFormation does: it invokes the ServiceToken function with the custom-resource event
(Create / Update / Delete, ResourceProperties, OldResourceProperties, PhysicalResourceId) and a
``ResponseURL``, waits for the function to PUT its response there, and fails the resource with the
function's Reason (or its error) when it says FAILED or never answers. ``Data`` becomes the
resource's Fn::GetAtt attributes, ``PhysicalResourceId`` its Ref.

The ResponseURL is a route on LocalStack's own gateway (``/_driftstack/cfn-response/<token>``).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from pathlib import Path

from localstack import config
from localstack.services.cloudformation.resource_provider import (
    CloudFormationResourceProviderPlugin,
    OperationStatus,
    ProgressEvent,
    ResourceProvider,
    ResourceRequest,
)

LOG = logging.getLogger(__name__)
RESPONSE_PATH = "/_driftstack/cfn-response"
PROPS_KEY = "DriftstackCustomResourceProperties"  # the resource's own properties, kept for Update/Delete
WAIT_SLACK_SECONDS = 30

_responses: dict[str, dict] = {}
_arrived = threading.Condition()
_route_lock = threading.Lock()
_route_added = False


def _add_route() -> None:
    global _route_added
    with _route_lock:
        if _route_added:
            return
        from localstack.http import Request, Response
        from localstack.services.edge import ROUTER

        def receive(request: Request, token: str) -> Response:
            try:
                body = json.loads(request.get_data() or b"{}")
            except ValueError:
                return Response("response body is not JSON", 400)
            with _arrived:
                _responses[token] = body
                _arrived.notify_all()
            return Response("", 200)

        ROUTER.add(f"{RESPONSE_PATH}/<token>", endpoint=receive, methods=["PUT", "POST"])
        _route_added = True


def _wait_response(token: str, timeout: float, done: threading.Event) -> dict | None:
    """The function's response; None when it did not answer (after the invoke ended, a short grace)."""
    deadline = time.monotonic() + timeout
    grace_until = None
    with _arrived:
        while token not in _responses:
            now = time.monotonic()
            if done.is_set() and grace_until is None:
                grace_until = now + 2.0  # a response posted just before the invoke returned
            if now >= deadline or (grace_until is not None and now >= grace_until):
                return None
            _arrived.wait(0.1)
        return _responses.pop(token)


class CustomResourceProvider(ResourceProvider[dict]):
    TYPE = "AWS::CloudFormation::CustomResource"
    SCHEMA = {
        "typeName": "AWS::CloudFormation::CustomResource",
        "properties": {"ServiceToken": {"type": "string"}, "PhysicalResourceId": {"type": "string"}},
        "required": ["ServiceToken"],
        "primaryIdentifier": ["/properties/PhysicalResourceId"],
        "readOnlyProperties": ["/properties/PhysicalResourceId"],
    }

    def create(self, request: ResourceRequest[dict]) -> ProgressEvent[dict]:
        return self._call("Create", request, dict(request.desired_state), None, None)

    def update(self, request: ResourceRequest[dict]) -> ProgressEvent[dict]:
        previous = request.previous_state or {}
        old_props = previous.get(PROPS_KEY) or _user_props(previous)
        return self._call("Update", request, _user_props(request.desired_state), old_props,
                          previous.get("PhysicalResourceId"))

    def delete(self, request: ResourceRequest[dict]) -> ProgressEvent[dict]:
        state = request.desired_state or request.previous_state or {}
        props = state.get(PROPS_KEY) or _user_props(state)
        event = self._call("Delete", request, props, None, state.get("PhysicalResourceId"))
        if event.status == OperationStatus.SUCCESS:
            return ProgressEvent(OperationStatus.SUCCESS, resource_model={})
        return event

    def read(self, request: ResourceRequest[dict]) -> ProgressEvent[dict]:
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------------
    def _call(self, request_type: str, request: ResourceRequest[dict], props: dict, old_props: dict | None,
              physical_id: str | None) -> ProgressEvent[dict]:
        props = _user_props(props)
        token = props.get("ServiceToken")
        if not token or ":lambda:" not in token:
            return _failed(f"custom resource {request.logical_resource_id}: ServiceToken {token!r} is not a Lambda "
                           f"function ARN (SNS-backed custom resources are not supported by this provider)")
        _add_route()
        response_token = uuid.uuid4().hex
        request_id = str(uuid.uuid4())
        event = {
            "RequestType": request_type,
            "ServiceToken": token,
            "ResponseURL": f"http://127.0.0.1:{config.GATEWAY_LISTEN[0].port}{RESPONSE_PATH}/{response_token}",
            "StackId": request.stack_id,
            "RequestId": request_id,
            "LogicalResourceId": request.logical_resource_id,
            "ResourceType": request.resource_type,
            "ResourceProperties": props,
        }
        if old_props is not None:
            event["OldResourceProperties"] = _user_props(old_props)
        if physical_id:
            event["PhysicalResourceId"] = physical_id

        lam = request.aws_client_factory.lambda_
        try:
            timeout = float(lam.get_function_configuration(FunctionName=token).get("Timeout") or 3)
        except Exception as e:  # noqa: BLE001 - the function does not exist (any more)
            if request_type == "Delete":
                LOG.warning("custom resource %s: function %s is gone (%s); deleted without it",
                            request.logical_resource_id, token, e)
                return ProgressEvent(OperationStatus.SUCCESS, resource_model={})
            return _failed(f"custom resource {request.logical_resource_id}: cannot reach {token}: {e}")

        done, outcome = threading.Event(), {}

        def invoke() -> None:
            try:
                resp = lam.invoke(FunctionName=token, Payload=json.dumps(event).encode())
                outcome["error"] = resp.get("FunctionError")
                outcome["payload"] = resp["Payload"].read().decode("utf-8", "replace")
            except Exception as e:  # noqa: BLE001
                outcome["error"], outcome["payload"] = "InvokeError", str(e)
            finally:
                done.set()

        threading.Thread(target=invoke, name=f"cfn-custom-{request.logical_resource_id}", daemon=True).start()
        response = _wait_response(response_token, timeout + WAIT_SLACK_SECONDS, done)
        if response is None:
            why = (f"the function failed ({outcome.get('error')}): {outcome.get('payload', '')[:1000]}"
                   if outcome.get("error") else "the function returned without sending a response")
            if not done.is_set():
                why = f"no response within {timeout + WAIT_SLACK_SECONDS:.0f} s"
            return _failed(f"custom resource {request.logical_resource_id} ({request_type}): {why}")
        if response.get("Status") != "SUCCESS":
            return _failed(f"Received response status [{response.get('Status')}] from custom resource. "
                           f"Message returned: {response.get('Reason') or 'no reason'}")
        data = response.get("Data") or {}
        model = {**props, **{k: v for k, v in data.items() if isinstance(k, str)}, PROPS_KEY: props,
                 "PhysicalResourceId": response.get("PhysicalResourceId") or physical_id or request_id}
        return ProgressEvent(OperationStatus.SUCCESS, resource_model=model)


def _user_props(state: dict | None) -> dict:
    state = dict(state or {})
    if isinstance(state.get(PROPS_KEY), dict):
        return dict(state[PROPS_KEY])
    state.pop("PhysicalResourceId", None)
    return state


def _failed(message: str) -> ProgressEvent[dict]:
    LOG.warning(message)
    return ProgressEvent(OperationStatus.FAILED, resource_model={}, message=message)


class CustomResourceProviderPlugin(CloudFormationResourceProviderPlugin):
    name = "AWS::CloudFormation::CustomResource"

    def __init__(self):
        self.factory = None

    def load(self):
        self.factory = CustomResourceProvider


SCHEMA_PATH = Path(__file__)  # (kept for symmetry with LocalStack's generated providers)
