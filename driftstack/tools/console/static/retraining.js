// The retraining page: the state machine drawn from its definition, the selected execution's
// states coloured from its history, polled every 1.5 s until the execution ends.
import cytoscape from "/assets/cytoscape/dist/cytoscape.esm.min.mjs";
import { getJSON, el, row, fill, fmt, time, every } from "/static/common.js";

cytoscape.use(window.cytoscapeDagre);
const COLORS = { "not-reached": "#e5e7eb", running: "#facc15", succeeded: "#4ade80", caught: "#fb923c", failed: "#f87171" };
let cy = null, selected = new URLSearchParams(location.search).get("execution"), current = null, chosenState = null;

function drawGraph(machine) {
  document.getElementById("machine-name").textContent = `State machine ${machine.name}`;
  const elements = [
    ...machine.graph.nodes.map((n) => ({ data: { ...n, status: "not-reached" } })),
    ...machine.graph.edges.map((e) => ({ data: e })),
  ];
  cy = cytoscape({
    container: document.getElementById("graph"), elements,
    layout: { name: "dagre", rankDir: "TB", nodeSep: 30, rankSep: 30 },
    style: [
      { selector: "node", style: { label: "data(label)", shape: "round-rectangle", width: (n) => Math.max(50, n.data("label").length * 7.2 + 12), height: 26, "text-valign": "center", "font-size": 12, "background-color": (n) => COLORS[n.data("status")],
          "border-width": 1, "border-color": "#6b7280" } },
      { selector: "node[type = 'Start'], node[type = 'End']", style: { shape: "ellipse", "background-color": "#374151", color: "#fff", width: 50 } },
      { selector: "node[type = 'Choice']", style: { shape: "diamond", height: 44 } },
      { selector: "node:parent", style: { "text-valign": "top", "background-opacity": 0.15 } },
      { selector: "node:selected", style: { "border-width": 3, "border-color": "#2563eb" } },
      { selector: "edge", style: { width: 1.5, "curve-style": "bezier", "target-arrow-shape": "triangle", "font-size": 9,
          label: "data(label)", "text-rotation": "autorotate", "text-background-color": "#fff", "text-background-opacity": 0.8 } },
      // Catch routes: dashed red, unlabelled (nearly every task has one; a label on each hides the graph).
      { selector: "edge[kind = 'catch']", style: { "line-style": "dashed", "line-color": "#fca5a5", "target-arrow-color": "#fca5a5", label: "" } },
      { selector: "edge[kind = 'choice'], edge[kind = 'default']", style: { "line-color": "#60a5fa", "target-arrow-color": "#60a5fa" } },
    ],
  });
  window.driftstackGraph = cy; // for the browser test and for poking at it from the devtools
  cy.on("tap", "node", (evt) => showStep(evt.target.id()));
}

function stateRows(exe) {
  const tbody = document.querySelector("#states tbody");
  fill(tbody, cy.nodes().filter((n) => !["Start", "End"].includes(n.data("type"))).map((n) => {
    const s = (exe && exe.states[n.id()]) || {};
    const status = s.status || "not-reached";
    return row({ "data-state": n.id(), "data-status": status, onclick: () => showStep(n.id()) },
      n.id(), n.data("type"), el("span", { class: `st st-${status}` }, status + (s.visits > 1 ? ` ×${s.visits}` : "")));
  }));
}

function pretty(text) {
  if (text === null || text === undefined) return "";
  try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return String(text); }
}

function showStep(name) {
  chosenState = name;
  const s = (current && current.states[name]) || null;
  const box = document.getElementById("step-detail");
  box.classList.remove("muted");
  if (!s) { box.replaceChildren(el("h3", {}, name), el("p", { class: "muted" }, "not reached in this execution")); return; }
  const parts = [el("h3", {}, `${name} — ${s.status}`), el("p", { class: "muted" }, `entered ${time(s.entered)}${s.exited ? `, exited ${time(s.exited)}` : ""}`)];
  if (s.error) parts.push(el("h4", {}, "error"), el("pre", { class: "error" }, `${s.error}\n${pretty(s.cause)}`));
  parts.push(el("h4", {}, "input"), el("pre", {}, pretty(s.input)));
  if (s.output !== null && s.output !== undefined) parts.push(el("h4", {}, "output"), el("pre", {}, pretty(s.output)));
  box.replaceChildren(...parts);
}

function colour(exe) {
  cy.batch(() => cy.nodes().forEach((n) => {
    if (["Start", "End"].includes(n.data("type"))) return;
    n.data("status", (exe && exe.states[n.id()] && exe.states[n.id()].status) || "not-reached");
  }));
}

function showApproval(exe) {
  const box = document.getElementById("approval");
  box.hidden = !exe || !exe.approval || exe.terminal;
  if (box.hidden) return;
  const { requested_at, reasons = [], evaluation = {} } = exe.approval;
  const rmse = (side) => fmt(((evaluation[side] || {}).metrics || {}).rmse);
  document.getElementById("approval-details").replaceChildren(
    `since ${time(requested_at)} — challenger v${(evaluation.challenger || {}).version ?? "?"}, RMSE champion ${rmse("champion")} → challenger ${rmse("challenger")}`,
    el("ul", {}, ...reasons.map((r) => el("li", {}, r))));
}

async function answer(decision) {
  const reason = document.getElementById("approval-reason").value;
  const result = document.getElementById("approval-result");
  try {
    const out = await getJSON(`/api/approvals/${encodeURIComponent(current.name)}`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ decision, reason }) });
    result.textContent = `${out.approved ? "approved" : "rejected"} by ${out.by}`;
    await refreshExecution();
  } catch (err) { result.textContent = err.message; }
}
document.getElementById("approve").onclick = () => answer("approve");
document.getElementById("reject").onclick = () => answer("reject");

async function refreshExecution() {
  if (!selected) return;
  current = await getJSON(`/api/executions/${encodeURIComponent(selected)}`);
  document.getElementById("execution-head").replaceChildren(
    el("strong", {}, current.name), " ", el("span", { class: `badge ${current.status}`, id: "execution-status" }, current.status),
    ` started ${time(current.started)}${current.stopped ? `, stopped ${time(current.stopped)}` : ""}`,
    current.error ? el("span", { class: "error" }, ` ${current.error}`) : "");
  colour(current);
  stateRows(current);
  showApproval(current);
  if (chosenState) showStep(chosenState);
  fill(document.querySelector("#events tbody"), [...current.events].reverse().map((e) =>
    row({ class: /Failed|TimedOut|Aborted/.test(e.type) ? "error" : "" }, String(e.id), time(e.timestamp), e.type, e.state, e.detail)));
}

async function refreshList() {
  const list = await getJSON("/api/executions");
  if (!selected && list.length) selected = list[0].name;
  fill(document.getElementById("executions"), list.length ? list.map((x) => el("li", {
    class: x.name === selected ? "selected" : "", "data-execution": x.name,
    onclick: () => { selected = x.name; history.replaceState(null, "", `?execution=${encodeURIComponent(x.name)}`); chosenState = null; tick(); },
  }, el("span", { class: `badge ${x.status}` }, x.status), " ", x.name, el("div", { class: "muted" }, time(x.started)))) : [el("li", { class: "muted" }, "no executions yet")]);
}

async function tick() {
  await refreshList();
  await refreshExecution();
}

drawGraph(await getJSON("/api/state-machine"));
stateRows(null);
every(tick, () => (current && !current.terminal ? 1500 : 5000));
