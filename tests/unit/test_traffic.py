"""Traffic generation yields valid API bodies; the sender is bounded, ordered and rate-limited."""

import time

from driftstack.contract import api
from driftstack.tools.traffic import make_trips, send


def test_trips_are_valid_requests_and_drift_moves_distance():
    normal = make_trips(2000, seed=3)
    drifted = make_trips(2000, drift="covariate", seed=3)
    assert len(normal.features) == len(normal.fares) == 2000
    for body in normal.features[:200] + drifted.features[:200]:
        api.TripFeatures.model_validate(body)  # strict: ints stay ints, categories are contract values
    mean = lambda t: sum(f["trip_distance"] for f in t.features) / len(t.features)  # noqa: E731
    assert mean(drifted) > 1.2 * mean(normal)


def test_send_keeps_order_counts_statuses_and_respects_rate():
    bodies = [{"i": i} for i in range(20)]
    post = lambda b: (200 if b["i"] % 5 else 422, {"request_id": f"r{b['i']}"})  # noqa: E731
    t0 = time.monotonic()
    result = send(post, bodies, rate=100.0, concurrency=4)
    elapsed = time.monotonic() - t0
    assert result.sent == 20
    assert result.statuses == {200: 16, 422: 4}
    assert result.errors == 4
    assert [r[1]["request_id"] for r in result.responses] == [f"r{i}" for i in range(20)]
    assert elapsed >= 19 / 100.0 * 0.9  # 20 requests at 100/s cannot finish faster than ~0.19 s
