"""Spark PipelineModel -> ONNX, with the two silent onnxmltools 1.16 bugs fixed.

Bug 1 (output): onnxmltools registers ``convert_gbt_classifier`` for ``GBTRegressionModel`` too
(operator_converters/gbt_classifier.py: ``register_converter("...GBTRegressionModel",
convert_gbt_classifier)``). After the weighted tree-sum it builds [-sum, sum] and takes the ArgMax,
so the regressor "predicts" 0 or 1 (int64). No error, wrong model.

Bug 2 (routing): Spark's GBT sees the OneHotEncoder outputs as binary *categorical* features and
splits on them with ``leftCategories`` (e.g. [1.0] = "go left when the column is 1"). The tree
reader (tree_ensemble_common.sparkml_tree_dataset_to_sklearn) takes ``leftCategoriesOrThreshold[0]``
as a ``<=`` threshold: a [1.0] split becomes ``x <= 1`` which is always true, so those trees route
every row left. Again no error.

The fix: while converting, swap in our own converter + shape calculator for ``GBTRegressionModel``
(:func:`fixed_converters`, a context manager that restores the registry afterwards). It reads all
trees in ONE save/read of the model (the stock converter saves the model once per tree), turns a
binary categorical split into ``x <= 0.5`` with the children swapped when the left category is 1.0,
folds each tree's weight into its leaf values, and emits a single ``TreeEnsembleRegressor`` whose
float [N, 1] output *is* the prediction. Finally the ``ai.onnx`` domain alias that the OneHotEncoder
converter writes for its Reshape nodes is normalised to the default domain so ``onnx.checker``
passes. A third, quieter mismatch: ONNX compares float32, Spark double; continuous thresholds are
rounded *down* to float32 (:func:`float32_floor`), which together with float32-exact features
makes every split decide identically (otherwise ~1 row in 4,000 flipped a split, off by $0.5). The parity gate (``spark_jobs.verify``) still checks every exported model against Spark.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np

from driftstack.contract import features as F

log = logging.getLogger(__name__)
GBT_KEY = "pyspark.ml.regression.GBTRegressionModel"
OUTPUT_NAME = "prediction"


def initial_types():
    """One [None, 1] input per contract feature: float for numerics, string for categoricals."""
    from onnxmltools.convert.common.data_types import FloatTensorType, StringTensorType

    return [(f.name, FloatTensorType([None, 1]) if f.kind == "numeric" else StringTensorType([None, 1]))
            for f in F.FEATURES]


def read_gbt_nodes(spark, gbt_model):
    """All trees' nodes as a pandas DataFrame (treeID + flattened nodeData), one model save."""
    from onnxmltools.convert.sparkml.operator_converters.tree_ensemble_common import (
        save_read_sparkml_model_data,
    )

    pdf = save_read_sparkml_model_data(spark, gbt_model).select("treeID", "nodeData.*").toPandas()
    return pdf.sort_values(["treeID", "id"], kind="stable")


def float32_floor(t: float) -> float:
    """The largest float32 <= t. ONNX compares float32 inputs with float32 thresholds; Spark
    compares doubles. For float32-representable inputs x (the derivation guarantees that),
    ``x <= t`` in double  <=>  ``x <= float32_floor(t)`` in float32 — exactly, no tie-breaking.
    Plain rounding to nearest can round a threshold *up* onto an input value and flip a split."""
    t32 = np.float32(t)
    if float(t32) > t:
        t32 = np.nextafter(t32, np.float32(-np.inf))
    return float(t32)


