"""The tables of `driftstack status` (and `driftstack rollout show`), from the document
:func:`driftstack.tools.cli.status.collect` builds."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table
from rich.text import Text


def _fields(title: str, rows: list[tuple[str, Any]]) -> Table:
    t = Table(title=title, show_header=False, title_justify="left", title_style="bold")
    t.add_column(style="dim")
    t.add_column(overflow="fold")
    for key, value in rows:
        t.add_row(key, value if isinstance(value, Text) else _text(value))
    return t


def _text(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def render_target(describe: str, target: dict, stack: dict) -> Table:
    rows: list[tuple[str, Any]] = [("target", describe)]
    ls = target.get("localstack")
    if ls:
        health = "healthy" if ls["healthy"] else "not healthy"
        rows.append(("LocalStack", f"{health} (pid {ls['pid']}), state {ls['state_dir']}"))
    for key in ("account", "identity", "region"):
        if target.get(key) and str(target[key]) not in describe:
            rows.append((key, target[key]))
    style = "green" if stack["status"].endswith("_COMPLETE") and "ROLLBACK" not in stack["status"] else "bold red"
    rows += [("stack", stack["name"]), ("stack status", Text(stack["status"], style=style)),
             ("updated", stack["updated"])]
    return _fields("deployment", rows)


def render_serving(health: Any, model: Any) -> Table:
    if not isinstance(model, dict):
        return _fields("champion model", [("model", model), ("health", health)])
    rows = [(k, model.get(k)) for k in ("model_name", "version", "trained_at", "sha256", "source") if k in model]
    rows += [(k, v) for k, v in model.items() if k not in dict(rows) and not isinstance(v, (dict, list))][:6]
    status = health.get("status") if isinstance(health, dict) else health
    rows.append(("health", Text(str(status), style="green" if status == "ok" else "yellow")))
    return _fields("champion model", rows)


def render_rollout(ops: dict) -> Table:
    r = ops.get("rollout")
    if isinstance(r, dict):
        share = f" {r['share']:.0%}" if r["mode"] == "canary" else ""
        active = f"{r['mode']}{share} of {r['candidate_version']} next to {r['incumbent_version']} ({r['rollout_id']})"
    else:
        active = r or "none"
    last, ev = ops.get("last_rollout"), ops.get("last_canary_evaluation")
    if isinstance(last, dict):
        last = f"{last.get('outcome')} {last.get('candidate_version')} vs {last.get('incumbent_version')}: " \
               f"{last.get('reason')} ({last.get('ended_at')})"
    if isinstance(ev, dict):
        ev = f"{ev.get('outcome')} at {ev.get('evaluated_at')}: {'; '.join(ev.get('reasons') or [])}"
    return _fields("rollout", [("active", active), ("last rollout", last), ("last canary evaluation", ev)])


def render_traffic(t: Any) -> Table:
    if not isinstance(t, dict):
        return _fields("traffic (CloudWatch)", [("traffic", t)])
    latency = (f"avg {t['latency_ms_avg']:.2f} ms, max {t['latency_ms_max']:.2f} ms"
               if t.get("latency_ms_avg") is not None else "no data")
    return _fields(f"traffic, last {t['minutes']} min (CloudWatch)", [
        ("predictions", f"{t['requests']:.0f}"), ("errors", f"{t['errors']:.0f}"),
        ("rejected as invalid", f"{t['validation_errors']:.0f}"), ("without a model", f"{t['no_model']:.0f}"),
        ("log spills", f"{t['log_spills']:.0f}"), ("latency", latency)])


def render_alarms(alarms: Any) -> Table:
    if not isinstance(alarms, list):
        return _fields("alarms", [("alarms", alarms)])
    firing = sum(a["state"] == "ALARM" for a in alarms)
    t = Table(title=f"alarms: {len(alarms)} ({firing} in ALARM)", title_justify="left", title_style="bold")
    for c in ("state", "alarm", "reason"):
        t.add_column(c, overflow="fold")
    for a in alarms:
        in_alarm = a["state"] == "ALARM"
        t.add_row(Text(a["state"], style="bold red" if in_alarm else "green" if a["state"] == "OK" else ""),
                  a["alarm"], a.get("reason", "")[:100] if in_alarm else "")
    return t


def render_status(describe: str, doc: dict) -> list:
    from driftstack.tools.watch import render_checks, render_runs

    ops = doc["operations"]
    parts: list = [render_target(describe, doc["target"], doc["stack"]),
                   render_serving(doc.get("health"), doc.get("model")), render_rollout(ops)]
    for key, render in (("drift_checks", render_checks), ("decisions", render_runs)):
        value, title = ops.get(key), key.replace("_", " ")
        if isinstance(value, list):
            parts.append(render(value) if value else Text(f"{title}: none yet", style="bold"))
        else:
            parts.append(_fields(title, [(title, value)]))
    parts += [render_traffic(ops.get("traffic")), render_alarms(ops.get("alarms"))]
    return parts
