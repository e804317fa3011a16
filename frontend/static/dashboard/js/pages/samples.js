// Samples of a step: list (prompt, reward, length) with step navigation, reward filter and
// length sort; the selected sample as a token heatmap with a channel picker, legend, tooltip
// and strip chart. Page state lives in the URL (?step=&sample=&channel=).

import { api, bootstrap, ApiError } from "../api.js";
import { h, fmt, showState, setQuery } from "../dom.js";
import { TokenHeatmap, CHANNELS } from "../heatmap.js";

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
let channel = params.get("channel") || "future_kl";
let heatmap = null;
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
      h("td.small", {}, (s.prompt || "").slice(0, 90)));
    tr.addEventListener("click", () => openSample(s.id));
    tr.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); openSample(s.id); } });
    tbody.append(tr);
  }
  listBox.replaceChildren(h("table.data", {}, h("thead", {}, h("tr", {}, h("th.num", {}, "#"), h("th.num", {}, "Reward"),
    h("th.num", {}, "Tokens"), h("th", {}, "Prompt"))), tbody));
  const want = results.find((s) => s.id === sampleId) ? sampleId : results[0].id;
  openSample(want);
}

function markSelected() {
  for (const tr of listBox.querySelectorAll("tr[data-sample]")) tr.classList.toggle("selected", Number(tr.dataset.sample) === sampleId);
}

// A bookmarked ?sample= starts loading at once, beside the list (the two requests overlap).
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
  if (seq !== openSeq) return;
  document.getElementById("sample-h").textContent = `Sample ${s.index} of step ${s.step}`;
  const channelBar = h("div.channels", { role: "group", "aria-label": "Colour tokens by" });
  const tokens = h("div.tokens", { id: "tokens", tabindex: "0", "aria-label": "Response tokens; arrow keys move between tokens" });
  const strip = h("canvas.strip", { id: "strip", tabindex: "0", role: "img" });
  const legend = h("div.legend", { id: "legend" });
  body.replaceChildren(
    h("div.row.small.muted", {}, `reward ${fmt(s.reward)} · ${s.correct ? "correct" : "not correct"} · ${fmt(s.length)} tokens`),
    h("h3", { style: "margin-top:.6rem" }, "Prompt"), h("pre.prompt", {}, s.prompt || ""),
    h("h3", {}, "Response tokens"), channelBar, legend, strip, h("div", { style: "height:.5rem" }), tokens);
  heatmap = new TokenHeatmap({ tokens, strip, legend, tooltip: document.getElementById("token-tip") });
  const t0 = performance.now();
  const done = heatmap.setSample({ tokens: s.tokens || [], channels: s.channels || {} }, channel);
  const avail = heatmap.available();
  channel = heatmap.channel || channel;
  for (const c of avail) {
    channelBar.append(h("button.small", { type: "button", "data-channel": c, "aria-pressed": String(c === channel), title: CHANNELS[c].help,
      onclick: () => pickChannel(c) }, CHANNELS[c].label));
  }
  if (!avail.length) channelBar.append(h("span.muted.small", {}, "This sample carries no per-token channels; tokens are shown uncoloured."));
  performance.mark("fipo:sample-fetched");
  await done;
  performance.mark("fipo:heatmap");
  if (seq === openSeq) body.dataset.renderMs = String(Math.round(performance.now() - t0));
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
