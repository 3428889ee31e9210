"""A small ONNX model with the exported pipeline's exact input signature, built without Spark.

For unit/integration tests, benchmarks and demos that must not wait for a Spark training run:
fare = base + per_mile * trip_distance + per_minute * trip_duration_minutes + a learned-looking
offset per category (ai.onnx.ml LabelEncoder), one ``[n,1]`` input per feature named as the
feature, float for numerics and string tokens for categoricals, float ``prediction`` output.

Needs the ``onnx`` package (dev/spark extras), so it is never imported by a Lambda.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from driftstack.contract import features as fc
from driftstack.adapters.registry import METADATA_FILE, MODEL_FILE, artifact_prefix, read_pointer, write_pointer


def build_toy_model(base: float = 3.0, per_mile: float = 2.5, per_minute: float = 0.5,
                    bump: float = 0.0, slow_layers: int = 0, nan_above_distance: float | None = None) -> bytes:
    """Serialized ONNX model; change any coefficient to get a different artifact (new sha256).

    Faulty variants for rollout tests (same predictions otherwise): ``slow_layers`` adds that many
    256x256 MatMul+Tanh layers whose result is multiplied by 0 (a slower model); ``nan_above_distance``
    makes the prediction NaN for trips longer than that (a model that fails on part of the traffic
    yet passes the loader's smoke test)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    inputs, nodes, inits, terms = [], [], [], []
    weights = {n: 0.0 for n in fc.NUMERIC_NAMES}
    weights.update(trip_distance=per_mile, trip_duration_minutes=per_minute, is_rush_hour=1.0)
    for name in fc.NUMERIC_NAMES:
        inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, 1]))
    nodes.append(helper.make_node("Concat", list(fc.NUMERIC_NAMES), ["numerics"], axis=1))
    w = np.array([[weights[n]] for n in fc.NUMERIC_NAMES], dtype=np.float32)
    inits.append(numpy_helper.from_array(w, "w"))
    nodes.append(helper.make_node("MatMul", ["numerics", "w"], ["linear"]))
    terms.append("linear")
    for k, feat in enumerate(fc.CATEGORICAL_FEATURES):
        inputs.append(helper.make_tensor_value_info(feat.name, TensorProto.STRING, [None, 1]))
        tokens = [fc.category_token(c) for c in feat.categories]
        values = [float((i * 7 + k * 3) % 5) + (bump if i == 1 else 0.0) for i in range(len(tokens))]
        nodes.append(helper.make_node("LabelEncoder", [feat.name], [f"{feat.name}_offset"],
                                      domain="ai.onnx.ml", keys_strings=tokens, values_floats=values,
                                      default_float=0.0))
        terms.append(f"{feat.name}_offset")
    if slow_layers:
        rng = np.random.default_rng(0)
        inits.append(numpy_helper.from_array(rng.normal(0, 0.1, (len(fc.NUMERIC_NAMES), 256)).astype(np.float32), "slow_in"))
        nodes.append(helper.make_node("MatMul", ["numerics", "slow_in"], ["slow_0"]))
        for i in range(slow_layers):
            inits.append(numpy_helper.from_array(rng.normal(0, 0.06, (256, 256)).astype(np.float32), f"slow_w{i}"))
            nodes.append(helper.make_node("MatMul", [f"slow_{i}", f"slow_w{i}"], [f"slow_m{i}"]))
            nodes.append(helper.make_node("Tanh", [f"slow_m{i}"], [f"slow_{i + 1}"]))
        inits.append(numpy_helper.from_array(np.zeros((256, 1), dtype=np.float32), "slow_out"))
        nodes.append(helper.make_node("MatMul", [f"slow_{slow_layers}", "slow_out"], ["slow_term"]))
        terms.append("slow_term")
    if nan_above_distance is not None:
        inits.append(numpy_helper.from_array(np.array([[nan_above_distance]], dtype=np.float32), "nan_limit"))
        inits.append(numpy_helper.from_array(np.array([[0.0]], dtype=np.float32), "zero"))
        nodes.append(helper.make_node("Sub", ["nan_limit", "trip_distance"], ["nan_room"]))
        nodes.append(helper.make_node("Sqrt", ["nan_room"], ["nan_root"]))  # NaN when distance > limit
        nodes.append(helper.make_node("Mul", ["nan_root", "zero"], ["nan_term"]))
        terms.append("nan_term")
    inits.append(numpy_helper.from_array(np.array([[base]], dtype=np.float32), "base"))
    nodes.append(helper.make_node("Sum", terms + ["base"], ["prediction"]))
    graph = helper.make_graph(nodes, "toy_fare", inputs,
                              [helper.make_tensor_value_info("prediction", TensorProto.FLOAT, [None, 1])],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("ai.onnx.ml", 3)],
                              producer_name="driftstack-toy")
    model.ir_version = 9
    return model.SerializeToString()


def publish(s3, table, bucket: str, model_bytes: bytes, *, model_name: str = "taxi-fare",
            version: str | None = None, metadata: dict[str, Any] | None = None,
            sha256: str | None = None, promote: bool = True) -> dict[str, Any]:
    """Upload model.onnx + metadata.json under the content-addressed prefix and (optionally) point
    the champion at it with a conditional write.  ``sha256`` overrides the pointer's digest (to
    publish a deliberately corrupt artifact in failure tests)."""
    digest = hashlib.sha256(model_bytes).hexdigest()
    prefix = artifact_prefix(model_name, digest)
    version = version or f"toy-{digest[:8]}"
    meta = {"model_name": model_name, "version": version, "sha256": digest,
            "contract_hash": fc.contract_hash(), "metrics": {}, "trained_at": time.time(),
            "producer": "driftstack.tools.toy_model", **(metadata or {})}
    s3.put_object(Bucket=bucket, Key=prefix + MODEL_FILE, Body=model_bytes)
    s3.put_object(Bucket=bucket, Key=prefix + METADATA_FILE, Body=json.dumps(meta).encode())
    if promote:
        current = read_pointer(table)
        write_pointer(table, model_name=model_name, version=version, bucket=bucket, prefix=prefix,
                      sha256=sha256 or digest, expected_version=current.version if current else None)
    return {"version": version, "sha256": digest, "prefix": prefix}
