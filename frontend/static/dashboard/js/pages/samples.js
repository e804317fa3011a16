// Samples of a step: list (prompt, reward, length) with step navigation, reward filter and
// length sort; the selected sample as a token heatmap with a channel picker, legend, tooltip
// and strip chart. Page state lives in the URL (?step=&sample=&channel=).

import { api, bootstrap, ApiError } from "../api.js";
import { h, fmt, showState, setQuery } from "../dom.js";
import { TokenHeatmap, loadChannels } from "../heatmap.js";
import { explainToken, minibatchLabel } from "../explain.js";
import { renderPositionSummary } from "../positions.js";
import { probeMark, probeRenderMs } from "../probe.js";

const boot = bootstrap();
const runId = boot.run_id;
const listBox = document.getElementById("sample-list");
const body = document.getElementById("sample-body");
const stepSel = document.getElementById("step-select");
const stepLabel = document.getElementById("step-label");
const rewardSel = document.getElementById("reward-filter");
const orderSel = document.getElementById("order");
const params = new URLSearchParams(location.search);

let steps = [];
let step = boot.step ?? null;
let sampleId = boot.sample ?? null;
let channel = params.get("channel") || null;  // null: the catalog's first colouring the sample has
let heatmap = null;
let fipo = null;  // the run's FIPO settings (samples API `fipo`): what a token explanation needs
const summaryBox = document.getElementById("position-summary");
rewardSel.value = params.get("reward") || "";
orderSel.value = params.get("order") || "";

function rewardParams() {
  if (rewardSel.value === "pos") return { min_reward: "0.000001" };
  if (rewardSel.value === "neg") return { max_reward: "0" };
  return {};
}

async function loadList() {
  showState(listBox, "loading", "Loading samples");
  let data;
  try {
    data = await api(`runs/${runId}/samples/`, { params: { step, order: orderSel.value, ...rewardParams() } });
  } catch (exc) {
    if (exc instanceof ApiError && exc.status === 404) showState(listBox, "error", "Run not found.", "It does not exist, or it belongs to a team you are not in.");
    else showState(listBox, "error", "Could not load samples.", exc.message);
    return;
  }
  steps = data.steps || [];
  fipo = data.fipo || null;
  const results = data.results || [];
  if (step === null && results.length) step = results[0].step;
  if (step === null && steps.length) step = steps[steps.length - 1];
  stepSel.replaceChildren(...steps.map((s) => h("option", { value: String(s) }, String(s))));
  if (step !== null) stepSel.value = String(step);
  stepLabel.textContent = step === null ? "–" : String(step);
  document.getElementById("step-prev").disabled = !steps.length || steps.indexOf(step) <= 0;
  document.getElementById("step-next").disabled = !steps.length || steps.indexOf(step) >= steps.length - 1;
  setQuery({ step, sample: sampleId, reward: rewardSel.value, order: orderSel.value });
  if (!results.length) {
    if (step !== null) loadPositions(step);
    else renderPositionSummary(summaryBox, null, fipo);
    showState(listBox, "empty", steps.length ? "No samples match the filter at this step." : "No samples logged yet.",
      steps.length ? "Change the reward filter or the step." : "The trainer sends trainer.log_samples samples per step.");
    return;
  }
  const tbody = h("tbody");
  for (const s of results) {
    const tr = h("tr", { "data-sample": String(s.id), tabindex: "0", "aria-label": `Sample ${s.index}, reward ${s.reward}, ${s.length} tokens` },
      h("td.num", {}, String(s.index)),
      h("td.num", {}, fmt(s.reward), s.correct === true ? " ✓" : s.correct === false ? " ✗" : ""),
      h("td.num", {}, fmt(s.length)),
      h("td.num.small", { title: mbTitle(s) }, s.num_minibatches ? `${s.minibatch + 1}/${s.num_minibatches}` : "–"),
      h("td.small", {}, (s.prompt || "").slice(0, 90)));
    tr.addEventListener("click", () => openSample(s.id));
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openSample(s.id); } });
    tbody.append(tr);
  }
  listBox.replaceChildren(h("table.data", {}, h("thead", {}, h("tr", {}, h("th.num", {}, "#"), h("th.num", {}, "Reward"),
    h("th.num", {}, "Tokens"), h("th.num", { title: "Mini-batch of the rollout batch it was trained in" }, "MB"),
    h("th", {}, "Prompt"))), tbody));
  const want = results.find((s) => s.id === sampleId) ? sampleId : results[0].id;
  openSample(want).finally(() => loadPositions(step));
}

