"""Function environments: the names come from driftstack.contract.names (the runtime's settings
models, driftstack.settings, read the same names), thresholds from the domain dataclasses' fields."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from driftstack.contract import names as N


def thresholds_env(ctx: Callable[[str], Any], domain: type, env_prefix: str, *, skip: Iterable[str] = ()) -> dict:
    """``-c drift_psi_threshold=0.3`` -> ``DRIFT_PSI_THRESHOLD=0.3``, for every field of the domain
    dataclass (``DriftConfig``, ``Criteria``, ``CanaryCriteria``) given in the context; unset ones
    keep the dataclass default at run time."""
    context_prefix = env_prefix.lower()
    out = {}
    for f in dataclasses.fields(domain):
        value = ctx(context_prefix + f.name)
        if f.name not in skip and value is not None:
            out[env_prefix + f.name.upper()] = str(value)
    return out


def powertools_env(service: str, *, metrics: bool = True) -> dict:
    """Powertools' own variables: service name, metrics namespace (functions that emit metrics), log level."""
    env = {N.POWERTOOLS_SERVICE_NAME: service, N.POWERTOOLS_LOG_LEVEL: N.LOG_LEVEL}
    if metrics:
        env[N.POWERTOOLS_METRICS_NAMESPACE] = N.NAMESPACE
    return env
