// Leaderboard of one benchmark version (GET /api/v1/leaderboards/<benchmark>/?scope=&version=&run=):
// Pass@1 (avg@k) with its 95% CI drawn as a bar, rows whose gap to the leader is within the noise
// marked "≈ leader", the paper's reported rows tagged. Writers upload benchmarks and external
// results here; two rows can be picked for a paired comparison. With ?run=<id> the page also draws
// that run's Pass@1 against the training step, best checkpoint marked.

import { api, bootstrap, ApiError } from "../api.js";
import { h, fmt, fmtTime, showState, setQuery } from "../dom.js";

const boot = bootstrap();
const board = document.getElementById("board");
const params = new URLSearchParams(location.search);
let scope = boot.scope || "team";
let version = params.get("version") || "";
const runFilter = params.get("run") || "";
const allCheckpoints = params.get("all") === "1" || Boolean(runFilter);
const writableTeams = (boot.teams || []).filter((t) => t.role === "owner" || t.role === "member");
const picked = new Set();
let current = null;

const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)}`);

function withCi(p, ci) {
  if (p === null || p === undefined) return "–";
  if (Array.isArray(ci) && ci.length === 2) return `${pct(p)} [${pct(ci[0])}, ${pct(ci[1])}]`;
  return pct(p);
}

/** A 0–100% track with the CI as a band and the point estimate as a tick. */
function ciBar(p, ci) {
  const bar = h("div.cibar", { role: "img", "aria-label": Array.isArray(ci) ? `95% CI ${pct(ci[0])} to ${pct(ci[1])}%` : `Pass@1 ${pct(p)}%` });
  if (Array.isArray(ci)) bar.append(h("span.band", { style: `left:${100 * ci[0]}%;width:${Math.max(0.5, 100 * (ci[1] - ci[0]))}%` }));
  if (typeof p === "number") bar.append(h("span.pt", { style: `left:${100 * p}%` }));
  return bar;
}

function isReported(e) {
  return Boolean(e.is_reference || e.kind === "reference");
}

function vsLeaderTag(e) {
  const v = e.vs_leader;
  if (!v || v.indistinguishable === null || v.indistinguishable === undefined) return null;
  if (!v.indistinguishable) return null;
  const how = v.method === "paired" ? `paired bootstrap 95% CI of the gap ${pct(v.ci[0])} to ${pct(v.ci[1])} points includes 0` : "the two 95% CIs overlap";
  return h("span.tag.tie", { title: `Not distinguishable from the leader: ${how}` }, "≈ leader");
}

function updateCompare() {
  const btn = document.getElementById("compare-btn");
  btn.disabled = picked.size !== 2;
  btn.textContent = picked.size === 2 ? "Compare selected" : `Compare selected (pick ${2 - picked.size} more)`;
}

function render(data) {
  current = data;
  const entries = data.entries || [];
  const info = data.benchmark_info;
  document.getElementById("bench-name").textContent = info ? info.label : data.benchmark;
  document.getElementById("bench-sub").textContent = info
    ? `${info.n_problems} problems · grader ${info.grader} · sha256 ${info.sha256.slice(0, 12)}… · ${info.builtin ? "built-in" : `team ${info.team_name}`}. Pass@1 is avg@k with its 95% CI over problems; “≈ leader” rows are within the noise of the best.`
    : "Pass@1 is avg@k (mean accuracy over k samples per problem) with its 95% confidence interval.";
  const vwrap = document.getElementById("version-wrap");
  const vpick = document.getElementById("version-pick");
  vwrap.hidden = !(data.versions || []).length;
  vpick.replaceChildren(...(data.versions || []).map((v) => h("option", { value: String(v.version), selected: info && v.version === info.version }, v.label)));
  document.getElementById("compare-row").hidden = !entries.some((e) => e.benchmark_sha256);
  if (!entries.length) {
    showState(board, "empty", "No results yet.", scope === "team" ? "Evaluate a checkpoint from its run page (Evaluate…), or add an external result below." : "No evaluation has reported on this benchmark.");
    return;
  }
  const tbody = h("tbody");
  entries.forEach((e, i) => {
    const reported = isReported(e);
    const step = e.step;
    const pickable = Boolean(e.benchmark_sha256);
    const box = pickable ? h("input", { type: "checkbox", "aria-label": `Pick ${e.name} for comparison`, checked: picked.has(e.id),
      onchange: (ev) => { if (ev.target.checked) picked.add(e.id); else picked.delete(e.id); updateCompare(); } }) : null;
    tbody.append(h(`tr${reported ? ".reported" : ""}`, { "data-kind": reported ? "reported" : e.kind || "run", "data-entry": String(e.id) },
      h("td", {}, box),
      h("td.num", {}, String(e.rank ?? i + 1)),
      h("td", {}, e.benchmark_sha256 ? h("a.entry-link", { href: `/leaderboards/entries/${e.id}/` }, e.name || "–") : (e.name || "–"),
        reported ? h("span", {}, " ", h("span.tag.reported", { title: e.source || "" }, "reported")) : null,
        i > 0 ? [" ", vsLeaderTag(e)] : (reported ? null : [" ", h("span.tag.leader", {}, "leader")]),
        e.team_name ? h("div.muted.small", {}, e.team_name) : null),
      h("td.num", {}, withCi(e.pass_at_1, e.pass_at_1_ci)),
      h("td.cicell", {}, ciBar(e.pass_at_1, e.pass_at_1_ci)),
      h("td.num", {}, e.cons_at_k === null || e.cons_at_k === undefined ? "–" : pct(e.cons_at_k)),
      h("td.num", {}, fmt(e.k)), h("td.num", {}, fmt(e.temperature)), h("td.num", {}, fmt(e.top_p)),
      h("td.num", {}, fmt(e.max_tokens)),
      h("td.num", {}, e.truncation_rate === null || e.truncation_rate === undefined ? "–" : `${pct(e.truncation_rate)}%`),
      h("td.small", {}, reported ? h("span.muted", { title: e.source || "" }, "paper") : fmtTime(e.created_at)),
      h("td", {}, e.run ? [h("a", { href: `/runs/${e.run}/` }, `run #${e.run}`), " ",
        h("a.small", { href: `?run=${e.run}&all=1${version ? `&version=${version}` : ""}`, title: "Pass@1 of this run's checkpoints against the step" }, "progress")] : "–"),
      h("td.num", {}, step === null || step === undefined ? "–" : e.run ? h("a", { href: `/runs/${e.run}/#checkpoints` }, `step ${step}`) : `step ${step}`)));
  });
  board.replaceChildren(h("table.data", {}, h("thead", {}, h("tr", {}, h("th", {}, h("span.muted.small", {}, "pick")), h("th.num", {}, "#"), h("th", {}, "Model / run"),
    h("th.num", {}, "Pass@1 % [95% CI]"), h("th", {}, "CI (0–100%)"), h("th.num", {}, "cons@k %"), h("th.num", {}, "k"), h("th.num", {}, "T"), h("th.num", {}, "top_p"),
    h("th.num", {}, "max tokens"), h("th.num", {}, "truncated"), h("th", {}, "date"), h("th", {}, "run"), h("th.num", {}, "checkpoint"))), tbody));
  updateCompare();
}