def tree_attributes(nodes, tree_weights, *, fix_categorical_splits: bool = True) -> dict:
    """TreeEnsembleRegressor attributes for all trees (leaf values pre-multiplied by tree weight)."""
    attrs = {k: [] for k in ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes",
                             "nodes_values", "nodes_truenodeids", "nodes_falsenodeids",
                             "nodes_missing_value_tracks_true", "nodes_hitrates",
                             "target_treeids", "target_nodeids", "target_ids", "target_weights")}
    for row in nodes.itertuples(index=False):
        tree, node = int(row.treeID), int(row.id)
        attrs["nodes_treeids"].append(tree)
        attrs["nodes_nodeids"].append(node)
        attrs["nodes_missing_value_tracks_true"].append(0)
        attrs["nodes_hitrates"].append(1.0)
        if row.leftChild < 0:  # leaf
            attrs["nodes_featureids"].append(0)
            attrs["nodes_modes"].append("LEAF")
            attrs["nodes_values"].append(0.0)
            attrs["nodes_truenodeids"].append(0)
            attrs["nodes_falsenodeids"].append(0)
            attrs["target_treeids"].append(tree)
            attrs["target_nodeids"].append(node)
            attrs["target_ids"].append(0)
            attrs["target_weights"].append(float(row.prediction) * float(tree_weights[tree]))
            continue
        split = row.split
        values = [float(v) for v in split["leftCategoriesOrThreshold"]]
        left, right = int(row.leftChild), int(row.rightChild)
        if split["numCategories"] < 0 or not fix_categorical_splits:
            # continuous: Spark goes left when x <= threshold, ONNX BRANCH_LEQ takes "true" then.
            # (With the fix off this reproduces the stock converter, categorical splits included.)
            threshold = values[0] if values else -1.0
            if fix_categorical_splits:
                threshold = float32_floor(threshold)
        elif split["numCategories"] == 2 and len(values) == 1 and values[0] in (0.0, 1.0):
            # binary categorical (a one-hot column): left iff x == values[0]
            threshold = 0.5
            if values[0] == 1.0:
                left, right = right, left
        else:
            raise NotImplementedError(
                f"tree {tree} node {node}: categorical split on feature {split['featureIndex']} with "
                f"{split['numCategories']} categories (left {values}) is not supported; only one-hot "
                f"(binary) categorical features are expected in this pipeline")
        attrs["nodes_featureids"].append(int(split["featureIndex"]))
        attrs["nodes_modes"].append("BRANCH_LEQ")
        attrs["nodes_values"].append(threshold)
        attrs["nodes_truenodeids"].append(left)
        attrs["nodes_falsenodeids"].append(right)
    return attrs


def _converter(fix_categorical_splits: bool):
    def convert_gbt_regressor(scope, operator, container):
        op = operator.raw_operator
        nodes = read_gbt_nodes(operator.raw_params["SparkSession"], op)
        attrs = tree_attributes(nodes, list(op.treeWeights), fix_categorical_splits=fix_categorical_splits)
        container.add_node("TreeEnsembleRegressor", operator.input_full_names, operator.output_full_names,
                           op_domain="ai.onnx.ml", name=scope.get_unique_operator_name("TreeEnsembleRegressor"),
                           n_targets=1, post_transform="NONE", aggregate_function="SUM", **attrs)
    return convert_gbt_regressor


def _shape(operator):
    from onnxmltools.convert.common.data_types import FloatTensorType

    operator.outputs[0].type = FloatTensorType([operator.inputs[0].type.shape[0], 1])


@contextlib.contextmanager
def fixed_converters(fix_categorical_splits: bool = True):
    """Temporarily register the fixed GBT regressor converter (restores the registry on exit)."""
    import onnxmltools.convert.sparkml  # noqa: F401 - populates the registry with the stock converters
    from onnxmltools.convert.common import _registration as reg

    old = reg._converter_pool.get(GBT_KEY), reg._shape_calculator_pool.get(GBT_KEY)
    reg.register_converter(GBT_KEY, _converter(fix_categorical_splits), overwrite=True)
    reg.register_shape_calculator(GBT_KEY, _shape, overwrite=True)
    try:
        yield
    finally:
        reg.register_converter(GBT_KEY, old[0], overwrite=True)
        reg.register_shape_calculator(GBT_KEY, old[1], overwrite=True)


def normalise_domains(model):
    """Rewrite nodes in the ``ai.onnx`` alias domain to the default domain and merge opset imports."""
    for node in model.graph.node:
        if node.domain == "ai.onnx":
            node.domain = ""
    versions: dict[str, int] = {}
    for imp in model.opset_import:
        dom = "" if imp.domain == "ai.onnx" else imp.domain
        versions[dom] = max(versions.get(dom, 0), imp.version)
    del model.opset_import[:]
    for dom, ver in sorted(versions.items()):
        model.opset_import.add(domain=dom, version=ver)
    return model


def export_onnx(pipeline_model, spark, *, name: str = "driftstack-fare", fixed: bool = True,
                fix_categorical_splits: bool = True, target_opset: int | None = None):
    """Convert a fitted pipeline (StringIndexer -> OneHotEncoder -> VectorAssembler -> GBT) to ONNX.

    ``fixed=False`` runs the stock converter unchanged and ``fix_categorical_splits=False`` fixes
    only bug 1 — both exist so tests can prove the bugs are still there and still handled.
    """
    import onnx
    from onnxmltools import convert_sparkml

    if not fixed:
        return convert_sparkml(pipeline_model, name, initial_types(), spark_session=spark,
                               target_opset=target_opset)
    with fixed_converters(fix_categorical_splits):
        model = convert_sparkml(pipeline_model, name, initial_types(), spark_session=spark,
                                target_opset=target_opset)
    normalise_domains(model)
    outputs = [o.name for o in model.graph.output]
    if outputs != [OUTPUT_NAME]:
        raise RuntimeError(f"expected one output named {OUTPUT_NAME!r}, got {outputs}: is predictionCol "
                           f"set to {OUTPUT_NAME!r} and nothing else left dangling?")
    onnx.checker.check_model(model, full_check=True)
    return model
