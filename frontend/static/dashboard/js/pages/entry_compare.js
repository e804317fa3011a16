// Two entries on one benchmark version (GET /api/v1/leaderboards/compare/?a=&b=): B − A in Pass@1
// with its paired bootstrap 95% CI over problems, per-problem wins / losses / ties of B, a plain
// sentence, and the problems side by side.

import { api, bootstrap, ApiError } from "../api.js";
import { h, showState } from "../dom.js";

const boot = bootstrap();
const root = document.getElementById("cmp-root");
const pts = (v) => `${(100 * v).toFixed(1)}`;
const pct = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)}%`);

/** The CI of the difference on a −max..+max axis, zero marked. */
function diffBar(diff, [lo, hi]) {
  const m = Math.max(0.05, Math.abs(lo), Math.abs(hi)) * 1.1;
  const X = (v) => 50 + (50 * v) / m;
  return h("div.diffbar", { role: "img", "aria-label": `difference ${pts(diff)} points, 95% CI ${pts(lo)} to ${pts(hi)}` },
    h("span.zero", { style: "left:50%" }), h("span.band", { style: `left:${X(lo)}%;width:${Math.max(0.5, X(hi) - X(lo))}%` }),
    h("span.pt", { style: `left:${X(diff)}%` }), h("span.lab.l", {}, `−${pts(m)}`), h("span.lab.r", {}, `+${pts(m)} points`));
}

async function main() {
  if (!boot.a || !boot.b) { showState(root, "error", "Pick two entries on a leaderboard to compare them."); return; }
  let cmp;
  try {
    cmp = await api("leaderboards/compare/", { params: { a: boot.a, b: boot.b } });
  } catch (exc) {
    showState(root, "error", exc instanceof ApiError && exc.status === 400 ? "These two entries cannot be compared." : "Could not compare.", exc.message);
    return;
  }
  const [ea, eb] = await Promise.all([api(`leaderboards/entries/${boot.a}/`), api(`leaderboards/entries/${boot.b}/`)]);
  const pb = new Map(eb.problems.map((p) => [p.id, p]));
  const tbody = h("tbody");
  for (const p of ea.problems) {
    const q = pb.get(p.id);
    if (!q) continue;
    const d = q.correct / q.n - p.correct / p.n;
    tbody.append(h(`tr.${d > 0 ? "win" : d < 0 ? "loss" : "tie"}`, { "data-problem": p.id }, h("td", {}, h("code", {}, p.id)),
      h("td.num", {}, `${p.correct} / ${p.n}`), h("td.num", {}, `${q.correct} / ${q.n}`),
      h("td", {}, d > 0 ? "B better" : d < 0 ? "A better" : "tie"), h("td", {}, h("code", {}, p.gold ?? ""))));
  }
  const who = (e) => `${e.name}${e.step !== null && e.step !== undefined ? ` (step ${e.step})` : ""}`;
  const bench = ea.benchmark_info;
  root.replaceChildren(
    h("div.page-head", {}, h("div", {}, h("h1", {}, "Compare two entries"),
      h("div.sub", {}, "A: ", h("a", { href: `/leaderboards/entries/${ea.id}/` }, who(ea)), ` · ${pct(ea.pass_at_1)}   vs   B: `,
        h("a", { href: `/leaderboards/entries/${eb.id}/` }, who(eb)), ` · ${pct(eb.pass_at_1)} · on `,
        h("a", { href: `/leaderboards/${bench.id}/` }, bench.label)))),
    h("section.card#verdict", {}, h("p.sentence#sentence", {}, cmp.sentence),
      diffBar(cmp.diff, cmp.ci),
      h("div.figures", {}, ...[["B − A (Pass@1)", `${cmp.diff >= 0 ? "+" : "−"}${pts(Math.abs(cmp.diff))} points`], ["95% CI (paired bootstrap)", `${pts(cmp.ci[0])} to ${pts(cmp.ci[1])}`],
        ["B wins", String(cmp.wins)], ["B losses", String(cmp.losses)], ["ties", String(cmp.ties)], ["problems", String(cmp.n_problems)]]
        .map(([k, v]) => h("div.figure", {}, h("div.v", { "data-k": k }, v), h("div.k", {}, k)))),
      h("div.muted.small", {}, "Wins, losses and ties compare each problem's accuracy over its k samples. The interval resamples problems (2,000 times, seeded), keeping each problem's pair together."),
      h("a.btn", { href: `/leaderboards/entries/${eb.id}/?vs=${ea.id}` }, "Show the flipped problems")),
    h("section.card", {}, h("h2", {}, "Per problem"), h("div", { style: "overflow:auto" }, h("table.data#cmp-table", {}, h("thead", {}, h("tr", {}, h("th", {}, "problem"), h("th.num", {}, "A correct"), h("th.num", {}, "B correct"), h("th", {}, "result"), h("th", {}, "gold"))), tbody))));
  document.body.dataset.compareReady = "1";
}

main();
