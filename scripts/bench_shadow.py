#!/usr/bin/env python3
"""Shadow/canary overhead (issue 9): the predict handler in-process, no rollout vs shadow vs canary,
measured in the same run, interleaved in blocks (so machine load hits every mode alike).

Same harness as scripts/bench_serving.py part 1 (moto for the cold start, request-log write
excluded); the challenger is a second model of the same kind.  Target: shadow adds <= 50 µs
(about one inference) per single-trip request.  Numbers are printed, never asserted.

    python scripts/bench_shadow.py              # toy ONNX models
    python scripts/bench_shadow.py --spark      # Spark-exported GBT pipelines (fits two, ~1 min)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("bench_serving", ROOT / "scripts" / "bench_serving.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

from driftstack.domain import encoding  # noqa: E402
from driftstack.adapters import rollout as ro  # noqa: E402
from driftstack.tools.toy_model import build_toy_model, publish  # noqa: E402


def best_of(fn, number: int = 5000, repeat: int = 5) -> float:
    for _ in range(200):
        fn()
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", type=int, default=4000, help="samples per mode")
    p.add_argument("--blocks", type=int, default=8, help="interleaved blocks per mode")
    p.add_argument("--spark", action="store_true", help="Spark-exported models instead of the toy ones")
    p.add_argument("--train-rows", type=int, default=20000)
    args = p.parse_args(argv)
    print(f"driftstack shadow benchmark — {time.strftime('%Y-%m-%d %H:%M:%S')} — {os.cpu_count()} CPUs, "
          f"load avg {os.getloadavg()[0]:.2f}")

    from driftstack.tools.traffic import make_trips

    if args.spark:
        _, _, champion = bench.spark_model(args.train_rows)
        _, _, challenger = bench.spark_model(args.train_rows // 2)
        print("  models: two Spark-exported GBT pipelines")
    else:
        champion, challenger = build_toy_model(), build_toy_model(per_mile=2.7, bump=0.5)
        print("  models: toy ONNX models (the exported pipeline's input signature)")
    row = make_trips(1, seed=3).features[0]

    import boto3

    with bench.moto_app(champion) as app:
        s3, models = boto3.client("s3"), boto3.resource("dynamodb").Table("models")
        cand = publish(s3, models, "bench", challenger, version="challenger", promote=False)

        def attach(mode: str, share: float = 0.1):
            active = ro.read(models)
            if active is not None:
                ro.rollback(models, active, reason="bench")
            ro.start(models, mode=mode, share=share, model_name="taxi-fare", version="challenger", bucket="bench",
                     prefix=cand["prefix"], sha256=cand["sha256"])
            app.SERVING.rollout.refresh()
            return app.SERVING.rollout.active

        states = {"off": None, "shadow": attach(ro.SHADOW), "canary 10%": attach(ro.CANARY, 0.1)}
        # Single-trip events; each request gets its own id so canary routing spreads over both arms.
        counter = iter(range(10**9))
        ev, ctx = bench.api_event(json.dumps({"features": row})), bench.Ctx()

        def call():
            ev["headers"] = {**(ev.get("headers") or {}), "X-Request-Id": f"bench-{next(counter):012d}"}
            return app.handler(ev, ctx)

        samples = {k: bench.Samples() for k in states}
        for k in states:
            samples[k].cpu = []
        per_block = max(1, args.n // args.blocks)
        for _ in range(args.blocks):
            for name, active in states.items():
                app.SERVING.rollout._active = active  # bench only: switch the container's view without a refresh
                assert call()["statusCode"] == 200
                s = bench.timed(call, per_block, warmup=50)
                samples[name].extend(s)
                samples[name].cpu.extend(s.cpu)
        app.SERVING.rollout._active = states["shadow"]
        one = app.SERVING.rollout.active.model
        feeds = encoding.encode([row])
        infer = bench.timed(lambda: one.run(feeds), args.n)
        # What shadow adds, part by part, best of 5 repeats (the floor, free of preemption noise).
        champ, shadow = app.SERVING.models.current, states["shadow"]
        parts = {
            "no rollout: model.predict(rows) (encode + run)": lambda: champ.predict([row]),
            "shadow: encode once": lambda: encoding.encode([row]),
            "shadow: champion run + bookkeeping (Serving._route)":
                lambda: app.SERVING._route(shadow, champ, feeds, "bench-000000000001"),
            "shadow: challenger run + log fields (Serving._shadow)": lambda: app.SERVING._shadow(shadow, feeds, 1),
            "rollout.get() (clock check)": app.SERVING.rollout.get,
        }
        floor = {name: best_of(fn) for name, fn in parts.items()}

    us = lambda xs, q: bench.pct(xs, q) * 1e6  # noqa: E731
    cpu = lambda xs: bench.pct(xs.cpu, 50) * 1e6  # noqa: E731
    base50, base_cpu = us(samples["off"], 50), cpu(samples["off"])
    rows = []
    for name, xs in samples.items():
        rows.append([name, f"{us(xs, 50):.0f}", f"{us(xs, 99):.0f}", f"{cpu(xs):.0f}",
                     f"{us(xs, 50) / base50:.2f}x", f"{us(xs, 50) - base50:+.0f}", f"{cpu(xs) - base_cpu:+.0f}"])
    rows.append(["one challenger inference (pre-encoded)", f"{us(infer, 50):.0f}", f"{us(infer, 99):.0f}",
                 f"{cpu(infer):.0f}", "", "", ""])
    bench.table("predict handler, one trip, in-process (µs; request-log write excluded)",
                ["mode", "p50", "p99", "cpu p50", "ratio p50", "added p50", "added cpu p50"], rows)
    shadow_floor = sum(v for k, v in floor.items() if k.startswith("shadow")) + floor["rollout.get() (clock check)"]
    no_floor = floor["no rollout: model.predict(rows) (encode + run)"] + floor["rollout.get() (clock check)"]
    bench.table("the same, part by part (µs, best of 5 x 5000 calls)", ["part", "µs"],
                [[k, f"{v:.1f}"] for k, v in floor.items()]
                + [["=> shadow path minus no-rollout path", f"{shadow_floor - no_floor:+.1f}"]])
    added = us(samples["shadow"], 50) - base50
    print(f"   target: shadow adds <= 50 µs -> handler p50: {'MET' if added <= 50 else 'NOT MET'} ({added:+.0f} µs wall, "
          f"{cpu(samples['shadow']) - base_cpu:+.0f} µs cpu); floor: "
          f"{'MET' if shadow_floor - no_floor <= 50 else 'NOT MET'} ({shadow_floor - no_floor:+.1f} µs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
