// Run page: status and transitions, actions, config, log tail, and live charts grouped as the
// metric catalog groups them. Snapshot (GET run + metrics) then the websocket from the
// snapshot's stream_pos; on reconnect the stream resumes from the last pos it saw.

import { api, bootstrap, ApiError } from "../api.js";
import { h, fmt, fmtPct, fmtTime, statusBadge, showState, debounce } from "../dom.js";
import { LiveStream } from "../live.js";
import { SeriesChart } from "../charts.js";
import { loadCatalog, planCharts } from "../catalog.js";
import { EvalPanel } from "../evaljobs.js";
import { probeMark } from "../probe.js";

const boot = bootstrap();
const runId = boot.run_id;
const root = document.getElementById("run-root");
const FINAL = new Set(["succeeded", "failed", "cancelled", "lost"]);

let run = null;
let catalog = null;
let charts = new Map();     // chart id -> SeriesChart
let chartKeys = new Set();
let stream = null;
let logOffset = 0;
let logTimer = null;
let evals = null;           // EvalPanel: eval jobs of this run and the Evaluate… dialog
const els = {};

function header() {
  const actions = h("div.row", { id: "run-actions" });
  if (run.can_launch && run.status === "draft") actions.append(h("button.primary", { type: "button", id: "launch-btn", onclick: () => act("launch") }, "Launch"));
  if (run.can_cancel) actions.append(h("button.danger", { type: "button", id: "cancel-btn", onclick: () => act("cancel") }, "Cancel run"));
  // A lost, failed or cancelled run with a checkpoint continues as the same run (a new segment below).
  if (run.can_resume) actions.append(h("button.primary", { type: "button", id: "resume-btn", onclick: () => act("resume/"),
    title: "Continue this run from its newest checkpoint" }, "Resume"));
  actions.append(h("a.btn", { href: `/runs/new/?from=${run.id}` }, "Clone"));
  actions.append(h("a.btn", { href: `/runs/${run.id}/samples/`, id: "samples-link" }, "Samples"));
  actions.append(h("a.btn", { href: `/compare/?runs=${run.id}` }, "Compare…"));
  if (run.can_launch && run.status === "draft") actions.append(h("button.danger", { type: "button", onclick: del }, "Delete draft"));
  return h("div.page-head", {},
    h("div", {}, h("h1", {}, run.name, " ", h("span", { id: "run-status" }, statusBadge(run.status))),
      h("div.sub", {}, `#${run.id} · team ${run.team ? run.team.name : "?"} · ${run.preset || "custom config"} · ${run.launcher} launcher · by ${run.created_by || "?"} · created ${fmtTime(run.created_at)}`)),
    actions);
}

function figures() {
  const s = run.summary || {};
  const fig = (k, v, id) => h("div.figure", {}, h("div.v", { id }, v), h("div.k", {}, k));
  return h("div.figures", { id: "figures" },
    fig("step", fmt(run.last_step), "fig-step"), fig("reward (mean)", fmt(s["reward/mean"]), "fig-reward"),
    fig("accuracy", fmtPct(s["accuracy/mean"]), "fig-acc"), fig("response length (mean)", fmt(s["response_length/mean"], 3), "fig-len"),
    fig("last heartbeat", run.last_heartbeat ? fmtTime(run.last_heartbeat) : "–", "fig-hb"));
}

function transitions() {
  const list = h("ol.timeline.scroll", { id: "transitions", tabindex: "0", "aria-label": "Status history" });
  for (const t of run.transitions || []) {
    // queued after a job ended = Resume: the start of a new segment of the same run
    const resumed = t.to === "queued" && t.from && t.from !== "draft";
    list.append(h(resumed ? "li.segment" : "li", {}, resumed ? h("span.badge", {}, "resumed") : null, resumed ? " " : null,
      h("strong", {}, `${t.from || "∅"} → ${t.to}`), ` · ${fmtTime(t.at)}`, t.reason ? h("div.muted.small", {}, t.reason) : null));
  }
  if (!(run.transitions || []).length) list.append(h("li.muted", {}, "No transitions yet."));
  return list;
}

function checkpoints() {
  // newest first: the one to resume or evaluate from is usually the latest
  const list = h("ul.timeline.scroll", { id: "checkpoints", tabindex: "0", "aria-label": "Checkpoints, newest first" });
  const cps = [...(run.checkpoints || [])].reverse();
  cps.forEach((c, i) => {
    const final = i === 0 && FINAL.has(run.status);
    list.append(h("li", { "data-step": String(c.step) }, `step ${c.step}${final ? " (final model)" : ""} · `, h("code", {}, c.uri), ` · ${fmtTime(c.at)} `,
      evals ? evals.button(c.step) : null));
  });
  if (!(run.checkpoints || []).length) list.append(h("li.muted", {}, "No checkpoints yet."));
  return list;
}

