// Entry page: one leaderboard entry's answers, problem by problem (GET /api/v1/leaderboards/entries/<id>/).
// Per problem: correct of k, the consensus answer and whether it is right, truncations and mean
// response length; a row opens to the prompt and every response, the extracted answer highlighted.
// Filters: solved by none, solved by all, flipped against another entry of the same benchmark version.

import { api, bootstrap, ApiError } from "../api.js";
import { h, fmt, showState } from "../dom.js";

const boot = bootstrap();
const root = document.getElementById("entry-root");
const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)}%`);
let entry = null;
let others = [];          // entries of the same benchmark version (for "flipped")
let vsProblems = null;    // id -> problem row of the entry compared against
const state = { filter: boot.vs ? "flipped" : "all", sort: "order", vs: boot.vs || null };

const mean = (xs) => (xs && xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

/** The response with the extracted answer's last occurrence wrapped in <mark> (text nodes only). */
export function highlighted(text, answer, ok) {
  const pre = h("pre.response");
  const at = answer ? text.lastIndexOf(answer) : -1;
  if (at < 0) { pre.append(text); return pre; }
  pre.append(text.slice(0, at), h(`mark.${ok ? "right" : "wrong"}`, { title: ok ? "extracted answer (correct)" : "extracted answer (wrong)" }, answer), text.slice(at + answer.length));
  return pre;
}

function promptText(p) {
  if (Array.isArray(p)) return p.map((m) => `[${m.role}] ${m.content}`).join("\n\n");
  return p ?? "(prompt not stored: the entry's benchmark version is unknown)";
}

function detailRow(p) {
  const k = p.n;
  const blocks = [];
  const responses = p.responses || [];
  for (let i = 0; i < Math.max(responses.length, (p.answers || []).length); i++) {
    const ok = (p.correct_mask || [])[i];
    const ans = (p.answers || [])[i];
    const meta = [`#${i + 1}`, ok ? "correct" : "wrong", ans === null || ans === undefined ? "no answer extracted" : `answer ${ans}`];
    if (p.lengths) meta.push(`${p.lengths[i]} tokens`);
    if (p.truncated && p.truncated[i]) meta.push("truncated");
    blocks.push(h(`div.resp${ok ? ".ok" : ""}`, { "data-i": String(i) }, h("div.small.muted", {}, meta.join(" · ")),
      responses.length ? highlighted(responses[i] ?? "", ans, ok) : h("div.muted.small", {}, "(response text not uploaded)")));
  }
  return h("tr.detail", { hidden: true, "data-detail": p.id }, h("td", { colSpan: 8 },
    h("div.small.muted", {}, `Problem ${p.id} · gold ${p.gold ?? "?"} · ${p.correct} of ${k} correct`),
    h("pre.prompt", {}, promptText(p.prompt)), ...blocks));
}

function rows() {
  let list = [...(entry.problems || [])];
  if (state.filter === "none") list = list.filter((p) => p.correct === 0);
  else if (state.filter === "all_solved") list = list.filter((p) => p.correct === p.n);
  else if (state.filter === "flipped") list = list.filter((p) => vsProblems && vsProblems.has(p.id) && Boolean(vsProblems.get(p.id).cons_correct) !== Boolean(p.cons_correct));
  const len = (p) => mean(p.lengths) ?? -1;
  if (state.sort === "correct_asc") list.sort((a, b) => a.correct / a.n - b.correct / b.n);
  else if (state.sort === "correct_desc") list.sort((a, b) => b.correct / b.n - a.correct / a.n);
  else if (state.sort === "length_desc") list.sort((a, b) => len(b) - len(a));
  return list;
}

function table() {
  const list = rows();
  const wrap = document.getElementById("problems");
  if (!list.length) { showState(wrap, "empty", "No problem matches this filter."); return; }
  const tbody = h("tbody");
  for (const p of list) {
    const detail = detailRow(p);
    const trunc = p.truncated ? p.truncated.filter(Boolean).length : null;
    const vs = vsProblems && vsProblems.get(p.id);
    const toggle = h("button.small", { type: "button", "aria-expanded": "false", "aria-label": `Show the responses to ${p.id}`, onclick: (ev) => {
      detail.hidden = !detail.hidden; ev.currentTarget.setAttribute("aria-expanded", String(!detail.hidden)); ev.currentTarget.textContent = detail.hidden ? "▸" : "▾";
    } }, "▸");
    tbody.append(h("tr", { "data-problem": p.id },
      h("td", {}, toggle), h("td", {}, h("code", {}, p.id)),
      h("td.num", {}, `${p.correct} / ${p.n}`, vs ? h("div.muted.small", {}, `vs ${vs.correct} / ${vs.n}`) : null),
      h("td", {}, p.majority ?? h("span.muted", {}, "none"), " ", h(`span.tag.${p.cons_correct ? "ok" : "bad"}`, {}, p.cons_correct ? "right" : "wrong")),
      h("td", {}, h("code", {}, p.gold ?? "?")),
      h("td.num", {}, trunc === null ? "–" : String(trunc)),
      h("td.num", {}, p.lengths ? fmt(mean(p.lengths), 3) : "–")), detail);
  }
  wrap.replaceChildren(h("table.data#problem-table", {}, h("thead", {}, h("tr", {}, h("th", {}, ""), h("th", {}, "problem"), h("th.num", {}, "correct of k"),
    h("th", {}, "consensus answer"), h("th", {}, "gold"), h("th.num", {}, "truncated"), h("th.num", {}, "mean length"))), tbody));
  document.getElementById("shown").textContent = `${list.length} of ${entry.problems.length} problems`;
}

