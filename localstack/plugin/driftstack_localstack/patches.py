"""Small fixes to LocalStack behaviour our system relies on, applied when LocalStack starts.

EventBridge: in localstack-core 2026.3 `DisableRule`/`EnableRule` only flip the rule's state field;
the scheduler job created for a `rate(...)`/`cron(...)` rule keeps its original enabled flag, so a
disabled schedule keeps firing (on AWS it stops). We sync the job's flag with the rule's state.

API Gateway: usage-plan and stage method throttling (429), see apigw_throttle.py.
DRIFTSTACK_APIGW_THROTTLE=0 leaves it out (to see LocalStack's own behaviour).

Lambda (host runner only): at most a few environments start at once, see lambda_assignment.py.

CloudWatch Logs: embedded-metric-format lines become CloudWatch metrics, so alarms on our own
metrics fire (emf_metrics.py). DRIFTSTACK_EMF_METRICS=0 leaves it out.
"""

import os

from localstack.runtime import hooks


def _set_schedule_job(provider, context, name, event_bus_name, enabled: bool) -> None:
    from localstack.services.events.scheduler import JobScheduler
    from localstack.services.events.utils import extract_event_bus_name

    store = provider.get_store(context.region, context.account_id)
    bus = provider.get_event_bus(extract_event_bus_name(event_bus_name), store)
    rule = provider.get_rule(name, bus)
    service = provider._rule_services_store.get(rule.arn)
    job_id = getattr(service, "job_id", None)
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
