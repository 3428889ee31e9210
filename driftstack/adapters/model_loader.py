"""The serving model: found through the champion pointer, verified, loaded once, hot-swapped.

``ModelManager.get()`` is called on every request; it costs a clock read except when the
refresh interval has passed, then it re-reads the pointer (one consistent GetItem).  A new
champion is downloaded, its sha256 checked against the pointer, its metadata and input
signature checked against the feature contract, smoke-tested, and only then swapped in with one
reference assignment.  Anything that fails leaves the previous model serving and is reported as
a degraded reason (GET /health) and a metric.  A container that cold-starts while the named
artifact cannot be served falls back to the pointer's ``previous`` artifact (the last known good)
and keeps retrying the named one; with no usable previous it answers 503.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import onnxruntime as ort

from driftstack.contract import names as N
from driftstack.domain import encoding
from driftstack.contract import features as fc
from driftstack.adapters.registry import CHAMPION, Pointer, read_pointer
from driftstack.contract.api import example_features

# metadata.json keys that may carry the contract hash (the training job writes one of them)
_CONTRACT_KEYS = ("contract_hash", "feature_contract_hash")
NO_MODEL_RETRY_SECONDS = 5.0


class ModelRefused(Exception):
    """The artifact cannot be served; the message says why."""


def _session_options() -> ort.SessionOptions:
    opts = ort.SessionOptions()
    # Single-row requests: thread hand-offs cost more than they save; Lambda has 1-2 vCPUs.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


@dataclass(frozen=True)
class LoadedModel:
    pointer: Pointer
    metadata: dict[str, Any]
    session: ort.InferenceSession
    output_name: str
    loaded_at: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        return self.pointer.model_name

    @property
    def version(self) -> str:
        return self.pointer.version

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """Raw session run -> 1-D float64 predictions."""
        out = self.session.run([self.output_name], feeds)[0]
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def predict(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.run(encoding.encode(rows))

    def info(self) -> dict[str, Any]:
        p = self.pointer
        return {
            "model_name": p.model_name, "model_version": p.version, "sha256": p.sha256,
            "loaded_at": datetime.fromtimestamp(self.loaded_at, timezone.utc).isoformat(),
            "pointer_updated_at": p.updated_at, "artifact": f"s3://{p.bucket}/{p.prefix}",
            "metadata": self.metadata,
        }


def _pick_output(session: ort.InferenceSession) -> str:
    outputs = session.get_outputs()
    names = [o.name for o in outputs]
    if "prediction" in names:
        return "prediction"
    floats = [o.name for o in outputs if o.type in ("tensor(float)", "tensor(double)")]
    if len(floats) != 1:
        raise ModelRefused(f"cannot tell the prediction output among {names}")
    return floats[0]


def load_model(s3, pointer: Pointer) -> LoadedModel:
    """Download, verify and load the artifact a pointer names. Raises ModelRefused."""
    try:
        blob = s3.get_object(Bucket=pointer.bucket, Key=pointer.model_key)["Body"].read()
    except Exception as exc:  # noqa: BLE001 - any download failure means "not this model"
        raise ModelRefused(f"download of s3://{pointer.bucket}/{pointer.model_key} failed: {exc}") from exc
    digest = hashlib.sha256(blob).hexdigest()
    if digest != pointer.sha256:
        raise ModelRefused(f"sha256 mismatch for {pointer.model_key}: pointer says {pointer.sha256[:16]}…, "
                           f"artifact is {digest[:16]}…")
    try:
        raw = s3.get_object(Bucket=pointer.bucket, Key=pointer.metadata_key)["Body"].read()
        metadata = json.loads(raw)
    except Exception as exc:  # noqa: BLE001
        raise ModelRefused(f"metadata s3://{pointer.bucket}/{pointer.metadata_key} unreadable: {exc}") from exc
    contract = next((metadata[k] for k in _CONTRACT_KEYS if k in metadata), None)
    if contract is not None and contract != fc.contract_hash():
        raise ModelRefused(f"model was trained on feature contract {str(contract)[:12]}…, "
                           f"this function serves {fc.contract_hash()[:12]}…")
    try:
        session = ort.InferenceSession(blob, sess_options=_session_options(),
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises several types for bad graphs
        raise ModelRefused(f"onnxruntime cannot load the model: {exc}") from exc
    problems = encoding.signature_problems(session.get_inputs())
    if problems:
        raise ModelRefused("model inputs do not match the feature contract: " + "; ".join(problems))
    model = LoadedModel(pointer=pointer, metadata=metadata, session=session, output_name=_pick_output(session))
    try:
        smoke = model.predict([example_features(), example_features()])
    except Exception as exc:  # noqa: BLE001
        raise ModelRefused(f"smoke prediction failed: {exc}") from exc
    if smoke.shape != (2,) or not all(math.isfinite(v) for v in smoke):
        raise ModelRefused(f"smoke prediction returned {smoke!r}, expected 2 finite values")
    return model


class ModelManager:
    """Holds the serving model of this container and keeps it in step with the pointer."""

    def __init__(self, table, s3, *, refresh_seconds: float = 30.0, role: str = CHAMPION,
                 emit: Callable[[str], None] = lambda name: None, log=None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._table, self._s3, self._role = table, s3, role
        self.refresh_seconds = refresh_seconds
        self._emit, self._log, self._clock = emit, log, clock
        self._current: LoadedModel | None = None
        self._next_check = 0.0
        self.degraded: dict[str, str] = {}  # reason key -> message
        # Set while serving the pointer's previous artifact instead of the one it names (cold start).
        self.fallback: dict[str, str] | None = None

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def get(self) -> LoadedModel | None:
        """The model to serve now (re-checks the pointer when the interval has passed)."""
        if self._clock() >= self._next_check:
            self.refresh()
        return self._current

    def refresh(self) -> str:
        """Re-read the pointer and swap if it names a new, valid artifact. Returns the outcome."""
        # Without a model, look again sooner: the first champion may be published any moment.
        interval = self.refresh_seconds if self._current else min(self.refresh_seconds, NO_MODEL_RETRY_SECONDS)
        self._next_check = self._clock() + interval
        try:
            pointer = read_pointer(self._table, self._role)
        except Exception as exc:  # noqa: BLE001 - keep serving whatever we have
            return self._degrade("pointer", f"champion pointer unreadable: {exc}", "PointerReadFailures")
        if pointer is None:
            return self._degrade("pointer", f"no {self._role} pointer is set", "NoChampion")
        self.degraded.pop("pointer", None)
        current = self._current
        if current is not None and current.pointer.sha256 == pointer.sha256:
            self.degraded.pop("artifact", None)
            self.fallback = None
            if current.pointer != pointer:  # same artifact, new version label / timestamp
                self._current = LoadedModel(pointer, current.metadata, current.session,
                                            current.output_name, current.loaded_at)
            return "unchanged"
        started = time.perf_counter()
        try:
            model = load_model(self._s3, pointer)
        except ModelRefused as exc:
            if current is None and pointer.previous is not None:
                return self._fall_back(pointer, exc)
            keeping = (f"; serving the previous champion {current.version} (last known good)" if self.fallback
                       else f"; still serving {current.version}" if current else "; no model to serve")
            return self._degrade("artifact", f"refused {pointer.model_name} {pointer.version}: {exc}{keeping}",
                                 N.METRIC_MODEL_LOAD_FAILURES)
        self._current = model  # the swap: one reference assignment, requests see old or new
        self.degraded.pop("artifact", None)
        self.fallback = None
        self._emit("ModelSwaps")
        if self._log:
            self._log.info("model swapped in", extra={
                "model_name": model.name, "model_version": model.version, "sha256": pointer.sha256,
                "previous_version": current.version if current else None,
                "load_seconds": round(time.perf_counter() - started, 3)})
        return "swapped"

    def _fall_back(self, pointer: Pointer, refused: ModelRefused) -> str:
        """Cold start, the named artifact refused: load the pointer's previous one (last known good).
        The next refreshes keep trying the named artifact and swap it in once it loads."""
        prev = pointer.previous
        named = f"{pointer.model_name} {pointer.version}"
        try:
            model = load_model(self._s3, prev)
        except ModelRefused as exc:
            return self._degrade("artifact", f"refused {named}: {refused}; the previous champion {prev.version} "
                                 f"was refused too: {exc}; no model to serve", N.METRIC_MODEL_LOAD_FAILURES)
        self._current = model
        self.fallback = {"pointer_version": pointer.version, "serving_version": prev.version,
                         "reason": f"refused {named}: {refused}"}
        self._emit("ModelFallbacks")
        self._degrade("artifact", f"refused {named}: {refused}; serving the previous champion {prev.version} "
                      "(last known good)", N.METRIC_MODEL_LOAD_FAILURES)
        return "fallback"

    def _degrade(self, key: str, message: str, metric: str) -> str:
        self.degraded[key] = message
        self._emit(metric)
        if self._log:
            self._log.warning(message)
        return "refused" if key == "artifact" else "no_pointer"