async function loadVs() {
  vsProblems = null;
  if (!state.vs) return;
  try {
    const other = await api(`leaderboards/entries/${state.vs}/`);
    vsProblems = new Map((other.problems || []).map((p) => [p.id, p]));
  } catch { vsProblems = new Map(); }
}

function controls() {
  const filter = h("select#filter", { "aria-label": "Filter problems", onchange: async (ev) => { state.filter = ev.target.value; if (state.filter === "flipped" && !state.vs && others.length) { state.vs = others[0].id; document.getElementById("vs").value = String(state.vs); await loadVs(); } table(); } },
    ...[["all", "all problems"], ["none", "solved by none"], ["all_solved", "solved by all samples"], ["flipped", "flipped vs another entry"]].map(([v, l]) => h("option", { value: v, selected: v === state.filter }, l)));
  const sort = h("select#sort", { "aria-label": "Sort problems", onchange: (ev) => { state.sort = ev.target.value; table(); } },
    ...[["order", "benchmark order"], ["correct_asc", "hardest first"], ["correct_desc", "easiest first"], ["length_desc", "longest responses first"]].map(([v, l]) => h("option", { value: v }, l)));
  const vs = h("select#vs", { "aria-label": "Entry to compare with", onchange: async (ev) => { state.vs = Number(ev.target.value) || null; await loadVs(); table(); } },
    h("option", { value: "" }, "(none)"), ...others.map((o) => h("option", { value: String(o.id), selected: o.id === state.vs }, `${o.name}${o.step !== null && o.step !== undefined ? ` step ${o.step}` : ""} (${pct(o.pass_at_1)})`)));
  const cmp = h("a.btn", { id: "compare-link", href: "#", onclick: (ev) => { if (!state.vs) { ev.preventDefault(); return; } ev.currentTarget.href = `/leaderboards/compare/?a=${state.vs}&b=${entry.id}`; } }, "Compare with it…");
  return h("div.filters.row", {}, h("label", {}, "Show ", filter), h("label", {}, "Sort ", sort), h("label", {}, "Against ", vs), cmp, h("span.muted.small#shown", {}));
}

function header() {
  const b = entry.benchmark_info;
  const ci = Array.isArray(entry.pass_at_1_ci) ? ` [${pct(entry.pass_at_1_ci[0])}, ${pct(entry.pass_at_1_ci[1])}]` : "";
  const links = [h("a", { href: `/leaderboards/${encodeURIComponent(b ? b.id : entry.benchmark)}/` }, b ? b.label : entry.benchmark)];
  if (entry.run) links.push(" · ", h("a", { href: `/runs/${entry.run}/` }, `run #${entry.run}`), " · ", h("a", { href: `/runs/${entry.run}/#checkpoints` }, `step ${entry.step ?? "final"}`),
    " · ", h("a", { href: `/runs/${entry.run}/#config-details` }, "config"));
  const fig = (k, v) => h("div.figure", {}, h("div.v", {}, v), h("div.k", {}, k));
  return [h("div.page-head", {}, h("div", {}, h("h1", {}, entry.name || `entry ${entry.id}`), h("div.sub", {}, ...links,
      b ? ` · sha256 ${b.sha256.slice(0, 12)}…` : " · benchmark version unknown"))),
    h("div.card", {}, h("div.figures#entry-figures", {}, fig(`Pass@1 (avg@${entry.k ?? "k"})`, pct(entry.pass_at_1) + ci), fig(`cons@${entry.k ?? "k"}`, pct(entry.cons_at_k)),
      fig(`pass@${entry.k ?? "k"}`, pct(entry.pass_at_k)), fig("truncated", pct(entry.truncation_rate)),
      fig("sampling", `T ${fmt(entry.temperature)} · top-p ${fmt(entry.top_p)} · ${fmt(entry.max_tokens)} tokens`)))];
}

async function main() {
  try {
    entry = await api(`leaderboards/entries/${boot.entry_id}/`);
  } catch (exc) {
    showState(root, "error", exc instanceof ApiError && exc.status === 404 ? "Entry not found." : "Could not load the entry.", exc instanceof ApiError && exc.status === 404 ? "It does not exist, or it belongs to a team you are not in." : exc.message);
    return;
  }
  document.title = `${entry.name} · ${entry.benchmark} · FIPO`;
  if (entry.benchmark_id) {
    try {
      const board = await api(`leaderboards/${entry.benchmark_id}/`, { params: { all: 1 } });
      others = (board.entries || []).filter((e) => e.id !== entry.id && e.benchmark_sha256 === entry.benchmark_sha256);
    } catch { others = []; }
  }
  await loadVs();
  root.replaceChildren(...header(), h("section.card", {}, h("h2", {}, "Problems"), controls(), h("div#problems", { style: "overflow:auto" })));
  if (!(entry.problems || []).length) showState(document.getElementById("problems"), "empty", "No per-problem results for this entry.", "Entries from in-training evaluations carry only the summary numbers.");
  else table();
  document.body.dataset.entryReady = "1";
}

main();
