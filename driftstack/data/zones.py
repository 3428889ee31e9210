"""The official TLC taxi zone table (265 zones) shipped inside the package.

``Unknown`` (264) and ``N/A`` (265, "Outside of NYC") are not boroughs of the feature contract;
they map to ``None`` and the rows using them are dropped (and counted) by validation.
"""

from __future__ import annotations

import csv
import io
from functools import lru_cache
from importlib import resources

import numpy as np

from driftstack.contract.features import BOROUGHS

ZONE_FILE = "taxi_zone_lookup.csv"
N_ZONES = 265


@lru_cache(maxsize=1)
def load_zones() -> dict[int, dict[str, str]]:
    """LocationID -> {"borough", "zone", "service_zone"} as published by the TLC."""
    # importlib.resources also works when the package is shipped to Spark executors as a zip.
    text = resources.files("driftstack.data").joinpath(ZONE_FILE).read_text(encoding="utf-8")
    zones = {}
    for row in csv.DictReader(io.StringIO(text)):
        zones[int(row["LocationID"])] = {"borough": row["Borough"], "zone": row["Zone"],
                                        "service_zone": row["service_zone"]}
    return zones


def borough_of(location_id: int) -> str | None:
    """The contract borough of a zone, or None when the zone is unknown / outside NYC."""
    z = load_zones().get(int(location_id))
    return z["borough"] if z and z["borough"] in BOROUGHS else None


@lru_cache(maxsize=1)
def borough_table() -> np.ndarray:
    """Object array indexed by LocationID (0..265): the contract borough or None.
    Vectorised lookup: ``borough_table()[ids]`` after bounds checking."""
    table = np.full(N_ZONES + 1, None, dtype=object)
    for loc, z in load_zones().items():
        if z["borough"] in BOROUGHS:
            table[loc] = z["borough"]
    table.setflags(write=False)
    return table


def zones_in(borough: str) -> np.ndarray:
    """LocationIDs of a contract borough (sorted)."""
    if borough not in BOROUGHS:
        raise ValueError(f"unknown borough {borough!r}; expected one of {BOROUGHS}")
    return np.array(sorted(k for k, z in load_zones().items() if z["borough"] == borough))


def zone_id(name: str) -> int:
    """LocationID of a zone by its exact name (e.g. "JFK Airport")."""
    for loc, z in load_zones().items():
        if z["zone"] == name:
            return loc
    raise KeyError(f"no taxi zone named {name!r}")
