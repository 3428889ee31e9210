"""Serving a prediction, independent of HTTP: pick the model (champion, or the canary's arm), predict,
score the shadow, and log every row before the answer exists (an unlogged prediction is not served).

The rollout policy, in one place (state and routing hash: :mod:`driftstack.adapters.rollout`):

- no rollout: the champion serves, nothing else happens;
- canary: the request id's hash picks the arm (a client's X-Request-Id keeps its arm on a replay);
  a failing candidate falls back to the champion (the request still succeeds; the failure is logged
  as ``candidate_error`` and counted), the canary evaluation reads ``arm`` and ``model_ms``;
- shadow: the champion serves; the candidate's predictions are logged beside it and never change
  or fail the answer.

The HTTP surface (routes, status codes, error bodies) is :mod:`driftstack.usecases.prediction_api`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from driftstack.adapters import aws
from driftstack.adapters import rollout as ro
from driftstack.adapters.model_loader import LoadedModel, ModelManager
from driftstack.adapters.request_log import LogSettings, LogUnavailable, RequestLog, UnknownRequest, iso, make_record, \
    new_request_id, utc_now
from driftstack.contract import names as N
from driftstack.domain import encoding

__all__ = ["Serving", "Served", "Unavailable", "UnknownRequest"]


class Unavailable(Exception):
    """The request cannot be served now (no model, the request log refuses writes): HTTP 503."""


@dataclass(frozen=True)
class Served:
    request_id: str
    predictions: list[float]
    model: LoadedModel
    latency_ms: float
    item_ids: list[str] | None   # batch item ids (``<request_id>.<i>``), None for a single trip


def _elapsed_ms(t0: float, digits: int = 4) -> float:
    return round((time.perf_counter() - t0) * 1000, digits)


@lru_cache(maxsize=4)
def _item_suffixes(n: int) -> tuple[str, ...]:
    """".0" ... ".<n-1>": a batch item's id is the request id and one of these."""
    return tuple(f".{i}" for i in range(n))