function render() {
  const launchError = new URLSearchParams(location.search).get("launch_error");
  els.charts = h("div", { id: "charts" });
  els.log = h("pre.log", { id: "log", tabindex: "0", "aria-label": "Log tail", "data-empty": "No log output yet." }, run.log_tail || "");
  logOffset = null;
  root.replaceChildren(...[
    header(),
    launchError ? h("div.banner.error", { role: "alert" }, `The run was created but not launched: ${launchError}`) : null,
    h("div.card", {}, figures()),
    h("div.grid2", {},
      h("section.card", {}, h("h2", {}, "Status history"), transitions()),
      h("section.card", {}, h("h2", {}, "Checkpoints"), checkpoints())),
    evals ? evals.card : null,
    h("section.card", {}, h("details", { id: "config-details" }, h("summary", {}, "Configuration"),
      h("pre.config", {}, JSON.stringify(run.config, null, 2)))),
    h("section", { "aria-labelledby": "charts-h" }, h("h2.group-head", { id: "charts-h" }, "Metrics"), els.charts),
    h("section.card", {}, h("h2", {}, "Log"), els.log)].filter(Boolean));
}

function refreshHeader() {
  const head = root.querySelector(".page-head");
  if (head) head.replaceWith(header());
  const fig = document.getElementById("figures");
  if (fig) fig.replaceWith(figures());
  const tr = document.getElementById("transitions");
  if (tr) tr.replaceWith(transitions());
  const cp = document.getElementById("checkpoints");
  if (cp) cp.replaceWith(checkpoints());
}

async function act(what) {
  if (what === "cancel" && !window.confirm(`Cancel run “${run.name}”?`)) return;
  try {
    run = { ...run, ...(await api(`runs/${runId}/${what}`, { method: "POST" })) };
    refreshHeader();
    startLogPolling();
  } catch (exc) {
    window.alert(exc instanceof ApiError ? exc.message : String(exc));
  }
}

async function del() {
  if (!window.confirm(`Delete the draft “${run.name}”?`)) return;
  try { await api(`runs/${runId}/`, { method: "DELETE" }); location.assign("/runs/"); }
  catch (exc) { window.alert(exc.message); }
}

// ----------------------------------------------------------------------------------- charts
async function buildCharts(keys) {
  chartKeys = new Set(keys);
  charts = new Map();
  if (!keys.length) {
    showState(els.charts, "empty", "No metrics yet.", run.status === "draft" ? "Launch the run; its charts appear with the first step." : "Charts appear with the first logged step.");
    return;
  }
  const plan = planCharts(catalog, keys);
  const grid = h("div.charts");
  els.charts.replaceChildren(grid);
  for (const c of plan) {
    const plot = h("div.chart", { role: "img", "aria-label": `${c.title}: ${c.keys.join(", ")}` });
    const meaning = c.keys.map((k) => { const m = catalog.metrics.get(k); return m ? `${k}: ${m.meaning}` : k; }).join("\n");
    const label = c.keys.length <= 3 ? c.keys.join(", ") : `${c.keys.slice(0, 2).join(", ")} + ${c.keys.length - 2} more`;
    // cards flow two or three to a row; each names its catalog group above its metrics
    grid.append(h("div.chart-card", { "data-chart": c.id, "data-group": c.group }, h("div.group-label", {}, c.groupTitle),
      h("h3", { title: meaning }, label, h("span.muted", {}, c.unit)), plot));
    const chart = new SeriesChart(plot, { specs: c.keys.map((k) => ({ run: runId, key: k, name: k })), yTitle: c.unit });
    charts.set(c.id, chart);
  }
  await Promise.all([...charts.values()].map((c) => c.load().catch((exc) => {
    c.el.replaceChildren(h("div.state.error", { role: "alert" }, "Could not load this chart: ", exc.message));
  })));
  document.body.dataset.chartsReady = String(charts.size);
}

const rebuildForNewKeys = debounce(async () => {
  try {
    const { keys } = await api(`runs/${runId}/metrics`);
    if (keys.some((k) => !chartKeys.has(k))) await buildCharts(keys);
  } catch { /* the next metric item retries */ }
}, 400);

