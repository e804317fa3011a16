// Leaderboard of one benchmark (GET /api/v1/leaderboards/<benchmark>/?scope=team|global):
// Pass@1 (avg@k) with its confidence interval and the sampling setup; the paper's reported
// rows are marked "reported". A missing endpoint or benchmark renders an empty state.

import { api, bootstrap, ApiError } from "../api.js";
import { h, fmt, fmtTime, showState, setQuery } from "../dom.js";

const boot = bootstrap();
const board = document.getElementById("board");
let scope = boot.scope || "team";

const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)}`);

/** "56.0 [52.1, 59.8]" from a point estimate and a CI given as [lo, hi], {low, high} or ± half-width. */
function withCi(p, ci) {
  if (p === null || p === undefined) return "–";
  if (Array.isArray(ci) && ci.length === 2) return `${pct(p)} [${pct(ci[0])}, ${pct(ci[1])}]`;
  if (ci && typeof ci === "object" && "low" in ci) return `${pct(ci.low)}–${pct(ci.high)}`.replace(/^/, `${pct(p)} [`) + "]";
  if (typeof ci === "number") return `${pct(p)} ± ${pct(ci)}`;
  return pct(p);
}

function isReported(e) {
  return Boolean(e.is_reference || e.reported || e.kind === "reference" || (e.details && e.details.reported));
}

function runId(e) {
  return e.run && typeof e.run === "object" ? e.run.id : e.run;
}

function render(data) {
  const entries = data.entries || [];
  if (!entries.length) {
    showState(board, "empty", "No results yet.", scope === "team" ? "Evaluations of your teams' checkpoints appear here; switch to Global to see every team." : "No evaluation has reported on this benchmark.");
    return;
  }
  const tbody = h("tbody");
  entries.forEach((e, i) => {
    const reported = isReported(e);
    const id = runId(e);
    const step = e.step ?? e.checkpoint_step;
    const team = e.team_name || (e.team && typeof e.team === "object" ? e.team.name : null);
    tbody.append(h(`tr${reported ? ".reported" : ""}`, { "data-kind": reported ? "reported" : e.kind || "run" },
      h("td.num", {}, String(e.rank ?? i + 1)),
      h("td", {}, e.name || e.label || e.model || "–", reported ? h("span", {}, " ", h("span.tag.reported", { title: e.source || "" }, "reported")) : null,
        team ? h("div.muted.small", {}, team) : null),
      h("td.num", {}, withCi(e.pass_at_1, e.pass_at_1_ci ?? e.ci)),
      h("td.num", {}, e.cons_at_k === null || e.cons_at_k === undefined ? "–" : pct(e.cons_at_k)),
      h("td.num", {}, fmt(e.k)), h("td.num", {}, fmt(e.temperature)), h("td.num", {}, fmt(e.top_p)),
      h("td.num", {}, fmt(e.max_tokens ?? e.max_new_tokens)),
      h("td.num", {}, e.truncation_rate === null || e.truncation_rate === undefined ? "–" : `${pct(e.truncation_rate)}%`),
      h("td.small", {}, reported ? h("span.muted", { title: e.source || "" }, "paper") : fmtTime(e.date || e.created_at)),
      h("td", {}, id ? h("a", { href: `/runs/${id}/` }, `run #${id}`) : "–"),
      h("td.num", {}, step === null || step === undefined ? "–" : id ? h("a", { href: `/runs/${id}/#checkpoints` }, `step ${step}`) : `step ${step}`)));
  });
  board.replaceChildren(h("table.data", {}, h("thead", {}, h("tr", {}, h("th.num", {}, "#"), h("th", {}, "Model / run"),
    h("th.num", {}, "Pass@1 % [95% CI]"), h("th.num", {}, "cons@k %"), h("th.num", {}, "k"), h("th.num", {}, "T"), h("th.num", {}, "top_p"),
    h("th.num", {}, "max tokens"), h("th.num", {}, "truncated"), h("th", {}, "date"), h("th", {}, "run"), h("th.num", {}, "checkpoint"))), tbody));
}

async function load() {
  for (const b of document.querySelectorAll("[data-scope]")) {
    b.setAttribute("aria-pressed", String(b.dataset.scope === scope));
    b.classList.toggle("primary", b.dataset.scope === scope);
  }
  setQuery({ scope });
  showState(board, "loading", "Loading leaderboard");
  try {
    render(await api(`leaderboards/${encodeURIComponent(boot.benchmark)}/`, { params: { scope } }));
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 404) showState(board, "empty", `No leaderboard for “${boot.benchmark}” yet.`, "It appears once an evaluation of this benchmark has been recorded.");
    else showState(board, "error", "Could not load the leaderboard.", exc.message);
  }
}

for (const b of document.querySelectorAll("[data-scope]")) b.addEventListener("click", () => { scope = b.dataset.scope; load(); });
load();
