"""Spark jobs: ``train`` (data -> GBT -> verified ONNX artifact in S3 + MLflow) and
``score_batch`` (score Parquet with a published artifact). Runnable with ``spark-submit`` on any
cluster or ``python -m spark_jobs.<job>`` with an embedded ``local[*]`` Spark."""
