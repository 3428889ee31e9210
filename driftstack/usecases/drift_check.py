"""The drift check use case: read the champion's profile and the window's aggregates, compute and
decide (no writes; :mod:`driftstack.adapters.drift_store` persists).  The caller drains the log queue
first (:mod:`driftstack.usecases.log_drain`) so the window is complete."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from driftstack.adapters import aggregates as G
from driftstack.adapters import archive as A
from driftstack.adapters import registry
from driftstack.adapters.drift_store import load_json
from driftstack.contract import features as F
from driftstack.domain.drift import (NO_CHAMPION, DriftCheckError, DriftConfig, Window, compute, decide, iso,
                                     window_for)


def check_alignment(cfg: DriftConfig, layout: A.Layout) -> None:
    """A window must be a whole number of archive slots (aggregates cannot be split)."""
    for name in ("window_minutes", "period_minutes"):
        value = getattr(cfg, name)
        if value % layout.slot_minutes:
            raise DriftCheckError(f"drift config {name}={value:g} is not a multiple of the archive's "
                                  f"{layout.slot_minutes}-minute slots (context archive_slot_minutes)")


def load_window(s3, layout: A.Layout, window: Window, champion: registry.Pointer) -> G.WindowCounts:
    """The champion's traffic in the window as summed bin counts (one aggregate object per slot)."""
    docs, nbytes = G.read_window(s3, layout, window.start, window.end)
    counts = G.sum_window(docs, champion.version, champion.sha256[:16])
    counts.bytes_read = nbytes
    return counts


def run_check(*, s3, models_table, layout: A.Layout, now: datetime | str | None = None,
              cfg: DriftConfig = DriftConfig(), champion: registry.Pointer | None = None) -> dict:
    """Read, compute and decide (no writes). Returns the result document.
    The caller drains the log queue first (driftstack.usecases.log_drain) so the window is complete."""
    t0 = time.perf_counter()
    check_alignment(cfg, layout)
    window = window_for(now, cfg)
    champion = champion or registry.read_pointer(models_table)
    check_id = f"{window.id}-v{champion.version}" if champion else f"{window.id}-none"
    doc: dict[str, Any] = {"check_id": check_id, "window": window.to_dict(), "checked_at": iso(datetime.now(timezone.utc)),
                           "config": asdict(cfg)}
    if champion is None:
        return {**doc, "status": NO_CHAMPION, "trigger": False, "samples": 0, "champion": None,
                "reasons": ["no champion pointer: nothing to compare against"]}
    doc["champion"] = {"model_name": champion.model_name, "version": champion.version,
                       "sha256": champion.sha256, "prefix": champion.prefix}
    prof = load_json(s3, champion.bucket, champion.profile_key)
    meta = load_json(s3, champion.bucket, champion.metadata_key)
    if prof.get("contract_hash") not in (None, F.contract_hash()):
        raise DriftCheckError(f"profile {champion.profile_key} was built for another feature contract")
    t_read = time.perf_counter()
    counts = load_window(s3, layout, window, champion)
    read_s = time.perf_counter() - t_read
    stats = compute(prof, counts, holdout_metrics=(meta.get("metrics") or {}).get("holdout"), cfg=cfg)
    verdict = decide(stats, cfg)
    doc.update(stats)
    doc.update(verdict)
    doc["reference"] = {"profile_key": champion.profile_key, "rows": prof.get("rows"),
                        "profile": {name: {k: e[k] for k in ("kind", "proportions", "edges", "categories") if k in e}
                                    for name, e in {**prof["features"], **({"prediction": prof["prediction"]}
                                                                           if "prediction" in prof else {})}.items()}}
    doc["requests_in_window"] = counts.requests_in_window
    doc["versions_in_window"] = counts.versions_seen
    doc["io"] = {"aggregates": counts.slots, "bytes": counts.bytes_read, "read_seconds": round(read_s, 3),
                 "unmatched_feedback": counts.unmatched_feedback, "profile_mismatch": counts.profile_mismatch}
    doc["seconds"] = round(time.perf_counter() - t0, 3)
    return doc