/** Pass@1 against the step for one run (SVG): a line through its checkpoints, CI whiskers, best marked. */
function renderProgress(entries) {
  const card = document.getElementById("progress-card");
  const el = document.getElementById("progress");
  const pts = entries.filter((e) => typeof e.step === "number").sort((a, b) => a.step - b.step);
  card.hidden = false;
  if (!pts.length) { showState(el, "empty", "No evaluations of this run on this benchmark yet."); return; }
  const best = pts.reduce((m, e) => (e.pass_at_1 > m.pass_at_1 || (e.pass_at_1 === m.pass_at_1 && e.step > m.step) ? e : m), pts[0]);
  // drawn at the card's own width, so labels keep their size
  const W = Math.max(480, Math.round(el.clientWidth || 760)), H = 240, L = 48, R = 24, T = 26, B = 40;
  const xs = pts.map((e) => e.step), x0 = Math.min(...xs), x1 = Math.max(...xs);
  const X = (s) => L + (x1 === x0 ? (W - L - R) / 2 : ((s - x0) / (x1 - x0)) * (W - L - R));
  const Y = (p) => T + (1 - p) * (H - T - B);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  const el_ = (tag, attrs, text) => { const n = document.createElementNS(ns, tag); for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v); if (text !== undefined) n.textContent = text; svg.append(n); return n; };
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`); svg.setAttribute("width", String(W)); svg.setAttribute("height", String(H)); svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Pass@1 by checkpoint step; best ${pct(best.pass_at_1)}% at step ${best.step}`);
  svg.id = "progress-chart";
  for (const g of [0, 0.25, 0.5, 0.75, 1]) {
    el_("line", { x1: L, x2: W - R, y1: Y(g), y2: Y(g), stroke: "#dde2ea" });
    el_("text", { x: L - 6, y: Y(g) + 4, "text-anchor": "end", "font-size": 11, fill: "#566173" }, `${100 * g}%`);
  }
  for (const e of pts) {
    if (Array.isArray(e.pass_at_1_ci)) el_("line", { x1: X(e.step), x2: X(e.step), y1: Y(e.pass_at_1_ci[0]), y2: Y(e.pass_at_1_ci[1]), stroke: "#9fb4d6", "stroke-width": 3 });
    el_("text", { x: X(e.step), y: H - B + 16, "text-anchor": "middle", "font-size": 11, fill: "#566173" }, String(e.step));
  }
  el_("polyline", { points: pts.map((e) => `${X(e.step)},${Y(e.pass_at_1)}`).join(" "), fill: "none", stroke: "#1f5fbf", "stroke-width": 2 });
  for (const e of pts) {
    const c = el_("circle", { cx: X(e.step), cy: Y(e.pass_at_1), r: e === best ? 7 : 4, fill: e === best ? "#f0a500" : "#1f5fbf", "data-step": e.step });
    const t = document.createElementNS(ns, "title"); t.textContent = `step ${e.step}: Pass@1 ${pct(e.pass_at_1)}%`; c.append(t);
  }
  const edge = X(best.step) > W - 140 ? "end" : X(best.step) < L + 140 ? "start" : "middle";
  el_("text", { x: X(best.step), y: Y(best.pass_at_1) - 12, "text-anchor": edge, "font-size": 12, "font-weight": 600, fill: "#8a5a00", id: "best-label" }, `best: step ${best.step} (${pct(best.pass_at_1)}%)`);
  el_("text", { x: (L + W - R) / 2, y: H - 4, "text-anchor": "middle", "font-size": 11, fill: "#566173" }, "checkpoint step");
  el.replaceChildren(svg, h("div.muted.small", {}, `Run #${runFilter}: best checkpoint step ${best.step} (Pass@1 ${pct(best.pass_at_1)}%). Checkpoints whose CI whisker overlaps the best one's are not clearly worse on this benchmark.`));
}

