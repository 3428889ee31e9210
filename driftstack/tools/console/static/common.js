// Shared by the pages: fetch JSON, build table rows safely (text, never HTML), refresh on a timer.
export async function getJSON(url, options) {
  const resp = await fetch(url, options);
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(body.error || body.detail || `${resp.status} ${url}`);
  return body;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick") node.onclick = v; else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

// A table row: each cell a <td> (text or a node).
export function row(attrs, ...cells) {
  return el("tr", attrs, ...cells.map((c) => el("td", {}, c)));
}

export function fill(tbody, rows) {
  tbody.replaceChildren(...rows);
}

export function fmt(x, digits = 3) {
  return x === null || x === undefined || Number.isNaN(x) ? "" : Number(x).toFixed(digits);
}

export function time(s) {
  return s ? String(s).replace("T", " ").slice(0, 19) : "";
}

// Run `step` now and again after `delay()` ms (delay may change: fast while an execution runs).
export function every(step, delay) {
  const run = async () => {
    try {
      await step();
      document.getElementById("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      document.getElementById("refreshed").textContent = `refresh failed: ${err.message}`;
    }
    setTimeout(run, delay());
  };
  run();
}
