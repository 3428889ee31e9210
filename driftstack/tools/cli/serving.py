"""Talking to the deployed API: `driftstack predict` and `driftstack traffic`."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from driftstack.contract import features as fc
from driftstack.tools.cli.errors import EXIT_FAILED
from driftstack.tools.cli.output import echo_json, json_option
from driftstack.tools.cli.root import State, cli, pass_state

DRIFT_PRESETS = ["none", "covariate", "concept", "both"]


def _feature_options(func):
    """One --flag per contract feature (e.g. --trip-distance 2.5 --pickup-borough Manhattan)."""
    for f in reversed(fc.FEATURES):
        if f.kind == "categorical":
            typ: Any = click.Choice([str(c) for c in f.categories])
        else:
            typ = int if f.integer else float
        func = click.option(f"--{f.name.replace('_', '-').lower()}", f.name, type=typ,
                            help=f.description)(func)
    return func


def _api(state: State, cacert: str | None):
    """The stack's API client; with --cacert, one that verifies the API's certificate against that CA."""
    if not cacert:
        return state.api()
    from driftstack.tools.api_client import ApiClient

    return ApiClient.from_stack(stack=state.stack, target=state.target, cacert=cacert)


@cli.command()
@click.option("--json", "body", type=click.File("r"), help="A JSON file ('-' for stdin): features dict, "
              "{'features': {...}} or {'instances': [...]}.")
@click.option("--cacert", type=click.Path(exists=True, dir_okay=False), metavar="PATH",
              help="CA certificate to verify the API's HTTPS with (default: on LocalStack the local CA "
                   ".state/tls/ca.pem, on AWS the usual CA bundle).")
@_feature_options
@pass_state
@click.pass_context
def predict(ctx: click.Context, state: State, body, cacert: str | None, **flags) -> None:
    """Predict a fare through the deployed API (HTTPS, verified). Flags override/complete --json."""
    payload: dict[str, Any] = {}
    if body:
        try:
            payload = json.load(body)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--json") from exc
    if "instances" in payload:
        status_code, resp = _api(state, cacert).predict_batch(payload["instances"])
    else:
        feats = dict(payload.get("features", payload))
        for f in fc.FEATURES:
            v = flags.get(f.name)
            if v is not None:
                feats[f.name] = int(v) if f.kind == "categorical" and isinstance(f.categories[0], int) else v
        status_code, resp = _api(state, cacert).predict(feats)
    echo_json(resp)
    if status_code >= 400:
        ctx.exit(EXIT_FAILED)


@cli.command()
@click.option("--count", type=click.IntRange(1, 1_000_000), default=500, show_default=True)
@click.option("--rate", type=float, default=None, help="Requests per second (default: as fast as possible).")
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--drift", "--scenario", "drift", type=click.Choice(DRIFT_PRESETS), default="none", show_default=True,
              help="Drift preset of the generated trips: like the reference month (none) or drifted "
                   "(not an AWS profile; that is the global --profile).")
@click.option("--month", default="2023-01", show_default=True)
@click.option("--seed", type=int, default=None)
@click.option("--feedback/--no-feedback", default=False, show_default=True,
              help="Also send the true fare for each request (ground truth).")
@json_option
@pass_state
@click.pass_context
def traffic(ctx: click.Context, state: State, count: int, rate: float | None, concurrency: int, drift: str,
            month: str, seed: int | None, feedback: bool, as_json: bool) -> None:
    """Send generated trips through the API.

    Bounded: exactly --count requests."""
    from driftstack.tools import traffic as tr

    client = state.api()
    trips = tr.make_trips(count, month=month, drift=drift, seed=seed)
    with click.progressbar(length=len(trips.features), label=f"traffic ({drift})",
                           file=sys.stderr) as bar:
        result = tr.send(lambda b: client.predict(b), trips.features, rate=rate,
                         concurrency=concurrency, on_progress=bar.update)
    summary = result.summary()
    if feedback:
        pairs = [(resp[1]["request_id"], fare) for resp, fare in zip(result.responses, trips.fares)
                 if resp and resp[0] == 200]
        fb = tr.send(lambda p: client.feedback(*p), pairs, concurrency=concurrency)
        summary["feedback"] = {"sent": fb.sent, "errors": fb.errors}
    if as_json:
        echo_json(summary)
    else:
        click.echo(" ".join(f"{k}={v}" for k, v in summary.items()))
    if result.errors:
        ctx.exit(EXIT_FAILED)
