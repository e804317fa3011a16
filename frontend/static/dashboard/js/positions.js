// The per-step summary above the samples list: mean future-KL and mean influence weight by token
// position across the step's samples (samples API `positions`), as two small SVG line charts, so
// "late tokens get more/less credit" is visible at a glance.
//
// Plain SVG rather than Plotly: the summary is ~128 points per line, and keeping plotly.js (4.8 MB
// to parse) off this page keeps the 20k-token sample render inside its 1 s budget.

import { h, fmt } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 360, H = 120, PAD = { l: 52, r: 10, t: 10, b: 24 };

function svg(tag, attrs = {}, text = null) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== null) el.textContent = text;
  return el;
}

/** Path data of a line through the non-null points (a gap where a bucket has no value). */
export function linePath(xs, ys, sx, sy) {
  let d = "", pen = false;
  for (let i = 0; i < xs.length; i++) {
    if (ys[i] === null || ys[i] === undefined) { pen = false; continue; }
    d += `${pen ? "L" : "M"}${sx(xs[i]).toFixed(1)},${sy(ys[i]).toFixed(1)}`;
    pen = true;
  }
  return d;
}

/**
 * One small line chart: mean of a channel by token position.
 * @param {{start: number[], mean: (number|null)[], count: number[]}} profile
 * @param {{title: string, refs?: {y: number, label: string}[], id: string}} opts
 */
export function positionChart(profile, { title, refs = [], id }) {
  const xs = profile.start, ys = profile.mean;
  const values = ys.filter((v) => v !== null).concat(refs.map((r) => r.y));
  let dlo = Math.min(...values), dhi = Math.max(...values);  // the data's range: the two ticks
  if (!(dhi > dlo)) { dlo -= 0.5; dhi += 0.5; }
  const pad = 0.06 * (dhi - dlo), lo = dlo - pad, hi = dhi + pad;
  const xmax = Math.max(1, xs.length ? xs[xs.length - 1] + (xs[1] ?? 1) - (xs[0] ?? 0) : 1);
  const sx = (x) => PAD.l + (x / xmax) * (W - PAD.l - PAD.r);
  const sy = (y) => PAD.t + (1 - (y - lo) / (hi - lo)) * (H - PAD.t - PAD.b);
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "pos-chart", id });
  root.append(svg("title", {}, `${title} by token position, ${xs.length} buckets`));
  root.append(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b, class: "axis" }));
  for (const y of [dlo, dhi]) {
    root.append(svg("text", { x: PAD.l - 4, y: sy(y) + 4, "text-anchor": "end", class: "tick" }, fmt(y, 3)));
  }
  for (const r of refs) {
    root.append(svg("line", { x1: PAD.l, x2: W - PAD.r, y1: sy(r.y), y2: sy(r.y), class: "ref" }));
    root.append(svg("text", { x: W - PAD.r, y: sy(r.y) - 3, "text-anchor": "end", class: "tick" }, r.label));
  }
  root.append(svg("text", { x: PAD.l, y: H - 6, class: "tick" }, "0"));
  root.append(svg("text", { x: W - PAD.r, y: H - 6, "text-anchor": "end", class: "tick" }, `token ${fmt(xmax)}`));
  root.append(svg("path", { d: linePath(xs, ys, sx, sy), class: "line" }));
  return h("figure.pos", {}, h("figcaption.small", {}, title), root);
}

/**
 * Fill `el` with the step's summary, or say why there is none.
 * @param {HTMLElement} el
 * @param {{samples: number, channels: Object}} positions samples API `positions`
 * @param {object|null} fipo samples API `fipo` (the weight bounds are drawn as reference lines)
 */
export function renderPositionSummary(el, positions, fipo) {
  const ch = positions?.channels || {};
  if (!positions || !positions.samples || (!ch.future_kl && !ch.influence)) {
    el.replaceChildren(h("p.small.muted", {}, "No per-token future-KL or influence weights at this step."));
    el.dataset.samples = "0";
    return;
  }
  const charts = [];
  if (ch.future_kl) charts.push(positionChart(ch.future_kl, { title: "mean future-KL F", id: "pos-fkl", refs: [{ y: 0, label: "0" }] }));
  if (ch.influence) {
    const refs = fipo && fipo.policy_loss === "fipo"
      ? [{ y: fipo.weight_low, label: `low ${fmt(fipo.weight_low)}` }, { y: fipo.weight_high, label: `high ${fmt(fipo.weight_high)}` }]
      : [{ y: 1, label: "1" }];
    charts.push(positionChart(ch.influence, { title: "mean influence weight w", id: "pos-w", refs }));
  }
  const width = (ch.future_kl || ch.influence).start[1] ?? 1;
  el.replaceChildren(h("div.pos-charts", {}, ...charts),
    h("p.small.muted", {}, `Across the ${positions.samples} samples of this step, every value at each position` +
      (width > 1 ? ` (buckets of ${width} tokens)` : "") + "; samples from the first mini-batch add zeros (F = 0, w = clip(1))."));
  el.dataset.samples = String(positions.samples);
}
