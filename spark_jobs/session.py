"""One way to get a SparkSession for the jobs and the tests.

master: ``--master`` flag > ``DRIFTSTACK_SPARK_MASTER`` > whatever ``spark-submit`` set >
``local[*]``. On a non-local master, the ``driftstack`` and ``spark_jobs`` packages are zipped and
shipped to the executors (``addPyFile``) because the feature derivation and batch scoring run
there inside ``mapInPandas``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def ensure_importable() -> None:
    """``spark-submit spark_jobs/train.py`` puts only spark_jobs/ on sys.path; add the repo root."""
    if str(ROOT) not in sys.path and (ROOT / "driftstack").is_dir():
        sys.path.insert(0, str(ROOT))


def get_spark(app_name: str = "driftstack", master: str | None = None, *, shuffle_partitions: int | None = None,
              driver_memory: str | None = None):
    from pyspark import SparkConf
    from pyspark.sql import SparkSession

    # Executors' Python must be the interpreter that has numpy/pandas/onnxruntime (the venv).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = SparkConf()  # picks up spark-submit's settings when launched that way
    master = master or os.environ.get("DRIFTSTACK_SPARK_MASTER") or conf.get("spark.master", None) or "local[*]"
    local = master.startswith("local")
    builder = (SparkSession.builder.appName(app_name).master(master)
               # TLC timestamps are naive NYC wall-clock times: never let a zone shift them.
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.ui.enabled", os.environ.get("DRIFTSTACK_SPARK_UI", "false"))
               .config("spark.ui.showConsoleProgress", "false"))
    if local:
        builder = (builder.config("spark.driver.memory", driver_memory or os.environ.get("DRIFTSTACK_SPARK_DRIVER_MEMORY", "4g"))
                   .config("spark.sql.shuffle.partitions", str(shuffle_partitions or 8))
                   .config("spark.local.dir", os.environ.get("DRIFTSTACK_SPARK_LOCAL_DIR",
                                                             str(ROOT / ".state" / "spark-tmp"))))
        Path(os.environ.get("DRIFTSTACK_SPARK_LOCAL_DIR", str(ROOT / ".state" / "spark-tmp"))).mkdir(
            parents=True, exist_ok=True)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("DRIFTSTACK_SPARK_LOG_LEVEL", "WARN"))
    if not local:
        ship_code(spark)
    return spark


def ship_code(spark) -> str:
    """Zip driftstack/ and spark_jobs/ and add them to the executors' Python path."""
    path = Path(tempfile.mkdtemp(prefix="driftstack-code-")) / "driftstack_code.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for pkg in ("driftstack", "spark_jobs"):
            for f in (ROOT / pkg).rglob("*"):
                if f.is_file() and "__pycache__" not in f.parts:
                    zf.write(f, f.relative_to(ROOT))
    spark.sparkContext.addPyFile(str(path))
    return str(path)
