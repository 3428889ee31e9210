"""One SparkSession (local[2]) shared by every Spark test."""

import warnings

import pytest


@pytest.fixture(scope="session")
def spark():
    from spark_jobs.session import get_spark

    warnings.filterwarnings("ignore", message=".*pandas >= 3.0.0.*")
    session = get_spark("driftstack-tests", "local[2]", shuffle_partitions=2, driver_memory="2g")
    yield session
    session.stop()


def pytest_configure(config):
    # pyspark 4.3 warns on every toPandas/mapInPandas under pandas 3; we test that path works.
    config.addinivalue_line("filterwarnings", "ignore:.*pandas >= 3.0.0.*:FutureWarning")
    config.addinivalue_line("filterwarnings", "ignore:The copy keyword is deprecated")
