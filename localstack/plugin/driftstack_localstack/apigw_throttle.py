"""API Gateway (REST) request throttling for LocalStack: usage plans and stage method settings -> 429.

Why this exists: on AWS, API Gateway itself rejects requests beyond the configured limits with
``429 {"message": "Too Many Requests"}`` before they reach the integration — per API key from the
usage plan's ``throttle`` (and the plan's per-method ``apiStages[].throttle``), and per method from the
stage's ``methodSettings`` (``*/*`` or ``<path>/<METHOD>``: ``throttlingRateLimit``/``throttlingBurstLimit``).
localstack-core 2026.3 (community) validates API keys against usage plans but does not throttle at
all (``handlers/api_key_validation.py``: "TODO We currently do not support rate limiting"), and its
CloudFormation ``AWS::ApiGateway::Stage`` provider ignores ``MethodSettings``. So locally an
overloaded API queued everything until the integration failed, while on AWS clients would get 429s.

What we add (applied at LocalStack start, see ``patches.py``):
- after ``ApiKeyValidationHandler`` (same place in the chain as on AWS: after the key is known, before
  the integration), a token bucket per limit: capacity = burst limit, refilled at rate limit tokens/s,
  one token per request; an empty bucket raises the gateway's own ``ThrottledError`` (429, gateway
  response type THROTTLED, so custom gateway responses apply). Buckets: one per (stage, method
  setting) shared by all callers, one per (usage plan, API key) and one per (usage plan, API key,
  method) when the plan sets per-method limits. A limit that is absent or negative means unlimited.
- the Stage provider applies ``MethodSettings`` (create and update) with ``UpdateStage``, as
  CloudFormation does on AWS, so CDK's ``deploy_options`` throttling reaches the stage.
Not modelled: the account-level limit (10,000 rps / 5,000 burst on AWS) and usage-plan quotas.
"""

from __future__ import annotations

import logging
import threading
import time

LOG = logging.getLogger(__name__)


class TokenBucket:
    """capacity = burst, refill = rate tokens/s; starts full (like AWS, a fresh limit allows a burst)."""

    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate, self.capacity, self.tokens, self.stamp = rate, capacity, capacity, now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Throttler:
    """Thread-safe set of token buckets keyed by who/what is limited. One lock: each take is a few
    float operations, far cheaper than anything else the gateway does for a request."""

    def __init__(self, clock=time.monotonic) -> None:
        self._buckets: dict[tuple, TokenBucket] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def allow(self, limits: list[tuple[tuple, float, float]]) -> bool:
        """limits: (key, rate, burst) each; True if every bucket has a token (each passed one is spent,
        as on AWS where the stage and usage-plan limits are separate checks)."""
        with self._lock:
            now = self._clock()
            for key, rate, burst in limits:
                bucket = self._buckets.get(key)
                if bucket is None or bucket.rate != rate or bucket.capacity != burst:
                    # new limit, or the limit was changed (update_usage_plan / update_stage): start full
                    bucket = self._buckets[key] = TokenBucket(rate, burst, now)
                if not bucket.take(now):
                    return False
            return True

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()


THROTTLER = Throttler()


def _limit(rate, burst) -> tuple[float, float] | None:
    """(rate, burst) or None when unlimited (missing or negative, as AWS treats -1)."""
    if rate is None or burst is None:
        return None
    rate, burst = float(rate), float(burst)
    if rate < 0 or burst < 0:
        return None
    return rate, burst


def _method_keys(context) -> tuple[str, str]:
    """('v1/predict', 'POST') for the matched resource and method."""
    path = (context.resource or {}).get("path", "/").lstrip("/")
    method = (context.resource_method or {}).get("httpMethod") or context.invocation_request["http_method"]
    return path, method


def _normal_setting_key(key: str) -> str:
    # UpdateStage paths escape '/' in the resource path as '~1' ('/~1v1~1predict/POST/...').
    return key.replace("~1", "/").lstrip("/")


def stage_limit(context) -> tuple[tuple, float, float] | None:
    """The stage's method throttling for this method: '<path>/<METHOD>' overrides '*/*'."""
    settings = (context.stage_configuration or {}).get("methodSettings") or {}
    if not settings:
        return None
    path, method = _method_keys(context)
    by_key = {_normal_setting_key(k): (k, v) for k, v in settings.items()}
    for wanted in (f"{path}/{method}", "*/*"):
        if wanted in by_key:
            key, s = by_key[wanted]
            lim = _limit(s.get("throttlingRateLimit"), s.get("throttlingBurstLimit"))
            if lim is None:
                return None
            return ("stage", context.account_id, context.region, context.api_id, context.stage, key), *lim
    return None


