// The operations page: the dashboard's panels as charts (CloudWatch GetMetricData) and the alarms.
import { getJSON, el, row, fill, time, every } from "/static/common.js";

const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#ea580c", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#475569", "#ca8a04", "#0d9488", "#9333ea"];
const charts = {};
window.driftstackCharts = charts; // for the browser test
const MINUTES = 60; // the last hour, one point per minute

function chartFor(panel) {
  if (charts[panel]) return charts[panel];
  const canvas = el("canvas");
  document.getElementById("panels").append(el("section", { class: "panel" }, el("h2", {}, panel), el("div", { class: "chart" }, canvas)));
  charts[panel] = new window.Chart(canvas, { type: "line", data: { datasets: [] }, options: {
    animation: false, maintainAspectRatio: false, parsing: false,
    scales: { x: { type: "linear", ticks: { callback: (v) => new Date(v).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) } }, y: { beginAtZero: true } },
    plugins: { legend: { position: "bottom" } } } });
  return charts[panel];
}

async function refreshCharts() {
  const metrics = await getJSON(`/api/metrics?minutes=${MINUTES}`);
  for (const [panel, series] of Object.entries(metrics)) {
    const chart = chartFor(panel);
    chart.data.datasets = series.map((s, i) => ({ label: s.label, borderColor: PALETTE[i % PALETTE.length], pointRadius: 2,
      data: s.points.map(([t, v]) => ({ x: Date.parse(t), y: v })) }));
    chart.options.scales.x.min = Date.now() - MINUTES * 60e3; // the whole window, data or not
    chart.options.scales.x.max = Date.now();
    chart.update("none");
  }
}

async function refreshAlarms() {
  const alarms = await getJSON("/api/alarms");
  fill(document.querySelector("#alarms tbody"), alarms.length ? alarms.map((a) => row({ "data-alarm": a.alarm },
    a.alarm, el("span", { class: `badge ${a.state}` }, a.state), time(a.since), a.reason)) : [row({}, "no alarms in the stack outputs")]);
}

// Each on its own: metrics that cannot be read must not hide the alarms.
every(refreshAlarms, () => 30000);
every(refreshCharts, () => 30000);