/** The step's credit by position: asked for once the selected sample is drawn (it decodes every sample). */
let positionsSeq = 0;
async function loadPositions(forStep) {
  const seq = ++positionsSeq;
  try {
    const data = await api(`runs/${runId}/samples/positions/`, { params: { step: forStep } });
    if (seq === positionsSeq && forStep === step) renderPositionSummary(summaryBox, data, fipo);
  } catch (exc) {
    if (seq === positionsSeq) showState(summaryBox, "error", "Could not load the summary.", exc.message);
  }
}

function mbTitle(s) {
  const mb = minibatchLabel(s);
  return mb ? `${mb.text}. ${mb.note}` : "The trainer did not say which mini-batch trained this sample.";
}

function markSelected() {
  for (const tr of listBox.querySelectorAll("tr[data-sample]")) tr.classList.toggle("selected", Number(tr.dataset.sample) === sampleId);
}

// The channel catalog and a bookmarked ?sample= start loading at once, beside the list (the requests overlap).
loadChannels().catch(() => {});
let prefetch = sampleId !== null ? { id: sampleId, promise: api(`samples/${sampleId}/`) } : null;
if (prefetch) prefetch.promise.catch(() => {});

let openSeq = 0;
async function openSample(id) {
  const seq = ++openSeq;
  sampleId = id;
  markSelected();
  setQuery({ sample: id });
  showState(body, "loading", "Loading the sample");
  let s;
  const pending = prefetch && prefetch.id === id ? prefetch.promise : api(`samples/${id}/`);
  prefetch = null;
  try { s = await pending; } catch (exc) { showState(body, "error", "Could not load the sample.", exc.message); return; }
  let catalog;
  try { catalog = await loadChannels(); } catch (exc) { showState(body, "error", "Could not load the channel catalog.", exc.message); return; }
  if (seq !== openSeq) return;
  document.getElementById("sample-h").textContent = `Sample ${s.index} of step ${s.step}`;
  const channelBar = h("div.channels", { role: "group", "aria-label": "Colour tokens by" });
  const tokens = h("div.tokens", { id: "tokens", tabindex: "0", "aria-label": "Response tokens; arrow keys move between tokens" });
  const strip = h("canvas.strip", { id: "strip", tabindex: "0", role: "img" });
  const legend = h("div.legend", { id: "legend" });
  const mb = minibatchLabel(s);
  const explain = h("section.explain", { id: "explain", "aria-live": "polite", "aria-label": "Why this token's weight" },
    h("p.small.muted", {}, "Click a response token (or focus it with the keyboard) to see where its future-KL came from."));
  body.replaceChildren(
    h("div.row.small.muted", {}, `reward ${fmt(s.reward)} · ${s.correct ? "correct" : "not correct"} · ${fmt(s.length)} tokens`,
      mb ? h("span.mb", { id: "minibatch", "data-minibatch": String(s.minibatch) }, `· trained in ${mb.text}`) : null),
    mb ? h("p.small.mb-note", { id: "minibatch-note" }, mb.note) : null,
    h("h3", { style: "margin-top:.6rem" }, "Prompt"), h("pre.prompt", {}, s.prompt || ""),
    h("h3", {}, "Response tokens"), channelBar, legend, strip, explain, h("div", { style: "height:.5rem" }), tokens);
  heatmap = new TokenHeatmap({ tokens, strip, legend, tooltip: document.getElementById("token-tip") },
    { onSelect: (i) => { if (!keepExplanation) explainAt(explain, s, i); }, catalog });
  const t0 = performance.now();
  const done = heatmap.setSample({ tokens: s.tokens || [], channels: s.channels || {} }, channel);
  const avail = heatmap.available();
  channel = heatmap.channel || channel;
  for (const c of avail) {
    channelBar.append(h("button.small", { type: "button", "data-channel": c, "aria-pressed": String(c === channel), title: heatmap.spec(c).meaning,
      onclick: () => pickChannel(c) }, heatmap.spec(c).label));
  }
  if (!avail.length) channelBar.append(h("span.muted.small", {}, "This sample carries no per-token channels; tokens are shown uncoloured."));
  probeMark("fipo:sample-fetched");
  await done;
  probeMark("fipo:heatmap");
  if (seq === openSeq) probeRenderMs(body, performance.now() - t0);
}