def usage_plan_limits(context, api_key_id: str) -> list[tuple[tuple, float, float]]:
    """Limits of every usage plan that binds this key to this API stage."""
    from localstack.services.apigateway.next_gen.execute_api.moto_helpers import (
        get_usage_plan_keys,
        get_usage_plans,
    )

    account, region = context.account_id, context.region
    path, method = _method_keys(context)
    limits = []
    for plan in get_usage_plans(account_id=account, region_name=region):
        stages = [s for s in plan.get("apiStages") or []
                  if s.get("apiId") == context.api_id and s.get("stage") == context.stage]
        if not stages:
            continue
        keys = get_usage_plan_keys(usage_plan_id=plan["id"], account_id=account, region_name=region)
        if not any(k["id"] == api_key_id for k in keys):
            continue
        throttle = plan.get("throttle") or {}
        lim = _limit(throttle.get("rateLimit"), throttle.get("burstLimit"))
        if lim:
            limits.append((("plan", account, region, plan["id"], api_key_id), *lim))
        for stage in stages:  # per-method limits inside the plan: {"/v1/predict/POST": {...}}
            for mkey, mthrottle in (stage.get("throttle") or {}).items():
                if _normal_setting_key(mkey) in (f"{path}/{method}", "*/*"):
                    lim = _limit(mthrottle.get("rateLimit"), mthrottle.get("burstLimit"))
                    if lim:
                        limits.append((("plan-method", account, region, plan["id"], api_key_id, mkey), *lim))
    return limits


def enforce(context) -> None:
    """Raise the gateway's ThrottledError (429) when a stage or usage-plan bucket is empty."""
    from localstack.services.apigateway.next_gen.execute_api.gateway_response import ThrottledError

    limits = []
    if lim := stage_limit(context):
        limits.append(lim)
    identity = (context.context_variables or {}).get("identity") or {}
    if (context.resource_method or {}).get("apiKeyRequired") and (key_id := identity.get("apiKeyId")):
        limits += usage_plan_limits(context, key_id)
    if limits and not THROTTLER.allow(limits):
        LOG.debug("Throttled %s %s/%s", context.api_id, context.stage, _method_keys(context))
        raise ThrottledError("Too Many Requests")


def _stage_method_settings_ops(model: dict) -> list[dict]:
    """CloudFormation MethodSettings -> UpdateStage patch operations (throttling, metrics, logging)."""
    fields = {"ThrottlingRateLimit": "throttling/rateLimit", "ThrottlingBurstLimit": "throttling/burstLimit",
              "MetricsEnabled": "metrics/enabled", "LoggingLevel": "logging/loglevel",
              "DataTraceEnabled": "logging/dataTrace"}
    ops = []
    for setting in model.get("MethodSettings") or []:
        resource = setting.get("ResourcePath", "/*")
        resource = "*" if resource == "/*" else resource.replace("/", "~1")
        method = setting.get("HttpMethod", "*")
        for field, path in fields.items():
            if setting.get(field) is not None:
                value = setting[field]
                value = str(value).lower() if isinstance(value, bool) else str(value)
                ops.append({"op": "replace", "path": f"/{resource}/{method}/{path}", "value": value})
    return ops


def install() -> None:
    from localstack.services.apigateway.next_gen.execute_api.handlers.api_key_validation import (
        ApiKeyValidationHandler,
    )
    from localstack.services.apigateway.resource_providers.aws_apigateway_stage import (
        ApiGatewayStageProvider,
    )
    from localstack.services.cloudformation.resource_provider import OperationStatus, ProgressEvent
    from localstack.utils.patch import patch

    @patch(ApiKeyValidationHandler.__call__)
    def validate_then_throttle(fn, self, chain, context, response):
        fn(self, chain, context, response)
        enforce(context)

    @patch(ApiGatewayStageProvider.create)
    def create_with_method_settings(fn, self, request):
        event = fn(self, request)
        ops = _stage_method_settings_ops(request.desired_state)
        if ops and event.status == OperationStatus.SUCCESS:
            request.aws_client_factory.apigateway.update_stage(
                restApiId=request.desired_state["RestApiId"], stageName=event.resource_model["StageName"],
                patchOperations=ops)
        return event

    @patch(ApiGatewayStageProvider.update)
    def update_method_settings(fn, self, request):
        """Only MethodSettings changes (e.g. a new throttling limit) are supported, as before otherwise."""
        before = {k: v for k, v in (request.previous_state or {}).items() if k != "MethodSettings"}
        after = {k: v for k, v in request.desired_state.items() if k != "MethodSettings"}
        if before != after:
            return fn(self, request)
        ops = _stage_method_settings_ops(request.desired_state)
        if ops:
            request.aws_client_factory.apigateway.update_stage(
                restApiId=request.desired_state["RestApiId"], stageName=request.previous_state["StageName"],
                patchOperations=ops)
        return ProgressEvent(status=OperationStatus.SUCCESS,
                             resource_model={**request.previous_state, **request.desired_state},
                             custom_context=request.custom_context)
