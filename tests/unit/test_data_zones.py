import csv
from pathlib import Path

import numpy as np
import pytest

from driftstack.data import zones
from driftstack.contract.features import BOROUGHS

CSV = Path(zones.__file__).parent / zones.ZONE_FILE


def test_all_265_zones_map_like_the_official_table():
    rows = list(csv.DictReader(CSV.open()))
    assert len(rows) == 265 == len(zones.load_zones())
    table = zones.borough_table()
    for r in rows:
        loc, boro = int(r["LocationID"]), r["Borough"]
        expected = boro if boro in BOROUGHS else None
        assert zones.borough_of(loc) == expected
        assert table[loc] == expected
    mapped = sum(1 for r in rows if r["Borough"] in BOROUGHS)
    assert mapped == 263  # 264 "Unknown" and 265 "N/A" (outside NYC) are out of contract


def test_known_zones():
    assert zones.borough_of(1) == "EWR"
    assert zones.borough_of(zones.zone_id("JFK Airport")) == "Queens"
    assert zones.borough_of(264) is None and zones.borough_of(265) is None
    assert zones.borough_of(999) is None
    assert table_is_read_only()


def table_is_read_only():
    with pytest.raises(ValueError):
        zones.borough_table()[1] = "Queens"
    return True


def test_zones_in_borough_partition_the_contract_zones():
    allz = np.concatenate([zones.zones_in(b) for b in BOROUGHS])
    assert len(allz) == len(set(allz)) == 263
    with pytest.raises(ValueError, match="unknown borough"):
        zones.zones_in("Jersey")
