"""Seeded, realistic NYC yellow-taxi trips, written as Parquet with the real TLC columns.

Calibrated on public facts (DESIGN.md §1): metered fare since Dec 2022 = $3.00 + $0.70 per 1/5 mile
while moving (>= 12 mph) or per minute in slow traffic; JFK<->Manhattan flat $70 (RatecodeID 2);
Newark = meter + $20 (RatecodeID 3); ~94% standard rate; ~78% card / ~19% cash; ~73% single
passenger; median distance ~1.8 mi with a long tail; rush hours and weekends change the speed.
A small share of rows carries the defects real files have (flex-fare rows with null
passenger_count/RatecodeID, zero passengers, refunds, zones 264/265, clock glitches, RatecodeID 99,
duplicates) so validation always has something to drop and count.

Knobs: ``month`` and ``drift`` (covariate: longer trips, more airport trips, shifted hours;
concept: a fare-rule change). Everything is vectorised numpy: 500K rows in about a second.
"""

from __future__ import annotations

import calendar
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from driftstack.data.zones import zone_id, zones_in

JFK, LGA, EWR_ZONE = zone_id("JFK Airport"), zone_id("LaGuardia Airport"), zone_id("Newark Airport")
UNKNOWN_ZONES = (264, 265)


@dataclass(frozen=True)
class FareRules:
    """The TLC metered-fare rules (defaults: in force since 19 Dec 2022)."""

    initial: float = 3.00
    per_unit: float = 0.70          # per 1/5 mile moving, or per minute slow (< 12 mph)
    jfk_flat: float = 70.00
    newark_surcharge: float = 20.00


@dataclass(frozen=True)
class Drift:
    """How a month differs from the reference behaviour. Defaults = no drift."""

    distance_scale: float = 1.0     # covariate: trips get longer (x scale)
    airport_share: float = 1.0      # covariate: airport trips x share (then renormalised)
    hour_shift: int = 0             # covariate: demand shifts later by N hours
    fares: FareRules = field(default_factory=FareRules)  # concept: the fare rules change


PRESETS: dict[str, Drift] = {
    "none": Drift(),
    # strong enough that three features pass PSI 0.2 in a 600-request window (trip_distance ~0.4,
    # trip_duration_minutes ~0.3, pickup_hour ~0.3): the default min_drifted_features trigger fires on its own
    "covariate": Drift(distance_scale=1.6, airport_share=2.5, hour_shift=4),
    "concept": Drift(fares=FareRules(initial=4.00, per_unit=0.90, jfk_flat=85.0, newark_surcharge=25.0)),
}
PRESETS["both"] = replace(PRESETS["covariate"], fares=PRESETS["concept"].fares)

# Trip kinds: (probability, RatecodeID, log-normal distance median mi / sigma, base speed mph).
KINDS = {
    "manhattan":  (0.800, 1, 1.45, 0.65, 8.5),
    "mn_outer":   (0.090, 1, 5.50, 0.40, 13.0),
    "outer":      (0.030, 1, 2.40, 0.70, 11.0),
    "lga":        (0.035, 1, 9.50, 0.20, 17.0),
    "jfk_mn":     (0.037, 2, 17.5, 0.12, 19.0),
    "jfk_other":  (0.010, 1, 11.0, 0.35, 19.0),
    "ewr":        (0.004, 3, 17.0, 0.15, 20.0),
    "nassau":     (0.002, 4, 15.0, 0.40, 20.0),
    "negotiated": (0.010, 5, 5.00, 0.90, 12.0),
    "group":      (0.0002, 6, 3.00, 0.50, 9.0),
}
AIRPORT_KINDS = ("lga", "jfk_mn", "jfk_other", "ewr")

# Relative pickups per hour (NYC pattern: weekday evening peak, weekend late-night activity).
HOURS_WEEKDAY = np.array([2.0, 1.2, .8, .6, .6, .9, 2.0, 3.5, 4.5, 4.6, 4.5, 4.6, 4.9, 5.0, 5.3, 5.6,
                          5.8, 6.3, 6.6, 6.2, 5.6, 5.2, 4.8, 3.4])
