"""The Spark ML pipeline: StringIndexer -> OneHotEncoder -> VectorAssembler -> GBTRegressor.

The StringIndexer is built from the contract's category list (not learned from the data), so every
category has a fixed index and column whatever the training sample holds. OneHotEncoder uses
(handleInvalid="keep", dropLast=True): with a complete label list this keeps one column per
category and is one of the two settings onnxmltools converts faithfully (see DESIGN §2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from driftstack.contract import features as F

FEATURES_COL = "features"
PREDICTION = "prediction"


@dataclass(frozen=True)
class GBTParams:
    # Chosen on the 500K-row benchmark (scripts/bench_train.py): holdout RMSE within ~3-4% of
    # scikit-learn's HistGradientBoosting, whole job < 4 min on local[2].
    max_iter: int = 40
    max_depth: int = 5
    step_size: float = 0.2
    subsampling_rate: float = 0.8
    max_bins: int = 64
    min_instances_per_node: int = 20
    seed: int = 42

    def to_dict(self) -> dict:
        return asdict(self)


def build_pipeline(params: GBTParams):
    from pyspark.ml import Pipeline
    from pyspark.ml.feature import OneHotEncoder, StringIndexerModel, VectorAssembler
    from pyspark.ml.regression import GBTRegressor

    idx_cols = [f"{n}__idx" for n in F.CATEGORICAL_NAMES]
    ohe_cols = [f"{n}__ohe" for n in F.CATEGORICAL_NAMES]
    # One indexer per column: from_arrays_of_labels pads ragged label lists with nulls in the
    # column metadata (Spark 4.3), which then crashes OneHotEncoder.fit with an NPE.
    indexers = [StringIndexerModel.from_labels([F.category_token(c) for c in f.categories],
                                               inputCol=f.name, outputCol=out, handleInvalid="error")
                for f, out in zip(F.CATEGORICAL_FEATURES, idx_cols)]
    encoder = OneHotEncoder(inputCols=idx_cols, outputCols=ohe_cols, handleInvalid="keep", dropLast=True)
    assembler = VectorAssembler(inputCols=list(F.NUMERIC_NAMES) + ohe_cols, outputCol=FEATURES_COL)
    gbt = GBTRegressor(featuresCol=FEATURES_COL, labelCol=F.TARGET.name, predictionCol=PREDICTION,
                       maxIter=params.max_iter, maxDepth=params.max_depth, stepSize=params.step_size,
                       subsamplingRate=params.subsampling_rate, maxBins=params.max_bins,
                       minInstancesPerNode=params.min_instances_per_node, seed=params.seed)
    return Pipeline(stages=[*indexers, encoder, assembler, gbt])
