"""Where models live: the S3 artifact layout and the champion pointer.

Artifacts are content-addressed: ``models/<model_name>/<sha256[:16]>/`` holds ``model.onnx``,
``metadata.json`` and ``profile.json``. The champion is a DynamoDB item whose update is a
conditional write on the expected current version, so two concurrent promotions cannot both win
and a reader never sees a torn pointer. Each write also keeps the artifact it replaced under
``previous`` (the last known good): a container that cold-starts while the named artifact is
missing or corrupt serves that one instead of nothing.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from driftstack.contract import names as N

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"
PROFILE_FILE = "profile.json"
CHAMPION = "champion"


def artifact_prefix(model_name: str, sha256: str) -> str:
    return f"{N.S3_MODELS}{model_name}/{sha256[:16]}/"


@dataclass(frozen=True)
class Pointer:
    """What a pointer item says: which artifact is serving under this role."""

    role: str
    model_name: str
    version: str
    bucket: str
    prefix: str
    sha256: str
    updated_at: float
    previous: Pointer | None = None  # the artifact this pointer replaced (one level, no chain)

    @property
    def model_key(self) -> str:
        return self.prefix + MODEL_FILE

    @property
    def metadata_key(self) -> str:
        return self.prefix + METADATA_FILE

    @property
    def profile_key(self) -> str:
        return self.prefix + PROFILE_FILE


class PointerConflict(Exception):
    """The pointer was not at the expected version: someone else promoted first."""


_PREVIOUS_KEYS = ("model_name", "version", "bucket", "prefix", "sha256", "updated_at")


def _from_item(role: str, item: Mapping[str, Any], with_previous: bool = True) -> Pointer:
    prev = item.get("previous") if with_previous else None
    return Pointer(role=role, model_name=item["model_name"], version=str(item["version"]),
                   bucket=item["bucket"], prefix=item["prefix"], sha256=item["sha256"],
                   updated_at=float(item["updated_at"]),
                   previous=_from_item(role, prev, with_previous=False) if prev else None)


def read_pointer(table, role: str = CHAMPION) -> Pointer | None:
    """Strongly consistent read of a pointer item, or None when none is set."""
    item = table.get_item(Key={"pk": f"pointer#{role}"}, ConsistentRead=True).get("Item")
    if not item:
        return None
    return _from_item(role, item)


def previous_of(item: Mapping[str, Any] | None, new_sha256: str) -> dict[str, str] | None:
    """What a write replacing ``item`` keeps as ``previous``: the replaced artifact, or, when the
    write only relabels the same artifact, the replaced item's own ``previous``."""
    if not item:
        return None
    if item["sha256"] == new_sha256:
        return item.get("previous")
    return {k: str(item[k]) for k in _PREVIOUS_KEYS}


def write_pointer(table, *, model_name: str, version: str, bucket: str, prefix: str, sha256: str,
                  expected_version: str | None, role: str = CHAMPION, **extra: Any) -> Pointer:
    """Point ``role`` at an artifact, only if the pointer is still at ``expected_version``
    (None: only if no pointer exists). Raises PointerConflict otherwise. The replaced artifact is
    kept as ``previous`` (see ``previous_of``)."""
    from botocore.exceptions import ClientError

    now = time.time()
    item = {"pk": f"pointer#{role}", "model_name": model_name, "version": str(version),
            "bucket": bucket, "prefix": prefix, "sha256": sha256, "updated_at": str(now), **extra}
    if expected_version is None:
        cond = {"ConditionExpression": "attribute_not_exists(pk)"}
        previous = None
    else:
        current = table.get_item(Key={"pk": f"pointer#{role}"}, ConsistentRead=True).get("Item")
        previous = previous_of(current, sha256)
        # Same condition as ever (still at the expected version); when something was read, also
        # that it is still the same artifact, so ``previous`` is exactly what this write replaces.
        cond = {"ConditionExpression": "version = :v",
                "ExpressionAttributeValues": {":v": str(expected_version)}}
        if current:
            cond = {"ConditionExpression": "version = :v AND sha256 = :s",
                    "ExpressionAttributeValues": {":v": str(expected_version), ":s": current["sha256"]}}
    if previous:
        item["previous"] = previous
    try:
        table.put_item(Item=item, **cond)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            raise PointerConflict(
                f"pointer#{role} is no longer at version {expected_version!r}; not changed") from exc
        raise
    return _from_item(role, item)
