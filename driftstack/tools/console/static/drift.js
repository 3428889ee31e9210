// The drift page: PSI per feature and prediction PSI over the checks, thresholds drawn; the checks'
// verdicts, reasons and reports.
import { getJSON, el, row, fill, fmt, time, every } from "/static/common.js";

const PALETTE = ["#2563eb", "#16a34a", "#db2777", "#ea580c", "#7c3aed", "#0891b2", "#65a30d", "#b91c1c", "#475569", "#ca8a04", "#0d9488", "#9333ea"];
const charts = {};

// PSI per feature on a log axis: one feature far past the threshold (PSI 18) would flatten all the others
// on a linear one. A log axis has no 0: values below FLOOR are drawn at FLOOR (the table has the exact ones).
const FLOOR = 0.001;
const LINEAR = { beginAtZero: true, title: { display: true, text: "PSI" } };
const LOG = { type: "logarithmic", min: FLOOR, title: { display: true, text: `PSI (log scale; < ${FLOOR} drawn at ${FLOOR})` } };

function lineChart(id, labels, datasets, y = LINEAR) {
  if (charts[id]) { charts[id].data.labels = labels; charts[id].data.datasets = datasets; charts[id].update("none"); return; }
  charts[id] = new window.Chart(document.getElementById(id), {
    type: "line", data: { labels, datasets },
    options: { animation: false, maintainAspectRatio: false, interaction: { mode: "nearest", intersect: false },
      scales: { y }, plugins: { legend: { position: "bottom" } } },
  });
}

const floored = (v) => (v === null || v === undefined ? null : Math.max(v, FLOOR));

function threshold(value, n) {
  return { label: `threshold ${value}`, data: Array(n).fill(value), borderColor: "#dc2626", borderDash: [6, 4], pointRadius: 0, borderWidth: 1.5 };
}

async function refresh() {
  const { checks, thresholds } = await getJSON("/api/drift");
  window.driftstackChecks = checks; // for the browser test
  const labels = checks.map((c) => time(c.checked_at).slice(5, 16));
  const features = [...new Set(checks.flatMap((c) => Object.keys(c.feature_psi)))];
  lineChart("feature-psi", labels, [
    ...features.map((f, i) => ({ label: f, data: checks.map((c) => floored(c.feature_psi[f])), borderColor: PALETTE[i % PALETTE.length], spanGaps: true })),
    threshold(thresholds.psi_threshold, checks.length)], LOG);
  lineChart("prediction-psi", labels, [
    { label: "prediction", data: checks.map((c) => c.prediction_psi ?? null), borderColor: "#111827", spanGaps: true },
    threshold(thresholds.prediction_psi_threshold, checks.length)]);
  document.getElementById("check-count").textContent = `(${checks.length}, newest first)`;
  fill(document.querySelector("#checks tbody"), [...checks].reverse().map((c) => row({ "data-check": c.check_id },
    time(c.checked_at), el("span", { class: `badge ${c.status}` }, c.status), String(c.samples ?? ""),
    (c.drifted_features || []).join(", "), fmt(c.max_psi), fmt(c.prediction_psi),
    el("ul", {}, ...(c.reasons || []).map((r) => el("li", {}, r))), (c.execution || {}).message || "",
    c.has_report ? el("a", { href: `/drift/report/${encodeURIComponent(c.check_id)}`, target: "_blank" }, "report") : "")));
}

every(refresh, () => 15000);
