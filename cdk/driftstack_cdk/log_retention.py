"""Log retention on every Lambda function of a scope, as a CDK Aspect.

``apply(scope, days)`` (called from stack.py with the ``log_retention_days`` context, default 30)
visits the construct tree at synth and gives each ``lambda_.Function`` CDK's ``LogRetention``
construct on ``/aws/lambda/<function name>`` - exactly what ``log_retention=`` on the function would
add: a ``Custom::LogRetention`` resource served by CDK's singleton Node.js provider (which creates the
log group if needed and sets its retention). A function that already has one (``log_retention=``
passed explicitly) keeps it. The provider's accepted cdk-nag findings are acknowledged in nag.py.
"""

from __future__ import annotations

import jsii
from aws_cdk import IAspect
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import IConstruct

DEFAULT_DAYS = 30
CHILD_ID = "LogRetention"  # the id CDK's own lambda_.Function(log_retention=...) uses

# CloudWatch Logs accepts only these retention periods (logs.RetentionDays, by number of days).
RETENTION_DAYS = {
    1: logs.RetentionDays.ONE_DAY, 3: logs.RetentionDays.THREE_DAYS, 5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK, 14: logs.RetentionDays.TWO_WEEKS, 30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS, 90: logs.RetentionDays.THREE_MONTHS, 120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS, 180: logs.RetentionDays.SIX_MONTHS, 365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS, 545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS, 1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS, 2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS, 2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS, 3653: logs.RetentionDays.TEN_YEARS,
}


def retention(days: int | str) -> logs.RetentionDays:
    """The RetentionDays for ``days`` (an int, or a context string); other values are refused clearly."""
    try:
        return RETENTION_DAYS[int(days)]
    except (KeyError, ValueError):
        raise ValueError(f"log_retention_days={days!r}: CloudWatch Logs accepts only "
                         f"{sorted(RETENTION_DAYS)}") from None


@jsii.implements(IAspect)
class LogRetentionAspect:
    """Adds CDK's LogRetention (``days``) to every Lambda function it visits."""

    def __init__(self, days: int | str = DEFAULT_DAYS) -> None:
        self.retention = retention(days)

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, lambda_.Function) or node.node.try_find_child(CHILD_ID) is not None:
            return
        logs.LogRetention(node, CHILD_ID, log_group_name=f"/aws/lambda/{node.function_name}",
                          retention=self.retention)


def apply(scope: IConstruct, days: int | str | None = None) -> LogRetentionAspect:
    """Register the aspect on ``scope`` (``days`` defaults to the ``log_retention_days`` context, then 30)."""
    from aws_cdk import Aspects

    if days is None:
        days = scope.node.try_get_context("log_retention_days") or DEFAULT_DAYS
    aspect = LogRetentionAspect(days)
    Aspects.of(scope).add(aspect)
    return aspect


__all__ = ["apply", "LogRetentionAspect", "retention", "DEFAULT_DAYS", "RETENTION_DAYS"]