async function loadPicker() {
  const pick = document.getElementById("bench-pick");
  try {
    const [stored, boards] = await Promise.all([api("benchmarks/"), api("leaderboards/")]);
    const names = new Map();
    for (const b of stored) names.set(b.name, b.builtin ? `${b.name} (built-in)` : b.name);
    for (const b of boards) if (!names.has(b.benchmark)) names.set(b.benchmark, b.benchmark);
    if (!names.has(boot.benchmark) && !/^\d+$/.test(boot.benchmark)) names.set(boot.benchmark, boot.benchmark);
    pick.replaceChildren(...[...names].sort().map(([n, label]) => h("option", { value: n, selected: n === boot.benchmark || (current && current.benchmark === n) }, label)));
  } catch { /* the board itself still loads */ }
}

async function load() {
  for (const b of document.querySelectorAll("[data-scope]")) {
    b.setAttribute("aria-pressed", String(b.dataset.scope === scope));
    b.classList.toggle("primary", b.dataset.scope === scope);
  }
  setQuery({ scope, version });
  showState(board, "loading", "Loading leaderboard");
  try {
    const p = { scope, version };
    if (runFilter) p.run = runFilter;
    if (allCheckpoints) p.all = 1;
    const data = await api(`leaderboards/${encodeURIComponent(boot.benchmark)}/`, { params: p });
    render(data);
    if (runFilter) renderProgress(data.entries || []);
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 404) showState(board, "empty", `No leaderboard for “${boot.benchmark}” yet.`, "It appears once an evaluation of this benchmark has been recorded.");
    else showState(board, "error", "Could not load the leaderboard.", exc.message);
  }
}

