"""The drift check use case.

- :func:`run_check`: read the champion's profile and the window's aggregates, compute and decide (no
  writes; the caller drains the log queue first so the window is complete);
- :class:`ScheduledCheck`: what the scheduled Lambda does, end to end — drain the log queue
  (:mod:`driftstack.usecases.log_drain`), :func:`run_check`, start the retraining workflow when the
  result triggers, persist (:mod:`driftstack.adapters.drift_store`); :func:`metric_values` and
  :func:`summary` are what the handler emits and returns.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from driftstack.adapters import aggregates as G
from driftstack.adapters import archive as A
from driftstack.adapters import registry
from driftstack.adapters import drift_store
from driftstack.adapters.drift_store import load_json
from driftstack.contract import features as F
from driftstack.usecases import log_drain
from driftstack.domain.drift import (NO_CHAMPION, DriftCheckError, DriftConfig, Window, compute, iso,
                                     metrics_of, verdict, window_for)


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
    found = verdict(stats, cfg)
    doc.update(stats)
    doc.update(found)
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


# ---------------------------------------------------------------- the scheduled check, end to end

SUMMARY_KEYS = ("check_id", "status", "trigger", "samples", "requests_in_window", "drifted_features", "reasons",
                "result_uri", "report_uri", "execution", "seconds", "io")
DRAIN_SUMMARY_KEYS = ("messages", "requests", "feedback", "slots", "complete", "settled", "seconds")


@dataclass(frozen=True)
class ScheduledCheck:
    """What one drift-check container works with (built once, at cold start)."""

    s3: Any
    sqs: Any
    sfn: Any
    models_table: Any
    history_table: Any
    layout: A.Layout
    queue_url: str
    state_machine_arn: str
    cooldown_minutes: float = 0.0
    drain: log_drain.DrainOptions = log_drain.DrainOptions()
    log: Any = None
    _profiles: log_drain.ProfileCache = field(init=False, repr=False)

    def __post_init__(self):  # reference profiles, loaded once per container
        object.__setattr__(self, "_profiles", log_drain.ProfileCache(self.s3, self.layout.bucket))

    def run(self, cfg: DriftConfig, *, now: datetime | str | None = None, ignore_cooldown: bool = False,
            execution_extra: dict | None = None) -> dict:
        """Archive what the log queue holds (so the window holds every prediction answered before its
        end), check, start retraining when triggered (once per window, none while one runs), persist."""
        drained = log_drain.drain(sqs=self.sqs, s3=self.s3, layout=self.layout, queue_url=self.queue_url,
                                  load_profile=self._profiles, budget_seconds=120, options=self.drain,
                                  log=self.log)
        # Messages another drain (the archiver's schedule) holds are stored before we read.
        settled = log_drain.wait_for_other_drains(self.sqs, self.queue_url, timeout_seconds=60)
        doc = run_check(s3=self.s3, models_table=self.models_table, layout=self.layout, now=now, cfg=cfg)
        doc["log_drain"] = {**drained.to_dict(), "settled": settled}
        if doc["trigger"]:
            doc["execution"] = drift_store.start_retraining(
                self.sfn, self.state_machine_arn, doc, cooldown_minutes=0 if ignore_cooldown else self.cooldown_minutes,
                **(execution_extra or {}))
            if self.log:
                self.log.info(doc["execution"]["message"], extra={"execution": doc["execution"]})
        if doc["status"] != NO_CHAMPION:
            drift_store.persist(doc, s3=self.s3, bucket=self.layout.bucket, history_table=self.history_table)
        return doc


def metric_values(doc: dict) -> list[tuple[str, float, bool]]:
    """(name, value, is_count) of a result: per-feature PSI gets one metric name per feature (simple EMF)."""
    out = []
    for name, value, dims in metrics_of(doc):
        if dims:
            name = f"{name}_{next(iter(dims.values()))}"
        out.append((name, value, "PSI" not in name))
    return out


def summary(doc: dict) -> dict:
    """The handler's answer and log line: the result without the per-feature detail."""
    out = {k: doc.get(k) for k in SUMMARY_KEYS}
    out["prediction_psi"] = (doc.get("prediction") or {}).get("psi")
    out["log_drain"] = {k: doc["log_drain"][k] for k in DRAIN_SUMMARY_KEYS}
    return out
