"""Data in: the NYC TLC yellow-taxi trip records, real or generated, turned into the 12 contract
features by ONE derivation (:mod:`driftstack.data.derive`) that every engine calls — the pyarrow
reader here, the Spark training job (inside ``mapInPandas``) and the traffic generator alike.

Modules: ``zones`` (LocationID → borough), ``schema`` (the raw TLC columns and the schema check),
``derive`` (numpy-only feature derivation + row validation), ``tlc`` (pyarrow/pandas reader with a
validation report), ``generate`` (seeded realistic trip generator with drift knobs).
"""

from driftstack.data.derive import DerivedBatch, ValidationReport, derive
from driftstack.data.schema import RAW_COLUMNS, SchemaError, check_schema
from driftstack.data.zones import borough_table, load_zones

__all__ = ["DerivedBatch", "ValidationReport", "derive", "RAW_COLUMNS", "SchemaError",
           "check_schema", "borough_table", "load_zones"]
