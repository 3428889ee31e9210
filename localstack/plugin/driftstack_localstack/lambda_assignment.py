"""Bounded Lambda environment starts for the host runner: no spawn storm under a burst.

LocalStack's AssignmentService gives each invocation that finds no idle execution environment a
*new* environment and makes it wait for that start, even if another environment frees up a few ms
later (up to 16 starts at once). On AWS that is fine: cold starts run on their own hardware. With
our host runner every start is a Python process importing numpy/onnxruntime and loading the model
(~1.5 s of CPU) on the same 2 cores as LocalStack and the warm environments. Measured with the load
test at 15 req/s offered (10 req/s sustained fine at ~35 ms): ~50 runtime processes started, starts
took > 20 s (LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT), 103 environments timed out during startup, the
clients saw 30 s read timeouts, and the system kept collapsing minutes after the load was lowered.

Here, with ``LAMBDA_RUNTIME_EXECUTOR=driftstack-host``: at most ``DRIFTSTACK_LAMBDA_STARTS`` (default:
the CPU count) on-demand environments start at a time; an invocation waiting for a start slot takes
any environment that becomes idle meanwhile. Concurrency still grows with demand (one start per free
slot), just never faster than the host can start processes. Provisioned concurrency is unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading

LOG = logging.getLogger(__name__)

_FREED = threading.Condition()   # notified when an environment is released or a start finishes


def start_slots() -> int:
    return max(1, int(os.environ.get("DRIFTSTACK_LAMBDA_STARTS") or os.cpu_count() or 1))


def install() -> None:
    from localstack.services.lambda_.invocation.assignment import AssignmentService
    from localstack.services.lambda_.invocation.execution_environment import (
        ExecutionEnvironment,
        InvalidStatusException,
    )
    from localstack.services.lambda_.invocation.lambda_models import InitializationType
    from localstack.utils.patch import patch

    slots = threading.BoundedSemaphore(start_slots())

    def reserve_idle(service, version_manager_id):
        for env in list(service.environments[version_manager_id].values()):
            if env.initialization_type == InitializationType.on_demand:
                try:
                    env.reserve()
                    return env
                except InvalidStatusException:
                    pass
        return None

    def acquire(service, version_manager_id, function_version):
        while True:
            if env := reserve_idle(service, version_manager_id):
                return env
            if slots.acquire(blocking=False):
                try:
                    if env := reserve_idle(service, version_manager_id):  # freed while we queued
                        return env
                    env = service.start_environment(version_manager_id, function_version)
                finally:
                    slots.release()
                    with _FREED:
                        _FREED.notify_all()
                service.environments[version_manager_id][env.id] = env
                env.reserve()
                return env
            with _FREED:
                _FREED.wait(0.05)  # the timeout covers a release between our check and this wait

    @patch(ExecutionEnvironment.release)
    def release(fn, self):
        fn(self)
        with _FREED:
            _FREED.notify_all()

    @patch(AssignmentService.get_environment)
    @contextlib.contextmanager
    def get_environment(fn, self, version_manager_id, function_version, provisioning_type):
        if provisioning_type != InitializationType.on_demand:
            with fn(self, version_manager_id, function_version, provisioning_type) as env:
                yield env
            return
        env = acquire(self, version_manager_id, function_version)
        # From here on as LocalStack's own get_environment does.
        try:
            yield env
            env.release()
        except InvalidStatusException as invalid_e:
            LOG.error("InvalidStatusException: %s", invalid_e)
        except Exception as e:
            LOG.error("Failed invocation <%s>: %s", type(e), e)
            self.stop_environment(env)
            raise e
