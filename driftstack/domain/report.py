"""The human-readable drift report: one self-contained HTML page with inline SVG bar charts.

Per feature (and the predictions): reference vs current proportions per bin, PSI/KL/JS, drifted or
not. Pure Python string building — no matplotlib in the Lambda layer, and no external assets, so the
page opens offline straight from S3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

REF_COLOR, CUR_COLOR = "#4C78A8", "#F58518"


def bin_labels(entry: Mapping) -> list[str]:
    """Labels of the ``len(edges) + 2`` numeric bins / the categories (see driftstack.domain.profile)."""
    if entry.get("kind") == "categorical":
        return [str(c) for c in entry["categories"]]
    edges = entry.get("edges", [])
    if not edges:
        return ["all", "NaN"][: len(entry.get("proportions", []))]
    # Edges sit a float32 step outside the data (see driftstack.domain.profile): show 0 for -1.4e-45, not noise.
    fmt = lambda v: f"{0.0 if abs(v) < 1e-9 else v:.3g}"  # noqa: E731
    labels = [f"<{fmt(edges[0])}"]
    labels += [f"{fmt(a)}–{fmt(b)}" for a, b in zip(edges[:-1], edges[1:])]
    labels += [f"≥{fmt(edges[-1])}", "NaN"]
    return labels


def bar_chart(labels: Sequence[str], ref: Sequence[float], cur: Sequence[float] | None, *,
              width: int = 520, height: int = 170) -> str:
    """Grouped bars (reference, current) as an SVG string."""
    n = max(len(labels), 1)
    top = max([*ref, *(cur or []), 1e-9])
    plot_h, base = height - 45, height - 35
    slot = (width - 40) / n
    bw = slot * (0.4 if cur is not None else 0.8)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
             f'<line x1="30" y1="{base}" x2="{width - 5}" y2="{base}" stroke="#999"/>',
             f'<text x="2" y="14" font-size="10" fill="#555">{top:.0%}</text>']
    for i, label in enumerate(labels):
        x = 32 + i * slot
        for j, (vals, color) in enumerate(((ref, REF_COLOR), (cur, CUR_COLOR))):
            if vals is None or i >= len(vals):
                continue
            h = plot_h * float(vals[i]) / top
            parts.append(f'<rect x="{x + j * bw:.1f}" y="{base - h:.1f}" width="{bw - 1:.1f}" height="{h:.1f}" '
                         f'fill="{color}"><title>{escape(label)}: {float(vals[i]):.2%}</title></rect>')
        if n <= 16:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{base + 12}" font-size="8" text-anchor="middle" '
                         f'fill="#333" transform="rotate(25 {x + slot / 2:.1f} {base + 12})">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _row(name: str, stats: Mapping | None, entry: Mapping | None, cur: Sequence[float] | None) -> str:
    chart = bar_chart(bin_labels(entry), entry["proportions"], cur) if entry else ""
    if stats:
        flag = '<b class="bad">drifted</b>' if stats.get("drifted") else '<span class="ok">stable</span>'
        nums = f"PSI {stats['psi']:.4f} · KL {stats['kl']:.4f} · JS {stats['js']:.4f} · {flag}"
    else:
        nums = "no data"
    return f'<div class="feat"><h3>{escape(name)}</h3><p>{nums}</p>{chart}</div>'


def render(doc: Mapping) -> str:
    """The report for one drift result document (see driftstack.usecases.drift_check.run_check)."""
    ref = (doc.get("reference") or {}).get("profile", {})
    cur = doc.get("current_proportions") or {}
    champ = doc.get("champion") or {}
    perf = doc.get("performance") or {}
    status = doc.get("status", "?")
    perf_txt = ("no labelled requests" if not perf.get("labelled") else
                f"{perf['labelled']} labelled requests: RMSE {perf['rmse']:.3f}, MAE {perf['mae']:.3f} "
                f"(holdout RMSE {perf.get('reference_rmse') or float('nan'):.3f}"
                + (f", {perf['degradation'] * 100:+.0f}%" if perf.get("degradation") is not None else "") + ")")
    rows = [_row(name, (doc.get("features") or {}).get(name), ref.get(name), cur.get(name))
            for name in ref if name != "prediction"]
    if "prediction" in ref:
        rows.insert(0, _row("prediction (fare)", doc.get("prediction"), ref["prediction"], cur.get("prediction")))
    reasons = "".join(f"<li>{escape(r)}</li>" for r in doc.get("reasons", []))
    exec_txt = ""
    if doc.get("execution"):
        exec_txt = f"<p>Retraining: {escape(str(doc['execution'].get('message', '')))}</p>"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>driftstack drift report {escape(doc.get('check_id', ''))}</title>
<style>body{{font-family:sans-serif;margin:20px;color:#222}} .feat{{display:inline-block;vertical-align:top;
margin:6px;padding:6px;border:1px solid #ddd;border-radius:4px}} .bad{{color:#c0392b}} .ok{{color:#27ae60}}
h3{{margin:2px 0;font-size:14px}} p{{margin:2px 0;font-size:12px}}
.legend span{{display:inline-block;width:10px;height:10px;margin:0 4px}}</style></head><body>
<h1>Drift report — <span class="{'bad' if doc.get('trigger') else 'ok'}">{escape(status)}</span></h1>
<p>Window {escape(doc.get('window', {}).get('start', ''))} → {escape(doc.get('window', {}).get('end', ''))}
· {doc.get('samples', 0)} requests compared ({doc.get('requests_in_window', 0)} in the window)
· champion {escape(str(champ.get('model_name', '')))} v{escape(str(champ.get('version', '')))}
· checked {escape(doc.get('checked_at', ''))}</p>
<p>Performance: {escape(perf_txt)}</p>
<ul>{reasons}</ul>{exec_txt}
<p class="legend"><span style="background:{REF_COLOR}"></span>reference (training profile)
<span style="background:{CUR_COLOR}"></span>current window</p>
{''.join(rows)}
</body></html>
"""
