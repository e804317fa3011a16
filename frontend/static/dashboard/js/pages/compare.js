// Compare: curves of the selected runs overlaid by step (one chart per metric, one colour per
// run) and a config diff that lists only the dotted paths whose values differ (flattened here,
// in the browser, from each run's stored config).

import { api, bootstrap, ApiError } from "../api.js";
import { h, showState, setQuery, statusBadge } from "../dom.js";
import { SeriesChart, COLOURS } from "../charts.js";
import { loadCatalog } from "../catalog.js";
import { flatten, canonical } from "../schemaform.js";

const boot = bootstrap();
const picker = document.getElementById("picker");
const out = document.getElementById("compare-body");
const DEFAULT_KEYS = ["reward/mean", "accuracy/mean", "response_length/mean", "eval/pass_at_1", "actor/entropy",
  "actor/influence_weights_mean", "actor/pg_clipfrac", "actor/ppo_kl", "response_length/clip_ratio", "actor/grad_norm"];
const MAX_RUNS = 10;

let ids = boot.run_ids || [];
let extraKeys = (new URLSearchParams(location.search).get("keys") || "").split(",").filter(Boolean);
let allRuns = [];

/** Rows of {path, values[]} where not every run has the same value. */
export function configDiff(configs) {
  const flats = configs.map((c) => flatten(c || {}));
  const paths = new Set(flats.flatMap((f) => Object.keys(f)));
  const rows = [];
  for (const p of [...paths].sort()) {
    const vals = flats.map((f) => (p in f ? canonical(f[p]) : undefined));
    if (new Set(vals).size > 1) rows.push({ path: p, values: vals });
  }
  return rows;
}

function renderPicker(details) {
  picker.replaceChildren(h("strong", {}, "Runs:"));
  details.forEach((d, i) => {
    picker.append(h("span.chip", { "data-run": String(d.id) }, h("span.swatch", { style: `background:${COLOURS[i % COLOURS.length]}` }),
      h("a", { href: `/runs/${d.id}/` }, `#${d.id} ${d.name}`), " ", statusBadge(d.status),
      h("button", { type: "button", "aria-label": `Remove run ${d.id}`, onclick: () => setIds(ids.filter((x) => x !== d.id)) }, "×")));
  });
  const add = h("select", { "aria-label": "Add a run", id: "add-run" }, h("option", { value: "" }, "Add a run…"),
    ...allRuns.filter((r) => !ids.includes(r.id)).map((r) => h("option", { value: String(r.id) }, `#${r.id} ${r.name} (${r.status})`)));
  add.disabled = ids.length >= MAX_RUNS;
  add.addEventListener("change", () => { if (add.value) setIds([...ids, Number(add.value)]); });
  picker.append(add);
}

function setIds(next) {
  ids = [...new Set(next)].slice(0, MAX_RUNS);
  setQuery({ runs: ids.join(",") });
  main();
}

async function main() {
  out.replaceChildren(h("div.state.loading", { role: "status" }, "Loading runs"));
  if (!allRuns.length) allRuns = (await api("runs/").catch(() => ({ results: [] }))).results || [];
  const found = [];
  const missing = [];
  await Promise.all(ids.map((id) => api(`runs/${id}/`).then((d) => { found.push(d); }).catch((exc) => {
    if (exc instanceof ApiError && exc.status === 404) missing.push(id); else throw exc;
  })));
  const details = ids.map((id) => found.find((d) => d.id === id)).filter(Boolean);
  renderPicker(details);
  out.replaceChildren();
  if (missing.length) out.append(h("div.banner.error", { role: "alert" }, `Not found or not in your teams: ${missing.map((m) => `#${m}`).join(", ")}`));
  if (details.length < 2) {
    out.append(h("div.card", {}, h("div.state", {}, h("strong", {}, "Pick at least two runs."), "Use “Add a run…” above, or tick runs in the Runs list and press “Compare selected”.")));
    if (!details.length) return;
  }
  const catalog = await loadCatalog();
  const keyLists = await Promise.all(details.map((d) => api(`runs/${d.id}/metrics`).then((r) => r.keys || []).catch(() => [])));
  const union = [...new Set(keyLists.flat())];
  const shown = [...DEFAULT_KEYS.filter((k) => union.includes(k)), ...extraKeys.filter((k) => union.includes(k) && !DEFAULT_KEYS.includes(k))];

  // config diff
  const rows = configDiff(details.map((d) => d.config));
  const diffCard = h("section.card", { id: "config-diff" }, h("h2", {}, `Config differences (${rows.length})`));
  if (!rows.length) diffCard.append(h("p.muted", {}, "The configs are identical."));
  else {
    diffCard.append(h("div", { style: "overflow:auto" }, h("table.data.diff", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Field"), ...details.map((d, i) => h("th", {}, h("span.swatch", { style: `display:inline-block;width:.6rem;height:.6rem;border-radius:50%;background:${COLOURS[i % COLOURS.length]}` }), ` #${d.id} ${d.name}`)))),
      h("tbody", {}, ...rows.map((r) => h("tr", {}, h("td.path", {}, r.path), ...r.values.map((v) => h("td.val", {}, v === undefined ? "–" : v))))))));
  }

  // charts
  const addKey = h("select", { "aria-label": "Add a metric", id: "add-metric" }, h("option", { value: "" }, "Add a metric…"),
    ...union.filter((k) => !shown.includes(k)).sort().map((k) => h("option", { value: k }, k)));
  addKey.addEventListener("change", () => { if (addKey.value) { extraKeys = [...extraKeys, addKey.value]; setQuery({ keys: extraKeys.join(",") }); main(); } });
  const grid = h("div.charts", { id: "compare-charts" });
  out.append(h("section", {}, h("div.row", { style: "justify-content:space-between;margin:.5rem 0" }, h("h2", {}, "Curves by step"), addKey), grid), diffCard);
  if (!shown.length) { grid.append(h("div.card", {}, h("div.state", {}, h("strong", {}, "No metrics logged yet by these runs.")))); return; }
  await Promise.all(shown.map((key) => {
    const m = catalog.metrics.get(key);
    const plot = h("div.chart");
    grid.append(h("div.chart-card", { "data-chart": key }, h("h3", { title: m ? m.meaning : key }, key, h("span.muted", {}, m ? m.unit : "")), plot));
    const chart = new SeriesChart(plot, { specs: details.map((d, i) => ({ run: d.id, key, name: `#${d.id} ${d.name}`, colour: COLOURS[i % COLOURS.length] })), yTitle: m ? m.unit : "" });
    return chart.load().catch((exc) => showState(plot, "error", "Could not load this chart.", exc.message));
  }));
  document.body.dataset.chartsReady = String(shown.length);
}

main().catch((exc) => showState(out, "error", "Could not load the comparison.", exc.message));
