"""DynamoDB requests applied one at a time, as DynamoDB applies writes to an item: atomically.

moto answers requests from many threads without a lock, so a conditional write is check-then-act:
two ``PutItem``s with the same ``ConditionExpression`` can both see the old item and both succeed
(seen in CI: two winners of one promotion round). Our LocalStack DynamoDB is moto, so without this
two racing promotions could both "win" there. One lock around each request restores the guarantee
the registry relies on; moto's operations take microseconds, so the lock costs nothing we measure.
"""

from __future__ import annotations

import functools
import threading

_LOCK = threading.RLock()


def install() -> None:
    """Serialize moto's DynamoDB request handling (idempotent)."""
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.call_action, "_driftstack_atomic", False):
        return
    unlocked = DynamoHandler.call_action

    @functools.wraps(unlocked)
    def call_action(self):
        with _LOCK:
            return unlocked(self)

    call_action._driftstack_atomic = True
    DynamoHandler.call_action = call_action