HOURS_WEEKEND = np.array([4.5, 3.8, 3.0, 2.2, 1.4, 1.0, 1.0, 1.3, 2.0, 2.8, 3.6, 4.3, 4.7, 4.8, 4.8,
                          4.8, 4.8, 5.0, 5.1, 5.0, 4.8, 4.8, 4.9, 4.8])
PASSENGERS = ((1, 2, 3, 4, 5, 6), (0.745, 0.150, 0.036, 0.021, 0.028, 0.020))
PAYMENTS = ((1, 2, 3, 4), (0.78, 0.19, 0.01, 0.02))
OUTER = ("Brooklyn", "Queens", "Bronx", "Staten Island")


def parse_month(month: str | tuple[int, int]) -> tuple[int, int]:
    if isinstance(month, tuple):
        year, mon = month
    else:
        try:
            year, mon = (int(p) for p in str(month).split("-"))
        except ValueError:
            raise ValueError(f"month must look like 'YYYY-MM', got {month!r}") from None
    if not 1 <= mon <= 12:
        raise ValueError(f"month must be 1..12, got {mon}")
    return year, mon


def resolve_drift(drift: Drift | str | None) -> Drift:
    if drift is None:
        return Drift()
    if isinstance(drift, Drift):
        return drift
    if drift not in PRESETS:
        raise ValueError(f"unknown drift preset {drift!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[drift]


def _zone_pickers(rng_popularity: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Zones per borough with fixed Zipf-like popularity (a property of the city, not the seed)."""
    out = {}
    for boro in ("Manhattan",) + OUTER:
        z = np.array([x for x in zones_in(boro) if x not in (JFK, LGA)])
        w = 1.0 / np.arange(1, len(z) + 1) ** 0.8
        rng_popularity.shuffle(w)
        out[boro] = (z, w / w.sum())
    return out


_ZONES = _zone_pickers(np.random.default_rng(1234))


def _pick_zone(rng, boro: str, n: int) -> np.ndarray:
    z, w = _ZONES[boro]
    return rng.choice(z, size=n, p=w)


def _pick_outer(rng, n: int, probs=(0.55, 0.30, 0.13, 0.02)) -> np.ndarray:
    boro = rng.choice(len(OUTER), size=n, p=probs)
    out = np.empty(n, dtype=np.int64)
    for i, b in enumerate(OUTER):
        m = boro == i
        out[m] = _pick_zone(rng, b, int(m.sum()))
    return out


def _zones_for(rng, kind: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(PULocationID, DOLocationID) for n trips of one kind; direction randomised where it applies."""
    mn = _pick_zone(rng, "Manhattan", n)
    if kind in ("manhattan", "group"):
        a, b = mn, _pick_zone(rng, "Manhattan", n)
    elif kind == "mn_outer":
        a, b = mn, _pick_outer(rng, n, (0.55, 0.30, 0.15, 0.0))
    elif kind == "outer":
        a = _pick_outer(rng, n)
        b = a.copy()  # same borough: re-draw within it
        for boro in OUTER:
            m = np.isin(a, _ZONES[boro][0])
            b[m] = _pick_zone(rng, boro, int(m.sum()))
    elif kind == "lga":
        other = np.where(rng.random(n) < 0.8, mn, _pick_outer(rng, n, (0.5, 0.5, 0.0, 0.0)))
        a, b = np.full(n, LGA), other
    elif kind == "jfk_mn":
        a, b = np.full(n, JFK), mn
    elif kind == "jfk_other":
        a, b = np.full(n, JFK), _pick_outer(rng, n, (0.6, 0.4, 0.0, 0.0))
    elif kind == "ewr":
        return mn, np.full(n, EWR_ZONE)  # Newark trips start in the city
    elif kind == "nassau":
        a, b = np.where(rng.random(n) < 0.5, mn, _pick_outer(rng, n, (0, 0.6, 0.4, 0))), \
            _pick_outer(rng, n, (0.0, 0.6, 0.4, 0.0))
    else:  # negotiated
        a, b = mn, np.where(rng.random(n) < 0.5, _pick_zone(rng, "Manhattan", n), _pick_outer(rng, n))
    swap = rng.random(n) < 0.5
    return np.where(swap, b, a), np.where(swap, a, b)


def _pickup_times(rng, year: int, mon: int, n: int, hour_shift: int) -> np.ndarray:
    days = calendar.monthrange(year, mon)[1]
    start = np.datetime64(f"{year:04d}-{mon:02d}-01", "D")
    dates = start + np.arange(days)
    weekend = ((dates.astype(np.int64) + 3) % 7) >= 5
    day = rng.choice(days, size=n, p=np.where(weekend, 0.9, 1.0) / np.where(weekend, 0.9, 1.0).sum())
    hour = np.empty(n, dtype=np.int64)
    for is_we, weights in ((False, HOURS_WEEKDAY), (True, HOURS_WEEKEND)):
        m = weekend[day] == is_we
        w = np.roll(weights, hour_shift)
        hour[m] = rng.choice(24, size=int(m.sum()), p=w / w.sum())
    seconds = hour * 3600 + rng.integers(0, 3600, size=n)
    return (dates[day].astype("datetime64[us]") + seconds.astype("timedelta64[s]")).astype("datetime64[us]")


def _speed_factor(hour: np.ndarray, weekend: np.ndarray) -> np.ndarray:
    f = np.full(len(hour), 0.95)
    f[(hour >= 20) | (hour <= 5)] = 1.2
    f[(hour >= 0) & (hour <= 5)] = 1.45
    rush = ~weekend & (((hour >= 7) & (hour <= 9)) | ((hour >= 16) & (hour <= 19)))
    f[rush] = 0.78
    f[weekend & (hour >= 6) & (hour <= 19)] = 1.1
    return f


def meter_fare(rng, distance: np.ndarray, minutes: np.ndarray, speed: np.ndarray,
               rules: FareRules) -> np.ndarray:
    """The taximeter: per_unit per 1/5 mile while moving, per minute while slower than 12 mph."""
    slow_share = np.clip(1.2 - speed / 12.0 + rng.normal(0, 0.12, len(speed)), 0.02, 0.98)
    slow_min = slow_share * minutes
    slow_miles = np.minimum(distance, slow_min / 60.0 * 5.0)  # crawling at ~5 mph
    units = np.floor((distance - slow_miles) * 5.0) + np.floor(slow_min)
    return rules.initial + rules.per_unit * units


def generate_trips(rows: int, month: str | tuple[int, int] = "2023-01", *, seed: int | None = None,
                   drift: Drift | str | None = None, dirty: float = 0.02) -> dict[str, np.ndarray]:
    """Raw TLC columns (real names and dtypes) for ``rows`` trips of one month."""
    if rows < 1:
        raise ValueError("rows must be >= 1")
    if not 0.0 <= dirty < 0.5:
        raise ValueError("dirty must be in [0, 0.5)")
    year, mon = parse_month(month)
    d = resolve_drift(drift)
    rng = np.random.default_rng(year * 100 + mon if seed is None else seed)

    names = list(KINDS)
    p = np.array([KINDS[k][0] * (d.airport_share if k in AIRPORT_KINDS else 1.0) for k in names])
    kind = rng.choice(len(names), size=rows, p=p / p.sum())

    pu = np.empty(rows, dtype=np.int64)
    do = np.empty(rows, dtype=np.int64)
    ratecode = np.empty(rows, dtype=np.float64)
    distance = np.empty(rows)
    base_speed = np.empty(rows)
    for i, k in enumerate(names):
        m = kind == i
        cnt = int(m.sum())
        if not cnt:
            continue
        _, code, median, sigma, speed = KINDS[k]
        pu[m], do[m] = _zones_for(rng, k, cnt)
        ratecode[m] = code
        scale = 1.0 if k in ("jfk_mn", "ewr") else d.distance_scale  # airports don't move
        distance[m] = median * scale * rng.lognormal(0.0, sigma, cnt)
        base_speed[m] = speed
    distance = np.round(np.clip(distance, 0.1, 95.0), 2)

    pickup = _pickup_times(rng, year, mon, rows, d.hour_shift)
    day = pickup.astype("datetime64[D]")
    hour = ((pickup - day) // np.timedelta64(1, "h")).astype(np.int64)
    weekend = ((day.astype(np.int64) + 3) % 7) >= 5
    speed = np.clip(base_speed * _speed_factor(hour, weekend) * rng.lognormal(0, 0.25, rows), 2.5, 45)
    minutes = distance / speed * 60.0 + rng.lognormal(np.log(1.0), 0.6, rows)  # plus stops
    minutes = np.clip(minutes, 1.05, 175.0)
    dropoff = pickup + np.round(minutes * 60).astype("timedelta64[s]")

    fare = meter_fare(rng, distance, minutes, distance / minutes * 60.0, d.fares)
    code = ratecode.astype(np.int64)
    fare = np.where(code == 2, d.fares.jfk_flat, fare)
    fare = np.where(code == 3, fare + d.fares.newark_surcharge, fare)
    fare = np.where(code == 4, fare * 1.5, fare)  # double meter beyond the city limit, ~half the way
    fare = np.where(code == 5, np.round(rng.uniform(15, 150, rows)), fare)
    fare = np.round(np.clip(fare, 3.0, 199.0), 2)

    passengers = rng.choice(PASSENGERS[0], size=rows, p=PASSENGERS[1]).astype(np.float64)
    payment = rng.choice(PAYMENTS[0], size=rows, p=PAYMENTS[1]).astype(np.int64)

    cols = {
        "VendorID": rng.choice([1, 2], size=rows, p=[0.27, 0.73]).astype(np.int64),
        "tpep_pickup_datetime": pickup,
        "tpep_dropoff_datetime": dropoff.astype("datetime64[us]"),
        "passenger_count": passengers,
        "trip_distance": distance,
        "RatecodeID": ratecode,
        "store_and_fwd_flag": np.where(rng.random(rows) < 0.005, "Y", "N").astype(object),
        "PULocationID": pu,
        "DOLocationID": do,
        "payment_type": payment,
        "fare_amount": fare,
    }
    _add_defects(rng, cols, dirty)
    _add_charges(rng, cols)
    order = np.argsort(cols["tpep_pickup_datetime"], kind="stable")
    return {k: v[order] for k, v in cols.items()}


def _add_defects(rng, cols: dict[str, np.ndarray], dirty: float) -> None:
    """Give ~``dirty`` of the rows one real-world defect each, then duplicate a few rows."""
    n = len(cols["fare_amount"])
    bad = np.flatnonzero(rng.random(n) < dirty)
    which = rng.integers(0, 7, len(bad))
    groups = {w: bad[which == w] for w in range(7)}
    cols["passenger_count"][groups[0]] = np.nan        # flex-fare rows: no passenger/rate info
    cols["RatecodeID"][groups[0]] = np.nan
    cols["payment_type"][groups[0]] = 0
    cols["passenger_count"][groups[1]] = 0.0           # zero passengers recorded
    cols["fare_amount"][groups[2]] *= -1.0             # refunds / voided trips
    cols["trip_distance"][groups[3]] = 0.0             # meter never moved
    col = np.where(rng.random(len(groups[4])) < 0.5, "PULocationID", "DOLocationID")
    for c in ("PULocationID", "DOLocationID"):
        sel = groups[4][col == c]
        cols[c][sel] = rng.choice(UNKNOWN_ZONES, len(sel))
    cols["tpep_dropoff_datetime"][groups[5]] = cols["tpep_pickup_datetime"][groups[5]] + \
        np.timedelta64(26, "h")                        # clock glitch: a day-long "trip"
    cols["RatecodeID"][groups[6]] = 99.0               # unknown rate code
    dup = rng.choice(n, size=int(n * dirty / 10), replace=False)
    for k, v in cols.items():
        cols[k] = np.concatenate([v, v[dup]])


def _add_charges(rng, cols: dict[str, np.ndarray]) -> None:
    """The other money columns of a TLC record (not features; written for realism)."""
    n = len(cols["fare_amount"])
    fare = cols["fare_amount"]
    card = cols["payment_type"] == 1
    manhattan = np.isin(cols["PULocationID"], _ZONES["Manhattan"][0]) | \
        np.isin(cols["DOLocationID"], _ZONES["Manhattan"][0])
    hour = ((cols["tpep_pickup_datetime"] - cols["tpep_pickup_datetime"].astype("datetime64[D]"))
            // np.timedelta64(1, "h")).astype(int)
    cols["extra"] = np.where((hour >= 20) | (hour < 6), 1.0, np.where((hour >= 16) & (hour < 20), 2.5, 0.0))
    cols["mta_tax"] = np.full(n, 0.5)
    cols["tip_amount"] = np.where(card, np.round(np.abs(fare) * rng.uniform(0.1, 0.3, n), 2), 0.0)
    cols["tolls_amount"] = np.where(cols["trip_distance"] > 12, 6.55, 0.0)
    cols["improvement_surcharge"] = np.full(n, 1.0)
    cols["congestion_surcharge"] = np.where(manhattan, 2.5, 0.0)
    cols["airport_fee"] = np.where(np.isin(cols["PULocationID"], (JFK, LGA)), 1.75, 0.0)
    cols["total_amount"] = np.round(fare + cols["extra"] + cols["mta_tax"] + cols["tip_amount"]
                                    + cols["tolls_amount"] + cols["improvement_surcharge"]
                                    + cols["congestion_surcharge"] + cols["airport_fee"], 2)


def to_arrow(cols: dict[str, np.ndarray]):
    """A pyarrow Table with the TLC dtypes (timestamp[us], float64 counts, int64 ids)."""
    import pyarrow as pa

    return pa.table({k: pa.array(v) for k, v in cols.items()})


def write_month(path: str | os.PathLike, month: str | tuple[int, int] = "2023-01", rows: int = 100_000,
                *, drift: Drift | str | None = None, seed: int | None = None, dirty: float = 0.02) -> Path:
    """Write one month of generated trips as TLC Parquet. A directory ``path`` gets the official
    file name ``yellow_tripdata_YYYY-MM.parquet``. Returns the file written."""
    import pyarrow.parquet as pq

    year, mon = parse_month(month)
    path = Path(path)
    if path.is_dir() or not path.suffix:
        path.mkdir(parents=True, exist_ok=True)
        path = path / f"yellow_tripdata_{year:04d}-{mon:02d}.parquet"
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(to_arrow(generate_trips(rows, (year, mon), seed=seed, drift=drift, dirty=dirty)), path)
    return path


def feature_records(rows: int, month: str | tuple[int, int] = "2023-01", *, seed: int | None = None,
                    drift: Drift | str | None = None, with_target: bool = True) -> list[dict]:
    """Valid generated trips as request-ready dicts of the 12 contract features (JSON types, category
    values as the contract lists them, e.g. RatecodeID 2 not "2"), plus ``fare_amount`` when asked —
    for traffic generators and demos. Uses the same derivation as training."""
    from driftstack.contract import features as F
    from driftstack.data.derive import derive

    b = derive(generate_trips(rows, month, seed=seed, drift=drift, dirty=0.0)).kept()
    back = {f.name: {F.category_token(c): c for c in f.categories} for f in F.CATEGORICAL_FEATURES}
    cols = []
    for f in F.FEATURES:
        v = b.features[f.name]
        if f.kind == "categorical":
            cols.append([back[f.name][t] for t in v.tolist()])
        elif f.integer:
            cols.append([int(x) for x in v.tolist()])
        else:
            cols.append([round(float(x), 4) for x in v.tolist()])
    names = list(F.FEATURE_NAMES)
    out = [dict(zip(names, vals)) for vals in zip(*cols)]
    if with_target:
        for rec, y in zip(out, b.target.tolist()):
            rec[F.TARGET.name] = y
    return out
