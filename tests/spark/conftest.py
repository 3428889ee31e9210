"""One SparkSession (local[2]) shared by every Spark test."""

import pytest


@pytest.fixture(scope="session")
def spark():
    from spark_jobs.session import get_spark

    session = get_spark("driftstack-tests", "local[2]", shuffle_partitions=2, driver_memory="2g")
    yield session
    session.stop()
