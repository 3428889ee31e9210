"""Realistic request traffic for the prediction API: generated trips (normal or drifted) turned into
valid request bodies, and a bounded, rate-limited sender with a progress bar.

Used by `driftstack traffic`, the demo and the end-to-end tests, so all three send the same thing.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from driftstack.contract import features as fc


@dataclass
class Trips:
    """Request-ready feature dicts and the true fares (for /feedback)."""

    features: list[dict[str, Any]]
    fares: list[float]


def make_trips(rows: int, *, month: str = "2023-01", drift: str = "none", seed: int | None = None) -> Trips:
    """``rows`` valid trips of ``month`` (drift: none|covariate|concept|both), as API request bodies."""
    from driftstack.data.generate import feature_records

    records = feature_records(rows, month, seed=seed, drift=drift)
    fares = [rec.pop(fc.TARGET.name) for rec in records]
    return Trips(records, fares)


@dataclass
class TrafficResult:
    sent: int = 0
    statuses: Counter = field(default_factory=Counter)
    responses: list[tuple[int, Any] | None] = field(default_factory=list)  # in the order of the bodies
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def errors(self) -> int:
        return sum(c for s, c in self.statuses.items() if s >= 400)

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        return {"sent": self.sent, "statuses": dict(self.statuses), "errors": self.errors,
                "seconds": round(self.seconds, 2),
                "rate_per_s": round(self.sent / self.seconds, 1) if self.seconds else None,
                "p50_ms": round(float(np.percentile(lat, 50)), 2),
                "p99_ms": round(float(np.percentile(lat, 99)), 2)}


def send(post: Callable[[dict], tuple[int, dict]], bodies: list[dict], *, rate: float | None = None,
         concurrency: int = 4, on_progress: Callable[[int], None] | None = None) -> TrafficResult:
    """POST every body with ``post`` (returns status, json) from ``concurrency`` threads, at most
    ``rate`` requests/s overall (None: as fast as possible). Bounded: exactly len(bodies) requests."""
    result = TrafficResult()
    lock = threading.Lock()
    interval = 1.0 / rate if rate else 0.0
    start = time.monotonic()
    next_slot = [start]

    result.responses = [None] * len(bodies)

    def one(i: int) -> None:
        body = bodies[i]
        if interval:
            with lock:  # token bucket of one: each request takes the next free slot
                slot = next_slot[0]
                next_slot[0] = max(slot, time.monotonic()) + interval
            delay = slot - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        t0 = time.perf_counter()
        status, payload = post(body)
        ms = (time.perf_counter() - t0) * 1000
        with lock:
            result.sent += 1
            result.statuses[status] += 1
            result.latencies_ms.append(ms)
        result.responses[i] = (status, payload)
        if on_progress:
            on_progress(1)

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        list(pool.map(one, range(len(bodies))))
    result.seconds = time.monotonic() - start
    return result
