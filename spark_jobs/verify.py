"""Does the ONNX artifact predict what Spark predicts? The parity gate and the latency figures."""

from __future__ import annotations

import time

import numpy as np

from driftstack.contract import features as F

DEFAULT_TOLERANCE = 1e-3
DEFAULT_PARITY_ROWS = 10_000


class ParityError(RuntimeError):
    """ONNX and Spark disagree by more than the tolerance: the artifact must not be published."""


def onnx_feed(columns, rows: slice | None = None) -> dict[str, np.ndarray]:
    """The ONNX input dict for columns of features: float32 / string tensors of shape [N, 1]."""
    feed = {}
    for f in F.FEATURES:
        v = np.asarray(columns[f.name])
        if rows is not None:
            v = v[rows]
        feed[f.name] = (v.astype(np.float32) if f.kind == "numeric"
                        else np.array([F.category_token(x) for x in v], dtype=object)).reshape(-1, 1)
    return feed


def session(model_bytes: bytes):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # like a Lambda: one vCPU-ish; also keeps latency stable
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


def predict(sess, columns) -> np.ndarray:
    return np.asarray(sess.run(None, onnx_feed(columns))[0], dtype=np.float64).ravel()


def parity(sess, columns, spark_predictions, tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Compare ONNX to Spark on the same rows; raise ParityError above ``tolerance``."""
    spark_pred = np.asarray(spark_predictions, dtype=np.float64)
    onnx_pred = predict(sess, columns)
    diff = np.abs(onnx_pred - spark_pred)
    result = {"rows": int(diff.size), "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
              "tolerance": tolerance, "passed": bool(diff.max() <= tolerance)}
    if not result["passed"]:
        worst = int(diff.argmax())
        raise ParityError(
            f"parity gate failed: ONNX differs from Spark by up to {diff.max():.6g} (> {tolerance}) on "
            f"{int((diff > tolerance).sum())} of {diff.size} rows; worst row {worst}: "
            f"spark={spark_pred[worst]:.6f} onnx={onnx_pred[worst]:.6f}. The artifact was not published.")
    return result


def latency(sess, columns, runs: int = 2000, batch_rows: int = 10_000) -> dict:
    """Single-row onnxruntime latency (p50/p99, ms) and one batch's time, warm session."""
    n = len(np.asarray(columns[F.FEATURE_NAMES[0]]))
    feeds = [onnx_feed(columns, slice(i % n, i % n + 1)) for i in range(min(runs, 200))]
    for f in feeds[:20]:
        sess.run(None, f)
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feeds[i % len(feeds)])
        times[i] = time.perf_counter() - t0
    batch = onnx_feed(columns, slice(0, min(n, batch_rows)))
    t0 = time.perf_counter()
    sess.run(None, batch)
    batch_s = time.perf_counter() - t0
    return {"single_row_p50_ms": float(np.percentile(times, 50) * 1e3),
            "single_row_p99_ms": float(np.percentile(times, 99) * 1e3), "runs": runs,
            "batch_rows": int(min(n, batch_rows)), "batch_ms": batch_s * 1e3}
