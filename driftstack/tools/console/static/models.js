// The models page: champion and previous artifact, rollout state, decisions and one record in full.
import { getJSON, el, row, fill, fmt, time, every } from "/static/common.js";

function kv(obj) {
  return el("dl", {}, ...Object.entries(obj || {}).flatMap(([k, v]) =>
    [el("dt", {}, k), el("dd", {}, typeof v === "object" && v !== null ? JSON.stringify(v) : String(v ?? ""))]));
}

async function showDecision(runId) {
  const { record, mlflow } = await getJSON(`/api/decisions/${encodeURIComponent(runId)}`);
  const ev = record.evaluation || {};
  const metrics = (side) => ((ev[side] || {}).metrics) || {};
  const names = [...new Set([...Object.keys(metrics("champion")), ...Object.keys(metrics("challenger"))])];
  document.getElementById("decision").replaceChildren(
    el("h3", {}, `${record.run_id} — `, el("span", { class: `badge ${record.outcome}` }, record.outcome || "?")),
    el("h4", {}, "why"), el("ul", {}, ...(record.reasons || []).map((r) => el("li", {}, r))),
    el("h4", {}, "metrics"),
    el("table", { class: "compact" }, el("thead", {}, el("tr", {}, el("th", {}, "metric"),
      el("th", {}, `champion v${(record.champion || {}).version ?? "?"}`), el("th", {}, `challenger v${(ev.challenger || {}).version ?? "?"}`))),
      el("tbody", {}, ...names.map((m) => row({}, m, fmt(metrics("champion")[m]), fmt(metrics("challenger")[m]))))),
    el("h4", {}, "criteria"), kv(record.criteria || (record.decision || {}).criteria),
    record.approval ? el("div", {}, el("h4", {}, "approval"), kv(record.approval)) : "",
    record.error ? el("pre", { class: "error" }, record.error) : "",
    el("h4", {}, "MLflow"), mlflow.length ? el("ul", {}, ...mlflow.map((l) => el("li", {}, `${l.role}: `, el("a", { href: l.url, target: "_blank" }, l.run_id))))
      : el("p", { class: "muted" }, "no MLflow run recorded"),
    el("details", {}, el("summary", {}, "whole record (JSON)"), el("pre", {}, JSON.stringify(record, null, 2))));
}

async function refresh() {
  const m = await getJSON("/api/models");
  const champ = m.champion;
  document.getElementById("champion").replaceChildren(champ
    ? el("div", {}, kv(champ), el("h4", {}, "previous"), m.previous ? kv(m.previous) : el("p", { class: "muted" }, "none"))
    : el("p", {}, "no champion yet"));
  document.getElementById("rollout").replaceChildren(
    el("h4", {}, "active"), m.rollout ? kv(m.rollout) : el("p", { class: "muted" }, "no shadow or canary running"),
    el("h4", {}, "last rollout"), m.last_rollout ? kv(m.last_rollout) : el("p", { class: "muted" }, "none"),
    el("h4", {}, "last canary evaluation"), m.last_canary_evaluation ? kv(m.last_canary_evaluation) : el("p", { class: "muted" }, "none"));
  fill(document.querySelector("#decisions tbody"), m.decisions.map((d) => {
    const cm = d.champion_metrics || {}, hm = d.challenger_metrics || {};
    return row({ class: "clickable", "data-run": d.run_id, onclick: () => showDecision(d.run_id) }, d.run_id, time(d.started_at),
      el("span", { class: `badge ${d.outcome}` }, d.outcome || ""), String(d.champion_version ?? ""), String(d.challenger_version ?? ""),
      cm.rmse != null && hm.rmse != null ? `${fmt(cm.rmse)} → ${fmt(hm.rmse)}` : "", (d.reasons || [])[0] || "");
  }));
}

every(refresh, () => 15000);
