// Runs list: filters in the URL (bookmarkable), live status and figures from /ws/runs/,
// actions (open, clone, cancel) shown only where the API says the user may.

import { api, bootstrap, ApiError } from "../api.js";
import { h, fmt, fmtPct, ago, statusBadge, showState, debounce, setQuery } from "../dom.js";
import { LiveStream } from "../live.js";

const boot = bootstrap();
const tableBox = document.getElementById("runs-table");
const fStatus = document.getElementById("f-status");
const fTeam = document.getElementById("f-team");
const fQ = document.getElementById("f-q");
const compareBtn = document.getElementById("compare-selected");
const rows = new Map();       // run id -> {run, tr}
const selected = new Set();
let stream = null;

for (const t of boot.teams || []) fTeam.append(h("option", { value: String(t.id) }, `${t.name} (${t.role})`));
const q0 = new URLSearchParams(location.search);
fStatus.value = q0.get("status") || "";
fTeam.value = q0.get("team") || "";
fQ.value = q0.get("q") || "";

function figureCells(run) {
  const s = run.summary || {};
  return [
    h("td.num", { "data-col": "step" }, fmt(run.last_step)),
    h("td.num", { "data-col": "reward" }, fmt(s["reward/mean"])),
    h("td.num", { "data-col": "accuracy" }, fmtPct(s["accuracy/mean"])),
    h("td.num", { "data-col": "length" }, fmt(s["response_length/mean"], 3)),
  ];
}

function actions(run) {
  const box = h("div.row");
  box.append(h("a.btn.small", { href: run.url || `/runs/${run.id}/`, "aria-label": `Open ${run.name}` }, "Open"));
  box.append(h("a.btn.small", { href: `/runs/new/?from=${run.id}`, "aria-label": `Clone ${run.name}` }, "Clone"));
  if (run.can_launch && run.status === "draft") {
    box.append(h("button.small", { type: "button", onclick: (e) => act(run, "launch", e.target) }, "Launch"));
  }
  if (run.can_cancel) {
    box.append(h("button.small.danger", { type: "button", "data-action": "cancel",
      onclick: (e) => act(run, "cancel", e.target), "aria-label": `Cancel ${run.name}` }, "Cancel"));
  }
  return box;
}

async function act(run, what, btn) {
  if (what === "cancel" && !window.confirm(`Cancel run “${run.name}”?`)) return;
  btn.disabled = true;
  try {
    const detail = await api(`runs/${run.id}/${what}`, { method: "POST" });
    upsert(detail);
  } catch (exc) {
    btn.disabled = false;
    window.alert(exc instanceof ApiError ? exc.message : String(exc));
  }
}

function rowFor(run) {
  const check = h("input", { type: "checkbox", "aria-label": `Select ${run.name} for comparison`, checked: selected.has(run.id),
    onchange: (e) => { if (e.target.checked) selected.add(run.id); else selected.delete(run.id); compareBtn.disabled = selected.size < 2; } });
  return h("tr", { "data-run": String(run.id) },
    h("td", {}, check),
    h("td", {}, h("a", { href: run.url || `/runs/${run.id}/` }, run.name), h("div.muted.small", {}, `#${run.id} · ${run.preset || "custom"} · ${run.created_by || ""}`)),
    h("td", {}, run.team ? run.team.name : "–"),
    h("td", { "data-col": "status" }, statusBadge(run.status)),
    ...figureCells(run),
    h("td.small.muted", { title: run.updated_at || "" }, ago(run.updated_at)),
    h("td", {}, actions(run)));
}

function upsert(run) {
  const known = rows.get(run.id);
  const merged = known ? { ...known.run, ...run } : run;
  const tr = rowFor(merged);
  if (known) known.tr.replaceWith(tr);
  rows.set(run.id, { run: merged, tr });
}

function render(list) {
  rows.clear();
  if (!list.length) {
    const filtered = fStatus.value || fTeam.value || fQ.value;
    showState(tableBox, "empty", filtered ? "No runs match these filters." : "No runs yet.",
      filtered ? "Clear a filter to see more." : "Create one from a preset with “New run”.");
    return;
  }
  const tbody = h("tbody");
  for (const run of list) { const tr = rowFor(run); rows.set(run.id, { run, tr }); tbody.append(tr); }
  const table = h("table.data", {}, h("thead", {}, h("tr", {},
    h("th", {}, h("span.skip", {}, "select")), h("th", {}, "Run"), h("th", {}, "Team"), h("th", {}, "Status"),
    h("th.num", {}, "Step"), h("th.num", {}, "Reward"), h("th.num", {}, "Accuracy"), h("th.num", {}, "Mean length"),
    h("th", {}, "Updated"), h("th", {}, "Actions"))), tbody);
  tableBox.replaceChildren(table);
}

let loadSeq = 0;
async function load() {
  const seq = ++loadSeq;
  setQuery({ status: fStatus.value, team: fTeam.value, q: fQ.value });
  try {
    const data = await api("runs/", { params: { status: fStatus.value, team: fTeam.value, q: fQ.value } });
    if (seq !== loadSeq) return;
    render(data.results || []);
    if (!stream) {
      // the user stream carries status changes; after a reconnect the list is simply refetched
      stream = new LiveStream("/ws/runs/", { after: typeof data.stream_pos === "number" ? data.stream_pos : null, onItem,
        onReconnect: reload }).start();
    }
  } catch (exc) {
    if (seq === loadSeq) showState(tableBox, "error", "Could not load runs.", exc.message);
  }
}
const reload = debounce(load, 250);

/** Live items of the user's stream: status changes move badges; metrics refresh the figures. */
function onItem(item) {
  const data = item.data || {};
  const id = data.run ?? data.run_id;
  if (item.type === "status") {
    const known = rows.get(id);
    if (!known) { reload(); return; }   // a new run (or one entering the filter): refetch the page
    if (fStatus.value && data.status !== fStatus.value) { reload(); return; }
    // can_cancel/can_launch depend on the new status: refetch that run's row
    api(`runs/${id}/`).then(upsert).catch(() => upsert({ id, status: data.status }));
  } else if (item.type === "metric" && rows.has(id)) {
    const known = rows.get(id);
    const v = data.values || {};
    const summary = { ...(known.run.summary || {}) };
    // The API's summary carries every key the list shows (metrics_catalog.RUN_SUMMARY_KEYS): follow those.
    for (const k of Object.keys(summary)) if (k in v) summary[k] = v[k];
    upsert({ id, last_step: Math.max(known.run.last_step ?? -1, data.step ?? -1), summary });
  }
}

// Key figures of running runs move with every step; the user stream only carries status changes,
// so refresh the list quietly every 15 s while something runs (cheap: one request).
setInterval(() => {
  if (document.hidden) return;
  if ([...rows.values()].some(({ run }) => ["running", "starting", "queued"].includes(run.status))) load();
}, 15000);

fStatus.addEventListener("change", load);
fTeam.addEventListener("change", load);
fQ.addEventListener("input", reload);
compareBtn.addEventListener("click", () => { location.href = `/compare/?runs=${[...selected].join(",")}`; });
load();
