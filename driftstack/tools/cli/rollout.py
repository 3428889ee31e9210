"""`driftstack rollout ...`: shadow or canary a candidate model next to the champion."""

from __future__ import annotations

import hashlib
import json

import click

from driftstack.tools.cli.errors import Failed
from driftstack.tools.cli.output import console, echo_json, json_option
from driftstack.tools.cli.root import State, cli, pass_state


@cli.group()
def rollout() -> None:
    """Shadow or canary a candidate model; complete or roll back."""


@rollout.command("start")
@click.argument("prefix")
@click.option("--mode", type=click.Choice(["shadow", "canary"]), default="canary", show_default=True)
@click.option("--share", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.1, show_default=True,
              help="Canary: share of requests served by the candidate.")
@click.option("--reason", default="", help="Recorded with the rollout.")
@pass_state
def start_cmd(state: State, prefix: str, mode: str, share: float, reason: str) -> None:
    """Attach the artifact under PREFIX (models/<name>/<sha16>/, see `driftstack decisions`) as candidate."""
    from botocore.exceptions import ClientError

    from driftstack.adapters import rollout as ro
    from driftstack.adapters.registry import METADATA_FILE, MODEL_FILE

    bucket = state.output("BucketName")
    prefix = prefix.removeprefix(f"s3://{bucket}/").rstrip("/") + "/"
    s3 = state.client("s3")
    try:
        meta = json.loads(s3.get_object(Bucket=bucket, Key=prefix + METADATA_FILE)["Body"].read())
        blob = s3.get_object(Bucket=bucket, Key=prefix + MODEL_FILE)["Body"].read()
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in ("NoSuchKey", "404"):
            raise
        raise Failed(f"no model artifact under s3://{bucket}/{prefix}: {exc}") from exc
    try:
        r = ro.start(state.table("ModelsTableName"), mode=mode, share=share,
                     model_name=meta.get("model_name", "taxi-fare"),
                     version=str(meta.get("version") or hashlib.sha256(blob).hexdigest()[:8]), bucket=bucket,
                     prefix=prefix, sha256=hashlib.sha256(blob).hexdigest(), reason=reason)
    except ro.RolloutError as exc:
        raise Failed(str(exc)) from exc
    echo_json(r.info())


@rollout.command("show")
@json_option
@pass_state
def show_cmd(state: State, as_json: bool) -> None:
    """The active rollout, the last outcome and the last canary evaluation."""
    from driftstack.tools import operations
    from driftstack.tools.cli.status_view import render_rollout

    ops = operations.collect(state.target, state.outputs())
    doc = {k: ops[k] for k in ("rollout", "last_rollout", "last_canary_evaluation")}
    echo_json(doc) if as_json else console().print(render_rollout(doc))


@rollout.command("evaluate")
@click.option("--criteria", default="{}", help='JSON overrides, e.g. \'{"min_requests": 50}\'.')
@pass_state
def evaluate_cmd(state: State, criteria: str) -> None:
    """Run the deployed canary evaluation now (what its schedule does)."""
    try:
        overrides = json.loads(criteria)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--criteria") from exc
    resp = state.client("lambda").invoke(FunctionName=state.output("CanaryEvalFunctionName"),
                                         Payload=json.dumps({"criteria": overrides}))
    body = json.loads(resp["Payload"].read() or b"null")
    if resp.get("FunctionError"):
        raise Failed(f"canary evaluation failed: {body}")
    echo_json(body)


def _end(state: State, complete: bool, reason: str) -> None:
    from driftstack.adapters import rollout as ro

    models = state.table("ModelsTableName")
    active = ro.read(models)
    if active is None:
        raise Failed("no rollout is active")
    try:
        rec = (ro.complete if complete else ro.rollback)(models, active, reason=f"manual: {reason}")
    except ro.RolloutConflict as exc:
        raise Failed(str(exc)) from exc
    echo_json(rec)


@rollout.command("complete")
@click.option("--reason", required=True)
@pass_state
def complete_cmd(state: State, reason: str) -> None:
    """Make the candidate the champion now (100 %)."""
    _end(state, True, reason)


@rollout.command("rollback")
@click.option("--reason", required=True)
@pass_state
def rollback_cmd(state: State, reason: str) -> None:
    """End the rollout now; the champion serves everything."""
    _end(state, False, reason)
