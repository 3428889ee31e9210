"""THE feature derivation: raw TLC columns -> the 12 contract features, with row validation.

numpy only, so every engine runs the same code: the pyarrow reader (:mod:`driftstack.data.tlc`),
Spark (``spark_jobs.data`` calls it inside ``mapInPandas``, so it scales out with the cluster) and
the traffic generator. Names, ranges and categories all come from :mod:`driftstack.contract.features`.

Rows outside the contract are never silently lost: each gets the first reason it fails
(``"<column>:<problem>"``) and :class:`ValidationReport` counts them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from driftstack.contract import features as F
from driftstack.data.schema import DROPOFF, PICKUP, TARGET_COLUMN, required_columns
from driftstack.data.zones import N_ZONES, borough_table

# Derivation rules (not ranges): weekday pickup hours counted as rush hour (7-9h, 16-19h).
RUSH_HOURS = frozenset((7, 8, 9, 16, 17, 18, 19))
DUPLICATE = "duplicate"


@dataclass
class ValidationReport:
    """What validation did: rows in, rows kept, and the count of dropped rows per reason."""

    rows_in: int = 0
    rows_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def rows_dropped(self) -> int:
        return self.rows_in - self.rows_out

    def add(self, other: "ValidationReport") -> "ValidationReport":
        c = Counter(self.dropped)
        c.update(other.dropped)
        return ValidationReport(self.rows_in + other.rows_in, self.rows_out + other.rows_out,
                                dict(sorted(c.items())))

    @classmethod
    def from_reasons(cls, reasons: np.ndarray) -> "ValidationReport":
        bad = reasons[reasons != None]  # noqa: E711 - elementwise on an object array
        counts = Counter(bad.tolist())
        return cls(len(reasons), len(reasons) - len(bad), dict(sorted(counts.items())))

    def to_dict(self) -> dict:
        return {"rows_in": self.rows_in, "rows_out": self.rows_out,
                "rows_dropped": self.rows_dropped, "dropped": dict(self.dropped)}

    def summary(self) -> str:
        parts = ", ".join(f"{k}={v}" for k, v in self.dropped.items()) or "none"
        return f"{self.rows_in} rows in, {self.rows_out} kept, {self.rows_dropped} dropped ({parts})"


@dataclass
class DerivedBatch:
    """Derived columns for every input row plus a per-row reject reason (None = valid)."""

    features: dict[str, np.ndarray]   # numerics float64, categoricals object arrays of tokens
    target: np.ndarray | None          # fare_amount float64 (None when not required)
    pickup: np.ndarray                 # pickup time, datetime64[us] (for time-based splits)
    reasons: np.ndarray                # object array: None or "<column>:<problem>"

    @property
    def valid(self) -> np.ndarray:
        return self.reasons == None  # noqa: E711

    def report(self) -> ValidationReport:
        return ValidationReport.from_reasons(self.reasons)

    def kept(self) -> "DerivedBatch":
        """Only the valid rows."""
        m = self.valid
        return DerivedBatch({k: v[m] for k, v in self.features.items()},
                            None if self.target is None else self.target[m], self.pickup[m],
                            self.reasons[m])

    def __len__(self) -> int:
        return len(self.reasons)


def _as_datetime(values) -> np.ndarray:
    arr = np.asarray(values)
    if not np.issubdtype(arr.dtype, np.datetime64):
        arr = arr.astype("datetime64[us]")  # e.g. an object array of datetimes
    return arr.astype("datetime64[us]")


def _as_float(values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == object:  # nullable ints from pandas arrive as objects with None/NA
        arr = np.array([np.nan if v is None or v != v else v for v in arr.tolist()], dtype=float)
    return arr.astype(np.float64)


def _tokens(values: np.ndarray) -> np.ndarray:
    """Numeric category codes (1.0, 2.0 ... as stored in TLC files) -> contract tokens ("1", ...)."""
    out = np.full(len(values), None, dtype=object)
    ok = np.isfinite(values)
    if ok.any():
        uniq, inv = np.unique(values[ok], return_inverse=True)
        toks = np.array([F.category_token(int(u)) if float(u).is_integer() else repr(float(u))
                         for u in uniq], dtype=object)
        out[ok] = toks[inv]
    return out


def derive(columns: Mapping[str, np.ndarray], *, require_target: bool = True,
           duplicate: np.ndarray | None = None) -> DerivedBatch:
    """Derive the contract features from raw TLC columns (arrays of equal length).

    ``duplicate`` optionally flags rows the engine found to repeat an earlier row (duplicates need
    a global view, so each engine finds them its own way and passes the mask in here).
    """
    n = len(np.asarray(columns[PICKUP]))
    reasons = np.full(n, None, dtype=object)

    def reject(mask: np.ndarray, reason: str) -> None:
        reasons[mask & (reasons == None)] = reason  # noqa: E711 - first reason wins

    if duplicate is not None:
        reject(np.asarray(duplicate, dtype=bool), DUPLICATE)

    raw: dict[str, np.ndarray] = {}
    for col in required_columns(require_target):
        if col.kinds == ("timestamp",):
            raw[col.name] = _as_datetime(columns[col.name])
            reject(np.isnat(raw[col.name]), f"{col.name}:null")
        else:
            raw[col.name] = _as_float(columns[col.name])
            reject(~np.isfinite(raw[col.name]), f"{col.name}:null")

    # Timestamps: NaT rows are already rejected; give them a harmless value to compute on.
    pickup = np.where(np.isnat(raw[PICKUP]), np.datetime64(0, "us"), raw[PICKUP])
    dropoff = np.where(np.isnat(raw[DROPOFF]), pickup, raw[DROPOFF])
    day = pickup.astype("datetime64[D]")
    hour = ((pickup - day) // np.timedelta64(1, "h")).astype(np.int64)
    dow = (day.astype(np.int64) + 3) % 7 + 1          # 1970-01-01 was a Thursday; 1 = Monday
    weekend = dow >= 6
    derived_num = {
        "trip_distance": raw["trip_distance"],
        "passenger_count": raw["passenger_count"],
        "pickup_hour": hour.astype(np.float64),
        "pickup_day_of_week": dow.astype(np.float64),
        "pickup_month": (pickup.astype("datetime64[M]").astype(np.int64) % 12 + 1).astype(np.float64),
        "trip_duration_minutes": (dropoff - pickup) / np.timedelta64(1, "s") / 60.0,
        "is_weekend": weekend.astype(np.float64),
        "is_rush_hour": (~weekend & np.isin(hour, list(RUSH_HOURS))).astype(np.float64),
    }

    # The model's ONNX inputs are float32 (DESIGN §2), so numeric features are rounded to float32
    # here, before Spark ever sees them: Spark then learns split thresholds between values the ONNX
    # model receives exactly, and the exporter (spark_jobs.onnx_export) can round each threshold
    # down to float32 so ``x <= t`` decides the same way in both engines - no ties at the boundary.
    derived_num = {k: v.astype(np.float32).astype(np.float64) for k, v in derived_num.items()}

    table = borough_table()
    derived_cat = {"RatecodeID": _tokens(raw["RatecodeID"]),
                   "payment_type": _tokens(raw["payment_type"])}
    for feat, col in (("pickup_borough", "PULocationID"), ("dropoff_borough", "DOLocationID")):
        loc = raw[col]
        ok = np.isfinite(loc) & (loc >= 0) & (loc <= N_ZONES) & (np.mod(loc, 1) == 0)
        boro = np.full(n, None, dtype=object)
        boro[ok] = table[loc[ok].astype(np.int64)]
        reject(boro == None, f"{feat}:unknown_zone")  # noqa: E711 - zones 264/265, bad ids
        derived_cat[feat] = boro

    for f in F.NUMERIC_FEATURES:  # contract ranges, in contract order
        v = derived_num[f.name]
        bad = ~((v >= f.low) & (v <= f.high))
        if f.integer:
            bad |= np.mod(v, 1) != 0
        reject(bad, f"{f.name}:out_of_range")
    for f in F.CATEGORICAL_FEATURES:
        allowed = [F.category_token(c) for c in f.categories]
        reject(~np.isin(derived_cat[f.name].astype(str), allowed), f"{f.name}:unknown_category")

    target = None
    if require_target:
        target = raw[TARGET_COLUMN]
        reject(~((target >= F.TARGET.low) & (target <= F.TARGET.high)), f"{TARGET_COLUMN}:out_of_range")

    feats = {name: (derived_num[name] if name in derived_num else derived_cat[name])
             for name in F.FEATURE_NAMES}
    return DerivedBatch(feats, target, raw[PICKUP], reasons)
