"""Small fixes to LocalStack behaviour our system relies on, applied when LocalStack starts.

EventBridge: in localstack-core 2026.3 `DisableRule`/`EnableRule` only flip the rule's state field;
the scheduler job created for a `rate(...)`/`cron(...)` rule keeps its original enabled flag, so a
disabled schedule keeps firing (on AWS it stops). We sync the job's flag with the rule's state, and
keep one job per rule (LocalStack adds one per PutTargets and cancels none).

API Gateway: usage-plan and stage method throttling (429), see apigw_throttle.py.
DRIFTSTACK_APIGW_THROTTLE=0 leaves it out (to see LocalStack's own behaviour).

Lambda (host runner only): at most a few environments start at once, see lambda_assignment.py.

Lambda: a function whose creation failed (state Failed) can be deleted, updated and recreated (in
localstack-core 2026.3 DeleteFunction and UpdateFunctionCode answer InternalError "Unable to find
version manager for ...:$LATEST": a Failed version has no version manager, and both calls expect one).

CloudFormation: custom resources are backed by their Lambda function (custom_resources.py).

CloudWatch Logs: embedded-metric-format lines become CloudWatch metrics, so alarms on our own
metrics fire (emf_metrics.py). DRIFTSTACK_EMF_METRICS=0 leaves it out.

Internal calls on a request's path (Lambda invoke, log shipping, metrics) skip the loopback HTTP
round trip (in_memory_clients.py). DRIFTSTACK_IN_MEMORY_CLIENTS=0 leaves it out.

CloudWatch: metric datapoints are committed without an fsync each (cloudwatch_metrics_db.py).
DRIFTSTACK_CLOUDWATCH_NO_FSYNC=0 leaves it out.
"""

import importlib
import os

from localstack.runtime import hooks


def _rule_service(provider, context, name, event_bus_name):
    from localstack.services.events.utils import extract_event_bus_name

    store = provider.get_store(context.region, context.account_id)
    try:
        bus = provider.get_event_bus(extract_event_bus_name(event_bus_name), store)
        rule = provider.get_rule(name, bus)
    except Exception:  # noqa: BLE001 - no such bus/rule: the original call answers that
        return None
    return provider._rule_services_store.get(rule.arn)


def _job_id(provider, context, name, event_bus_name):
    return getattr(_rule_service(provider, context, name, event_bus_name), "job_id", None)


def _cancel_job(job_id) -> None:
    from localstack.services.events.scheduler import JobScheduler

    if job_id:
        JobScheduler.instance().cancel_job(job_id)


def _set_schedule_job(provider, context, name, event_bus_name, enabled: bool) -> None:
    from localstack.services.events.scheduler import JobScheduler

    job_id = _job_id(provider, context, name, event_bus_name)
    if job_id:
        job = JobScheduler.instance().get_job(job_id)
        if job is not None:
            job.is_enabled = enabled


@hooks.on_infra_start()
def _sync_schedule_rule_state():
    from localstack.services.events.provider import EventsProvider
    from localstack.utils.patch import patch

    @patch(EventsProvider.disable_rule)
    def disable_rule(fn, self, context, name, event_bus_name=None, **kwargs):
        result = fn(self, context, name, event_bus_name, **kwargs)
        _set_schedule_job(self, context, name, event_bus_name, False)
        return result

    @patch(EventsProvider.enable_rule)
    def enable_rule(fn, self, context, name, event_bus_name=None, **kwargs):
        result = fn(self, context, name, event_bus_name, **kwargs)
        _set_schedule_job(self, context, name, event_bus_name, True)
        return result

    # One scheduler job per rule. LocalStack adds a job on every PutTargets and never cancels one
    # (PutRule on an existing rule, DeleteRule): after a CloudFormation update the rule fired once
    # per job, and DisableRule reached only the newest.
    @patch(EventsProvider.put_targets)
    def put_targets(fn, self, context, rule, targets, event_bus_name=None, **kwargs):
        before = _job_id(self, context, rule, event_bus_name)
        result = fn(self, context, rule, targets, event_bus_name, **kwargs)
        if before != _job_id(self, context, rule, event_bus_name):
            _cancel_job(before)
        return result

    @patch(EventsProvider.put_rule)
    def put_rule(fn, self, context, name, *args, **kwargs):
        bus = kwargs.get("event_bus_name")
        before = _job_id(self, context, name, bus)
        result = fn(self, context, name, *args, **kwargs)
        service = _rule_service(self, context, name, bus)
        if before and service is not None and getattr(service, "job_id", None) is None:
            _cancel_job(before)  # the replaced rule's job; the new rule gets its own (new schedule)
            if service.schedule_cron and service.rule.targets:
                service.create_schedule_job(
                    self._get_scheduled_rule_job_function(context.account_id, context.region, service.rule))
        return result

    @patch(EventsProvider.delete_rule)
    def delete_rule(fn, self, context, name, event_bus_name=None, **kwargs):
        before = _job_id(self, context, name, event_bus_name)
        result = fn(self, context, name, event_bus_name, **kwargs)
        if _rule_service(self, context, name, event_bus_name) is None:
            _cancel_job(before)
        return result