// ------------------------------------------------------------------------------ writer forms
async function postForm(path, form) {
  const token = (document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/) || [])[1] || boot.csrf_token;
  const resp = await fetch(`/api/v1/${path}`, { method: "POST", body: form, credentials: "same-origin", headers: { "X-CSRFToken": decodeURIComponent(token), Accept: "application/json" } });
  const data = await resp.json().catch(() => null);
  if (!resp.ok) throw new ApiError(resp.status, data);
  return { status: resp.status, data };
}

function setupForms() {
  if (!writableTeams.length) return;
  document.getElementById("writer-forms").hidden = false;
  for (const id of ["upload-team", "ext-team"]) {
    document.getElementById(id).replaceChildren(...writableTeams.map((t) => h("option", { value: String(t.id) }, t.name)));
  }
  if (!/^\d+$/.test(boot.benchmark)) document.getElementById("upload-name").value = current?.benchmark_info?.name || boot.benchmark;
  document.getElementById("upload-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const msg = document.getElementById("upload-msg");
    const form = new FormData();
    form.set("file", document.getElementById("upload-file").files[0]);
    form.set("name", document.getElementById("upload-name").value.trim());
    form.set("team", document.getElementById("upload-team").value);
    msg.className = "small"; msg.textContent = "Uploading…";
    try {
      const { status, data } = await postForm("benchmarks/", form);
      msg.className = "small ok";
      msg.textContent = status === 201 ? `Stored ${data.label}: ${data.n_problems} problems, sha256 ${data.sha256.slice(0, 12)}…` : `Already stored as ${data.label} (same content).`;
      setTimeout(() => location.assign(`/leaderboards/${encodeURIComponent(data.name)}/?version=${data.version}`), 900);
    } catch (exc) {
      msg.className = "small err"; msg.textContent = exc.message;
    }
  });
  document.getElementById("ext-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const msg = document.getElementById("ext-msg");
    let result;
    try { result = JSON.parse(await document.getElementById("ext-file").files[0].text()); }
    catch { msg.className = "small err"; msg.textContent = "The file is not JSON (use fipo eval ... --json)."; return; }
    const target = current?.benchmark_info ? String(current.benchmark_info.id) : boot.benchmark;
    try {
      const entry = await api(`leaderboards/${encodeURIComponent(target)}/entries/`, { method: "POST",
        body: { team: Number(document.getElementById("ext-team").value), model_name: document.getElementById("ext-name").value.trim(), result } });
      msg.className = "small ok"; msg.textContent = `Added ${entry.name}: Pass@1 ${pct(entry.pass_at_1)}%.`;
      load();
    } catch (exc) { msg.className = "small err"; msg.textContent = exc.message; }
  });
}

for (const b of document.querySelectorAll("[data-scope]")) b.addEventListener("click", () => { scope = b.dataset.scope; load(); });
document.getElementById("bench-pick").addEventListener("change", (ev) => location.assign(`/leaderboards/${encodeURIComponent(ev.target.value)}/`));
document.getElementById("version-pick").addEventListener("change", (ev) => { version = ev.target.value; load(); });
document.getElementById("compare-btn").addEventListener("click", () => {
  const [a, b] = [...picked];
  location.assign(`/leaderboards/compare/?a=${a}&b=${b}`);
});
await load();
loadPicker();
setupForms();
