"""Waiting for an eventually-true condition (a deployment serving a version, a schedule firing).

One home for the poll loop the demo, the CLI and the end-to-end tests all need.
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(fn: Callable[[], T], timeout: float = 60.0, what: str = "condition", interval: float = 1.0) -> T:
    """Call ``fn`` every ``interval`` seconds until it returns something truthy; return that.

    Raises TimeoutError naming ``what`` and the last value seen, so a failure says what never happened.
    """
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"gave up after {timeout:.0f}s waiting for {what}; last: {last!r}")