def _error_text(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


class Serving:
    """The champion, the rollout view and the request log of one container (built at cold start)."""

    def __init__(self, models: ModelManager, rollout: ro.RolloutRouter, log: RequestLog,
                 count: Callable[..., None] = lambda name, value=1: None) -> None:
        self.models, self.rollout, self.log, self._count = models, rollout, log, count

    @classmethod
    def connect(cls, *, models_table: str, log_settings: LogSettings, refresh_seconds: float,
                log_timeout_seconds: float, count: Callable[..., None], log=None) -> Serving:
        """Clients, the champion and any rollout candidate, loaded now (cold start), not on the first request."""
        table, s3 = aws.dynamodb_table(models_table, timeout=2.0), aws.client("s3", timeout=10.0)
        models = ModelManager(table, s3, refresh_seconds=refresh_seconds, emit=count, log=log)
        rollout = ro.RolloutRouter(table, s3, refresh_seconds=refresh_seconds, emit=count, log=log,
                                   on_end=models.refresh)
        request_log = RequestLog(
            log_settings,
            # Short timeout, one retry: a slow queue should turn into a spill to S3, not a slow response
            # (a hanging queue costs at most 2 x log_timeout_seconds; the spill as much again).
            sqs=aws.client("sqs", timeout=log_timeout_seconds, attempts=2),
            s3=aws.client("s3", timeout=log_timeout_seconds, attempts=2, small_writes=True),
            emit=count, log=log)
        models.refresh()
        rollout.refresh()
        return cls(models, rollout, request_log, count)

    # ------------------------------------------------------------------ predict

    def champion(self, *, counted: bool = True) -> LoadedModel:
        """The serving champion; Unavailable when none is loaded (``counted``: the NoModel metric)."""
        model = self.models.get()
        if model is None:
            if counted:
                self._count(N.METRIC_NO_MODEL)
            raise Unavailable("no model is loaded: " + "; ".join(self.models.degraded.values()))
        return model

    def predict(self, rows: Sequence[Mapping[str, Any]], *, batch: bool, client_request_id: str | None,
                started: float, champion: LoadedModel | None = None, feeds: Mapping[str, Any] | None = None) -> Served:
        """Predict ``rows`` (validated features) and log them; ``started`` is the request's perf_counter,
        ``champion`` the model :meth:`champion` returned when the caller checked it first, ``feeds`` the
        rows already encoded (driftstack.domain.columnar), else they are encoded here."""
        model = champion or self.champion()
        request_id = new_request_id()
        active = self.rollout.get()
        extra = shadow = None
        if feeds is None:
            feeds = encoding.encode(rows)  # once, for both models when a rollout is on (same feature contract)
        if active is None:  # the common path: no extra work
            preds = model.run(feeds)
            latency_ms = _elapsed_ms(started, 3)
        else:
            preds, model, extra = self._route(active, model, feeds, client_request_id or request_id)
            latency_ms = _elapsed_ms(started, 3)
            # Shadow: after the champion's answer exists; never changes it, never fails the request.
            shadow = self._shadow(active, feeds, len(rows)) if active.mode == ro.SHADOW else None
        preds = preds.tolist() if hasattr(preds, "tolist") else [float(p) for p in preds]
        item_ids = [request_id + suffix for suffix in _item_suffixes(len(rows))] if batch else None
        records = self._records(request_id, item_ids, rows, preds, model, latency_ms, client_request_id)
        if extra is not None:
            for i, rec in enumerate(records):
                rec.update(extra)
                rec.update(shadow[i] if shadow is not None else {})
        try:
            self.log.write(records)  # before the response: an unlogged prediction is not served
        except LogUnavailable as exc:
            raise Unavailable(str(exc)) from exc
        return Served(request_id, preds, model, latency_ms, item_ids)

    def _route(self, active: ro.Active, champion: LoadedModel, feeds, routing_id: str):
        """Canary: the arm by the routing id's hash, the champion when the candidate fails. Shadow: the champion."""
        extra: dict[str, Any] = {"rollout_id": active.rollout_id, "rollout_mode": active.mode}
        if active.mode == ro.CANARY and active.routes_to_candidate(routing_id):
            extra["arm"] = "candidate"
            t0 = time.perf_counter()
            try:
                preds = active.model.run(feeds)
                if not ro.finite(preds):
                    raise ValueError("non-finite prediction")
                extra["model_ms"] = _elapsed_ms(t0)
                self._count(N.METRIC_CANARY_REQUESTS)
                return preds, active.model, extra
            except Exception as exc:  # noqa: BLE001 - any candidate failure: the champion answers instead
                self._count(N.METRIC_CANARY_ERRORS)
                extra["candidate_error"] = _error_text(exc)
        elif active.mode == ro.CANARY:
            extra["arm"] = "incumbent"
        t0 = time.perf_counter()
        preds = champion.run(feeds)
        extra["model_ms"] = _elapsed_ms(t0)
        return preds, champion, extra

    def _shadow(self, active: ro.Active, feeds, n: int) -> list[dict[str, Any]]:
        """The candidate's predictions for the log (one dict per row); errors are recorded, not raised."""
        version = active.model.version
        t0 = time.perf_counter()
        try:
            preds = active.model.run(feeds)
            if len(preds) != n:
                raise ValueError(f"{len(preds)} predictions for {n} rows")
        except Exception as exc:  # noqa: BLE001 - the shadow must never fail the request
            self._count(N.METRIC_SHADOW_ERRORS)
            return [{"shadow_version": version, "shadow_error": _error_text(exc)}] * n
        ms = _elapsed_ms(t0)  # no per-request metric: add_metric costs ~10 µs
        # non-finite values are logged as an error: DynamoDB cannot store NaN
        return [{"shadow_version": version, "shadow_prediction": float(p), "shadow_ms": ms} if ro.finite([p])
                else {"shadow_version": version, "shadow_error": "non-finite prediction"} for p in preds]

    @staticmethod
    def _records(request_id: str, item_ids: list[str] | None, rows, preds: list[float], model: LoadedModel,
                 latency_ms: float, client_request_id: str | None) -> list[dict[str, Any]]:
        common = dict(ts=iso(utc_now()), model_name=model.name, model_version=model.version,
                      model_sha=model.pointer.sha256[:16], latency_ms=latency_ms, client_request_id=client_request_id)
        if item_ids is None:
            return [make_record(request_id=request_id, features=rows[0], prediction=preds[0], **common)]
        # A batch: make_record's fields for the first row, the rest copied with their own id, features
        # and prediction (a thousand make_record calls cost more than the model).
        first = make_record(request_id=item_ids[0], features=rows[0], prediction=preds[0], batch_id=request_id,
                            **common)
        return [first] + [{**first, "request_id": iid, "features": row, "prediction": p}
                          for iid, row, p in zip(item_ids[1:], rows[1:], preds[1:])]

    # ------------------------------------------------------------------ health, model, feedback

    def health(self) -> dict[str, Any]:
        model = self.models.get()
        self.rollout.get()
        reasons = list(self.models.degraded.values()) + list(self.rollout.degraded.values())
        log_reason = self.log.degraded_reason()
        if log_reason:
            reasons.append(log_reason)
        body = {"status": "unavailable" if model is None else ("degraded" if reasons else "ok"),
                "model_loaded": model is not None,
                "model_name": model.name if model else None, "model_version": model.version if model else None,
                "log_sink_healthy": log_reason is None, "degraded_reasons": reasons}
        rollout = self.rollout.info()
        if rollout is not None:  # only while a shadow/canary is attached (or its candidate was refused)
            body["rollout"] = rollout
        return body

    def model_info(self) -> dict[str, Any]:
        model = self.champion(counted=False)
        self.rollout.get()
        info, rollout = model.info(), self.rollout.info()
        if self.models.fallback is not None:  # cold start with a refused champion: the previous one serves
            info["fallback"] = self.models.fallback
        if rollout is not None:
            info["rollout"] = rollout
        return info

    def feedback(self, request_id: str, actual_fare: float) -> dict[str, Any]:
        """Log the actual fare of a past prediction; raises UnknownRequest or Unavailable."""
        try:
            doc = self.log.record_feedback(request_id, actual_fare)
        except LogUnavailable as exc:
            raise Unavailable(str(exc)) from exc
        self._count("Feedback")
        return doc
