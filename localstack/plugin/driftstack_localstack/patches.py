"""Small fixes to LocalStack behaviour our system relies on, applied when LocalStack starts.

EventBridge: in localstack-core 2026.3 `DisableRule`/`EnableRule` only flip the rule's state field;
the scheduler job created for a `rate(...)`/`cron(...)` rule keeps its original enabled flag, so a
disabled schedule keeps firing (on AWS it stops). We sync the job's flag with the rule's state, and
keep one job per rule (LocalStack adds one per PutTargets and cancels none).

API Gateway: usage-plan and stage method throttling (429), see apigw_throttle.py.
DRIFTSTACK_APIGW_THROTTLE=0 leaves it out (to see LocalStack's own behaviour).

Lambda (host runner only): at most a few environments start at once, see lambda_assignment.py.

CloudWatch Logs: embedded-metric-format lines become CloudWatch metrics, so alarms on our own
metrics fire (emf_metrics.py). DRIFTSTACK_EMF_METRICS=0 leaves it out.
"""

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


@hooks.on_infra_start()
def _apigw_throttling():
    if os.environ.get("DRIFTSTACK_APIGW_THROTTLE", "1") != "0":
        from driftstack_localstack import apigw_throttle

        apigw_throttle.install()


@hooks.on_infra_start()
def _emf_metrics():
    if os.environ.get("DRIFTSTACK_EMF_METRICS", "1") != "0":
        from driftstack_localstack import emf_metrics

        emf_metrics.install()


@hooks.on_infra_start()
def _bounded_lambda_starts():
    from localstack import config

    from driftstack_localstack import EXECUTOR_NAME

    if config.LAMBDA_RUNTIME_EXECUTOR == EXECUTOR_NAME:
        from driftstack_localstack import lambda_assignment

        lambda_assignment.install()