def _install_unless_off(switch: str, module: str) -> None:
    """Install driftstack_localstack.<module> unless the environment variable ``switch`` is 0."""
    if os.environ.get(switch, "1") != "0":
        importlib.import_module(f"driftstack_localstack.{module}").install()


@hooks.on_infra_start()
def _apigw_throttling():
    _install_unless_off("DRIFTSTACK_APIGW_THROTTLE", "apigw_throttle")


@hooks.on_infra_start()
def _emf_metrics():
    _install_unless_off("DRIFTSTACK_EMF_METRICS", "emf_metrics")


@hooks.on_infra_start()
def _in_memory_clients():
    _install_unless_off("DRIFTSTACK_IN_MEMORY_CLIENTS", "in_memory_clients")


@hooks.on_infra_start()
def _cloudwatch_without_fsync():
    _install_unless_off("DRIFTSTACK_CLOUDWATCH_NO_FSYNC", "cloudwatch_metrics_db")


@hooks.on_infra_start()
def _bounded_lambda_starts():
    from localstack import config

    from driftstack_localstack import EXECUTOR_NAME

    if config.LAMBDA_RUNTIME_EXECUTOR == EXECUTOR_NAME:
        from driftstack_localstack import lambda_assignment

        lambda_assignment.install()


@hooks.on_infra_start()
def _failed_lambda_functions():
    """DeleteFunction / UpdateFunctionCode / UpdateFunctionConfiguration on a function in state Failed.

    LocalStack's LambdaService keeps a version manager only for versions that started (running) or
    are starting; a version that failed to start is dropped from both. ``stop_version`` then raises
    ValueError (InternalError to the client) and ``update_version`` refuses ("cannot be updated if an
    old one is not running"). On AWS both work: a Failed function is deleted, or updated into a new
    attempt. Here: stopping a version without a manager stops nothing and still runs the deletion
    hooks; updating a version without a running manager starts it like a new one."""
    from localstack.services.lambda_ import hooks as lambda_hooks
    from localstack.services.lambda_.invocation.lambda_service import LambdaService
    from localstack.utils.patch import patch

    @patch(LambdaService.stop_version)
    def stop_version(fn, self, qualified_arn: str) -> None:
        if qualified_arn in self.lambda_running_versions or qualified_arn in self.lambda_starting_versions:
            return fn(self, qualified_arn)
        event_manager = self.event_managers.pop(qualified_arn, None)
        if event_manager is not None:
            self.task_executor.submit(event_manager.stop)
        lambda_hooks.delete_function_version.run(qualified_arn)

    @patch(LambdaService.update_version)
    def update_version(fn, self, new_version):
        if (new_version.qualified_arn not in self.lambda_running_versions
                and not new_version.config.capacity_provider_config):
            return self.create_function_version(function_version=new_version)
        return fn(self, new_version)


@hooks.on_infra_start()
def _custom_resources():
    """Nothing to patch: the provider is an entry point (custom_resources.py); its response route is
    added on first use. Kept as a hook so the route exists before the first stack deploys."""
    from driftstack_localstack import custom_resources

    custom_resources._add_route()