const num = (v, d = 4) => (v === null || v === undefined ? "–" : Math.abs(v) !== 0 && Math.abs(v) < 1e-3 ? v.toExponential(2) : v.toFixed(d));
const showTok = (t) => t.replace(/ /g, "␣").replace(/\n/g, "↵").replace(/\t/g, "⇥");

let keepExplanation = false;
/** Scroll to a contributor and flash it, keeping the explanation it belongs to. */
function jumpTo(k) {
  keepExplanation = true;
  heatmap.focusToken(k, true);
  keepExplanation = false;
}

/** Fill the explanation panel for token i of sample s and mark its top contributors in the response. */
function explainAt(panel, s, i) {
  const ex = explainToken(i, s.channels || {}, fipo, { top: 10 });
  const tokens = s.tokens || [];
  if (!ex) {
    panel.replaceChildren(h("p.small.muted", {}, fipo ? "This sample carries no log-ratios (log_ratio, or logprob and old_logprob) to rebuild future-KL from."
      : "The run's config has no FIPO settings to explain weights with."));
    return;
  }
  const marks = new Map();
  for (const k of ex.excluded.slice(0, 500)) marks.set(k, "excluded");
  for (const c of ex.contributors) marks.set(c.k, c.share >= 0 ? "up" : "down");
  marks.set(i, "target");
  heatmap.mark(marks);
  const w = ex.weight;
  const total = ex.positive - ex.negative;
  const rows = ex.contributors.map((c, rank) => h("tr", { "data-k": String(c.k), "data-share": String(c.share), tabindex: "0",
    title: "Jump to this token", onclick: () => jumpTo(c.k),
    onkeydown: (e) => { if (e.key === "Enter") jumpTo(c.k); } },
    h("td.num", {}, String(rank + 1)), h("td.mono", {}, `#${c.k + 1} `, h("span.tok", {}, showTok(tokens[c.k] ?? ""))),
    h("td.num", {}, String(c.distance)), h("td.num", {}, num(c.delta)), h("td.num", {}, num(Math.pow(fipo.gamma, c.distance), 3)),
    h("td.num", { class: c.share >= 0 ? "up" : "down" }, (c.share >= 0 ? "+" : "") + num(c.share, 5)),
    h("td.num", {}, total > 0 ? `${((100 * Math.abs(c.share)) / total).toFixed(0)}%` : "–")));
  const rest = ex.rest.count > 0 ? h("tr.rest", { "data-rest-share": String(ex.rest.share) },
    h("td", {}, ""), h("td", { colspan: "4" }, `${ex.rest.count} other contributing token${ex.rest.count > 1 ? "s" : ""}`),
    h("td.num", {}, (ex.rest.share >= 0 ? "+" : "") + num(ex.rest.share, 5)), h("td", {}, "")) : null;
  const stored = ex.storedF === null ? "" : ` (logged: ${num(ex.storedF)})`;
  const reach = ex.first > ex.last ? "no later tokens" : `tokens ${ex.first + 1}–${ex.last + 1}`;
  const startNote = fipo.future_kl_start === "exclude_current" ? "k > t" : "k ≥ t";
  let weightText;
  if (!w.reweights) weightText = `This run's loss is ${fipo.policy_loss}: it does not reweight, every weight is 1 (the F above is what FIPO would use).`;
  else {
    weightText = `influence weight w = clip(exp(F) = ${num(w.raw)}, ${fmt(fipo.weight_low)}, ${fmt(fipo.weight_high)}) = ` +
      `${num(Math.min(fipo.weight_high, Math.max(fipo.weight_low, w.raw)))}` +
      (w.clipped ? ` (clipped at the ${w.clipped} bound)` : " (inside the bounds)");
    if (w.safety) weightText += `; negative advantage and ratio ${num(w.ratio, 2)} > safety threshold ${fmt(fipo.safety_thresh)}: capped into [${fipo.safety_band.join(", ")}] → ${num(w.value)}`;
    if (ex.storedWeight !== null) weightText += ` (logged: ${num(ex.storedWeight)})`;
  }
  panel.dataset.token = String(i);
  panel.dataset.f = String(ex.F);
  panel.dataset.storedF = ex.storedF === null ? "" : String(ex.storedF);
  panel.dataset.weight = String(w.value);
  panel.dataset.low = String(fipo.weight_low);
  panel.dataset.high = String(fipo.weight_high);
  panel.dataset.abs = String(total);
  panel.dataset.count = String(ex.count);
  panel.replaceChildren(
    h("h4", {}, `Why token #${i + 1} `, h("span.tok", {}, showTok(tokens[i] ?? "")), ` has F = ${num(ex.F)}${stored}`),
    h("p.small", {}, `F_t = Σ_{${startNote}} γ^(k−t)·x_k over ${reach}, γ = 2^(−1/${fmt(fipo.decay_rate)}) = ${num(fipo.gamma)}` +
      (ex.divisor > 1 ? `, averaged over ${ex.divisor} positions` : "") +
      `; x_k is token k's log-ratio log π − log π_old, or 0 where it is above ln c = ${num(fipo.ln_c, 3)}. ` +
      `Positive shares ${num(ex.positive)}, negative ${num(ex.negative)}` +
      (ex.excluded.length ? `; ${ex.excluded.length} token${ex.excluded.length > 1 ? "s" : ""} left out by the ln c filter (struck through).` : ".") +
      (ex.source === "logprob" ? " Rebuilt from float16 logprob − old_logprob: approximate (this sample has no log_ratio channel)." : "")),
    ex.contributors.length
      ? h("table.data.explain-table", {}, h("thead", {}, h("tr", {}, h("th.num", {}, "#"), h("th", {}, "token k"), h("th.num", {}, "k−t"),
        h("th.num", {}, "log-ratio"), h("th.num", {}, "γ^(k−t)"), h("th.num", {}, "share"), h("th.num", {}, "of |Σ|"))),
      h("tbody", {}, ...rows, rest))
      : h("p.small.muted", {}, "No later token has a non-zero log-ratio: the policy has not moved on this token's future (F = 0)."),
    h("p.small.weight", { id: "explain-weight" }, weightText));
}

function pickChannel(c) {
  channel = c;
  heatmap.setChannel(c);
  for (const b of body.querySelectorAll("[data-channel]")) b.setAttribute("aria-pressed", String(b.dataset.channel === c));
  setQuery({ channel: c });
}

function goStep(delta) {
  const i = steps.indexOf(step);
  if (i < 0) return;
  const j = Math.max(0, Math.min(steps.length - 1, i + delta));
  if (j !== i) { step = steps[j]; sampleId = null; loadList(); }
}

stepSel.addEventListener("change", () => { step = Number(stepSel.value); sampleId = null; loadList(); });
document.getElementById("step-prev").addEventListener("click", () => goStep(-1));
document.getElementById("step-next").addEventListener("click", () => goStep(1));
rewardSel.addEventListener("change", loadList);
orderSel.addEventListener("change", loadList);
document.getElementById("samples-title").textContent = `Samples · run #${runId}`;
loadList();
