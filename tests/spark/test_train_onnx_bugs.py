"""Regression tests for the two silent onnxmltools bugs (DESIGN §2). Each test also runs the
stock converter to prove the bug is still there — if onnxmltools ever fixes it, these tell us."""

import numpy as np
import onnx
import pytest

from driftstack.contract import features as F
from spark_jobs import verify
from spark_jobs.onnx_export import export_onnx, read_gbt_nodes
from spark_jobs.pipeline import GBTParams, build_pipeline

pytestmark = pytest.mark.spark


def _frame(n=3000, seed=0):
    """Feature rows where the fare depends on one-hot columns in both directions: Manhattan
    pickups are cheaper (Spark puts category 1.0 on the left -> the bug-2 case) and JFK rate
    code 2 is dearer (category 0.0 left -> the case the stock reader gets right)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols = {}
    for f in F.NUMERIC_FEATURES:
        v = rng.uniform(f.low, min(f.high, 30), n)
        cols[f.name] = (np.round(v) if f.integer else v).astype(np.float32).astype(np.float64)
    for f in F.CATEGORICAL_FEATURES:
        cols[f.name] = np.array([F.category_token(c) for c in rng.choice(f.categories, n)], dtype=object)
    fare = 5 + 2.0 * cols["trip_distance"] + np.where(cols["pickup_borough"] == "Manhattan", -15.0, 15.0) \
        + np.where(cols["RatecodeID"] == "2", 40.0, 0.0) + rng.normal(0, 1, n)
    cols[F.TARGET.name] = np.clip(fare, 2.5, 200)
    return pd.DataFrame(cols)


@pytest.fixture(scope="module")
def fitted(spark):
    pdf = _frame()
    df = spark.createDataFrame(pdf)
    model = build_pipeline(GBTParams(max_iter=6, max_depth=3, subsampling_rate=1.0)).fit(df)
    spark_pred = model.transform(df).select("prediction").toPandas()["prediction"].to_numpy()
    return model, pdf, spark_pred


def _onnx_predict(model_proto, pdf):
    sess = verify.session(model_proto.SerializeToString())
    return sess.run(None, verify.onnx_feed({c: pdf[c].to_numpy() for c in F.FEATURE_NAMES}))[0]


def test_model_really_splits_on_one_hot_columns_with_left_category_one(spark, fitted):
    model = fitted[0]
    nodes = read_gbt_nodes(spark, model.stages[-1])
    cat = [s for s in nodes["split"] if s["numCategories"] == 2]
    assert any(list(s["leftCategoriesOrThreshold"]) == [1.0] for s in cat), "bug-2 case not exercised"
    assert any(list(s["leftCategoriesOrThreshold"]) == [0.0] for s in cat)


def test_stock_converter_is_still_wrong(spark, fitted):
    model, pdf, spark_pred = fitted
    out = _onnx_predict(export_onnx(model, spark, fixed=False), pdf)
    # bug 1: the regressor went through the classifier converter -> an argmax label
    assert out.dtype == np.int64 and set(np.unique(out)) <= {0, 1}
    assert np.abs(out.ravel() - spark_pred).max() > 10


def test_bug_1_fix_alone_still_routes_one_hot_splits_wrongly(spark, fitted):
    model, pdf, spark_pred = fitted
    out = _onnx_predict(export_onnx(model, spark, fix_categorical_splits=False), pdf).ravel()
    assert out.dtype == np.float32
    assert np.abs(out - spark_pred).max() > 5  # bug 2: "x <= 1.0" sends every row left


def test_fixed_export_matches_spark(spark, fitted):
    model, pdf, spark_pred = fitted
    proto = export_onnx(model, spark)
    out = _onnx_predict(proto, pdf).ravel()
    assert np.unique(out).size > 20  # continuous, not 0/1
    assert np.abs(out - spark_pred).max() <= 1e-4
    onnx.checker.check_model(proto, full_check=True)
    assert all(n.domain in ("", "ai.onnx.ml") for n in proto.graph.node)
    elem = onnx.TensorProto
    inputs = {i.name: i.type.tensor_type.elem_type for i in proto.graph.input}
    assert list(inputs) == list(F.FEATURE_NAMES)
    for f in F.FEATURES:
        assert inputs[f.name] == (elem.FLOAT if f.kind == "numeric" else elem.STRING)
    assert [(o.name, o.type.tensor_type.elem_type) for o in proto.graph.output] == [("prediction", elem.FLOAT)]


def test_parity_gate_raises_on_the_stock_converter(spark, fitted):
    model, pdf, spark_pred = fitted
    sess = verify.session(export_onnx(model, spark, fix_categorical_splits=False).SerializeToString())
    with pytest.raises(verify.ParityError, match="parity gate failed"):
        verify.parity(sess, {c: pdf[c].to_numpy() for c in F.FEATURE_NAMES}, spark_pred)
