"""The log archiver: queued (and spilled) log messages -> the batched archive and its aggregates.

One drain: receive every message the log queue holds (long polls, so an empty answer means an
empty queue), read the spilled messages under the spill prefix, group the records by the slot
of their request time, merge each slot's requests and feedback into its archive object
(:func:`driftstack.adapters.archive.merge_into`: by request_id, conditional writes), recompute the
aggregates of the slots that changed, and only then delete the messages and spilled objects.

A drain that crashes anywhere leaves its messages in the queue (they reappear after the visibility
timeout) and its spilled objects in place; the next drain merges them again, and merging by
request_id makes that a no-op for what was already stored.  Two drains at once (the schedule and a
drift check) are safe: every archive write is conditional.  A message that is not a log message is
never deleted: after the queue's maxReceiveCount it moves to the dead-letter queue.

Run by functions/log_archiver (EventBridge schedule) and, before it reads, by the drift check and
the canary evaluation, so a check sees every prediction answered before its window's end.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from driftstack.adapters import aggregates as G
from driftstack.adapters import archive as A
from driftstack.adapters import registry
from driftstack.adapters.request_log import parse_message


@dataclass
class DrainReport:
    messages: int = 0
    requests: int = 0
    feedback: int = 0
    spilled_objects: int = 0
    slots: int = 0
    rejected: int = 0                       # messages left for the dead-letter queue
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    complete: bool = True                   # the queue was empty when the drain stopped

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ProfileCache:
    """Reference profiles by (model_name, sha16), loaded once per container (they never change:
    artifacts are content-addressed)."""

    def __init__(self, s3, bucket: str) -> None:
        self._s3, self._bucket, self._cache, self._lock = s3, bucket, {}, threading.Lock()

    def __call__(self, model_name: str, model_sha: str) -> Mapping | None:
        key = (model_name, model_sha)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        body, _ = A.get(self._s3, self._bucket, registry.artifact_prefix(model_name, model_sha) + registry.PROFILE_FILE)
        prof = json.loads(body) if body is not None else None
        with self._lock:
            self._cache[key] = prof
        return prof


def _receive_all(sqs, queue_url: str, deadline: float, *, threads: int, max_messages: int,
                 visibility_seconds: int, wait_seconds: int) -> tuple[list[dict], bool]:
    """Receive until the queue answers empty (complete=True) or the deadline/cap is reached."""
    got: list[dict] = []
    lock = threading.Lock()
    empty = threading.Event()

    def worker() -> None:
        while time.monotonic() < deadline and not empty.is_set():
            with lock:
                if len(got) >= max_messages:
                    return
            resp = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=wait_seconds,
                                       VisibilityTimeout=visibility_seconds,
                                       MessageSystemAttributeNames=["SentTimestamp", "ApproximateReceiveCount"])
            msgs = resp.get("Messages", [])
            if not msgs:
                empty.set()
                return
            with lock:
                got.extend(msgs)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for f in [pool.submit(worker) for _ in range(threads)]:
            f.result()
    return got, empty.is_set()


@dataclass(frozen=True)
class DrainOptions:
    """How a drain polls the queue (driftstack.settings.LogDrainSettings: LOG_DRAIN_THREADS, LOG_DRAIN_WAIT_SECONDS)."""

    threads: int = 4            # parallel long polls
    # A long poll asks every SQS server, so an empty answer means an empty queue (a short poll
    # samples a few); it costs each drain one wait of this length at its end.
    wait_seconds: int = 1


def drain(*, sqs, s3, layout: A.Layout, queue_url: str, load_profile: Callable[[str, str], Mapping | None],
          budget_seconds: float = 120.0, options: DrainOptions = DrainOptions(), max_messages: int = 200_000,
          visibility_seconds: int = 600, log=None) -> DrainReport:
    """Archive everything queued or spilled now (see the module doc)."""
    t0 = time.monotonic()
    report = DrainReport()
    messages, report.complete = _receive_all(sqs, queue_url, t0 + budget_seconds, threads=options.threads,
                                             max_messages=max_messages, visibility_seconds=visibility_seconds,
                                             wait_seconds=options.wait_seconds)
    by_slot: dict[tuple[str, Any], list[dict]] = {}
    done: list[dict] = []           # messages to delete once their records are stored

    def add(kind: str, records: list[dict]) -> None:
        for r in records:
            when = r["ts"] if kind == A.REQUESTS else A.request_time(r["request_id"])
            if when is None:    # feedback for an id that carries no time: refused at the API
                report.errors.append(f"feedback for {r['request_id']!r}: not an issued request id")
                continue
            by_slot.setdefault((kind, layout.slot_of(when)), []).append(r)
            setattr(report, kind, getattr(report, kind) + 1)

    rejected: list[dict] = []
    for m in messages:
        try:
            kind, records = parse_message(m["Body"])
        except ValueError as exc:
            rejected.append(m)
            report.errors.append(f"message {m.get('MessageId')}: {exc}")
            continue
        add(kind, records)
        done.append(m)
    report.messages, report.rejected = len(done), len(rejected)

    spill_keys = _spill_keys(s3, layout)
    for key in spill_keys:
        body, _ = A.get(s3, layout.bucket, key)
        if body is None:        # another drain took it
            continue
        try:
            kind, records = parse_message(body)
        except ValueError as exc:
            report.errors.append(f"s3://{layout.bucket}/{key}: {exc}")
            continue
        add(kind, records)
    report.spilled_objects = len(spill_keys)

    # Requests before feedback (a slot's aggregate joins both); then each changed slot's aggregate.
    touched = sorted({slot for _, slot in by_slot})
    with ThreadPoolExecutor(max_workers=min(8, max(1, len(by_slot)))) as pool:
        list(pool.map(lambda item: A.merge_into(s3, layout, item[0][0], item[0][1], item[1]),
                      sorted(by_slot.items(), key=lambda kv: (kv[0][0] != A.REQUESTS, kv[0][1]))))
        list(pool.map(lambda slot: G.refresh(s3, layout, slot, load_profile), touched))
    report.slots = len(touched)

    # Everything is stored: now the queue and the spill may forget it (deletes in parallel: a
    # drain is bound by SQS round trips, not CPU).
    def delete(batch: list[dict]) -> list[str]:
        resp = sqs.delete_message_batch(QueueUrl=queue_url, Entries=[
            {"Id": str(j), "ReceiptHandle": m["ReceiptHandle"]} for j, m in enumerate(batch)])
        # a failed delete is redelivered and merged again: harmless
        return [f"delete {f.get('Id')}: {f.get('Code')} {f.get('Message', '')}" for f in resp.get("Failed", [])]

    with ThreadPoolExecutor(max_workers=options.threads) as pool:
        for errors in pool.map(delete, [done[i:i + 10] for i in range(0, len(done), 10)]):
            report.errors += errors
    # Not ours to store: visible again at once (not held in flight), so each drain counts one more
    # receive and the queue's redrive policy moves it to the dead-letter queue.
    for m in rejected:
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    for i in range(0, len(spill_keys), 1000):
        s3.delete_objects(Bucket=layout.bucket, Delete={"Objects": [{"Key": k} for k in spill_keys[i:i + 1000]],
                                                        "Quiet": True})
    report.seconds = round(time.monotonic() - t0, 3)
    if log is not None and (report.messages or report.spilled_objects or report.rejected):
        log.info("log drained", extra=report.to_dict())
    return report


def _spill_keys(s3, layout: A.Layout) -> list[str]:
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=layout.bucket, Prefix=layout.spill_prefix):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def wait_for_other_drains(sqs, queue_url: str, timeout_seconds: float = 60.0, poll: float = 1.0) -> bool:
    """True once no message is held by another consumer (in flight), so its records are stored;
    False if some still are after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url,
                                         AttributeNames=["ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        if int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)) == 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll)