function onMetric(data) {
  const values = data.values || {};
  const step = data.step;
  let unknown = false;
  for (const k of Object.keys(values)) if (!chartKeys.has(k)) unknown = true;
  for (const chart of charts.values()) chart.append(runId, step, values);
  if (unknown) rebuildForNewKeys();
  if (typeof step === "number" && (run.last_step === null || step > run.last_step)) run.last_step = step;
  const s = { ...(run.summary || {}) };
  for (const k of ["reward/mean", "accuracy/mean", "response_length/mean"]) if (k in values) s[k] = values[k];
  run.summary = s;
  if (!figuresQueued) { figuresQueued = true; requestAnimationFrame(showFigures); }
}

// The key figures change with every metric item; they are written once per frame, not per item.
let figuresQueued = false;
function showFigures() {
  figuresQueued = false;
  const s = run.summary || {};
  const set = (id, v) => { const el = document.getElementById(id); if (el && el.textContent !== v) el.textContent = v; };
  set("fig-step", fmt(run.last_step)); set("fig-reward", fmt(s["reward/mean"]));
  set("fig-acc", fmtPct(s["accuracy/mean"])); set("fig-len", fmt(s["response_length/mean"], 3));
}

const refetchRun = debounce(async () => {
  try { run = { ...run, ...(await api(`runs/${runId}/`)) }; refreshHeader(); } catch { /* keep what we show */ }
}, 150);

function onItem(item) {
  const d = item.data || {};
  switch (item.type) {
    case "metric": onMetric(d); break;
    case "status":
      run.status = d.status || d.to || run.status;
      run.transitions = [...(run.transitions || []), { at: d.at, from: d.from, to: run.status, reason: d.reason || "" }];
      refreshHeader();
      refetchRun();            // can_cancel / can_launch follow the status
      startLogPolling();
      break;
    case "checkpoint":
      run.checkpoints = [...(run.checkpoints || []), { step: d.step, uri: d.uri, at: d.at }];
      refreshHeader();
      refetchRun();            // the server lists only checkpoints still on disk (rotation deletes old ones)
      break;
    case "eval":
      if (typeof d.pass_at_1 === "number") onMetric({ step: d.step, values: { "eval/pass_at_1": d.pass_at_1 } });
      break;
    case "log": pollLogSoon(); break;
    case "eval_job": if (evals) evals.onItem(d); break;
    default: break;
  }
}

// -------------------------------------------------------------------------------------- log
async function pollLog() {
  try {
    const r = await api(`runs/${runId}/log`, { params: { offset: logOffset ?? 0 } });
    if (logOffset === null) els.log.textContent = r.text;          // first read replaces the snapshot tail
    else if (r.text) {
      const stick = els.log.scrollTop + els.log.clientHeight >= els.log.scrollHeight - 8;
      els.log.append(r.text);
      if (els.log.textContent.length > 400000) els.log.textContent = els.log.textContent.slice(-200000);
      if (stick) els.log.scrollTop = els.log.scrollHeight;
    }
    logOffset = r.offset;
    if (!els.log.textContent) els.log.textContent = "";
  } catch { /* transient; the next poll retries */ }
}

// The log is read when the stream says there is new output (a `log` item) and otherwise every
// 10 s while the run is active (a job's stdout reaches the log file without stream items). With
// many pages open this keeps the server's work per page small.
const pollLogSoon = debounce(() => pollLog(), 300);

function startLogPolling() {
  clearTimeout(logTimer);
  const tick = async () => {
    await pollLog();
    if (!FINAL.has(run.status) && run.status !== "draft") logTimer = setTimeout(tick, 10000);
  };
  tick();
}

// ------------------------------------------------------------------------------------- main
async function main() {
  // the three snapshot requests overlap
  const keysPromise = api(`runs/${runId}/metrics`).catch(() => ({ keys: [] }));
  try {
    [run, catalog] = await Promise.all([api(`runs/${runId}/`), loadCatalog()]);
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 404) {
      showState(root, "error", "Run not found.", "It does not exist, or it belongs to a team you are not in.");
    } else showState(root, "error", "Could not load the run.", exc.message);
    document.title = "Run not found · FIPO";
    return;
  }
  document.title = `${run.name} · FIPO`;
  const role = (boot.teams || []).find((t) => run.team && t.id === run.team.id);
  evals = new EvalPanel(run, Boolean(role && (role.role === "owner" || role.role === "member")));
  render();
  evals.load();
  const { keys } = await keysPromise;
  probeMark("fipo:snapshot");
  await buildCharts(keys || []);
  probeMark("fipo:charts");
  stream = new LiveStream(`/ws/runs/${runId}/`, {
    after: typeof run.stream_pos === "number" ? run.stream_pos : null, onItem,
    onGone: () => showState(root, "error", "Run not found.", "The live stream was refused for this run."),
  }).start();
  startLogPolling();
}

main();
