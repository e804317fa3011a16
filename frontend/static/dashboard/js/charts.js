// Live metric charts on Plotly (the global `Plotly` from the bundled plotly.min.js).
//
// A chart holds series specs {run, key, name}. It loads downsampled data from
// GET /api/v1/runs/<id>/metrics?keys=..&max_points=..&step_min=..&step_max=.. (min/max-preserving
// buckets), draws a min/max band where the server bucketed, appends live points with
// Plotly.extendTraces (coalesced per animation frame: no full redraw), keeps the user's zoom
// (uirevision), and re-fetches at full detail for the zoomed step range on plotly_relayout.

import { api } from "./api.js";

/** Okabe–Ito: a qualitative palette readable with the common colour-vision deficiencies. */
export const COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999933"];
// Above this many *drawn* points a chart switches to WebGL (scattergl). The server downsamples to
// max_points per series, so a run page's charts stay SVG (cheap to create, no GPU needed: a
// headless or GPU-less browser emulates WebGL in software at ~1 s per context); overlays of many
// runs cross it.
const BIG = 10000;
const TRACES_PER_SPEC = 3;  // band upper, band lower (fill), line

// Live points are drawn in cycles, one page-wide cycle at a time: every on-screen chart with queued
// points draws in the same animation frame, and the next cycle starts no sooner than LIVE_DUTY
// times the last cycle's duration later (and at least LIVE_MIN_GAP_MS). Plotly redraws a whole
// chart on each extendTraces (10-40 ms), so a page fed 10 events/s that drew each one would do
// nothing else, and twenty such pages on one machine would fall seconds behind. Throttled this
// way a page spends at most 1 / (1 + LIVE_DUTY) of its time on live draws; under load the cycles
// come further apart and carry more points each, so latency stays bounded instead of growing.
const LIVE_MIN_GAP_MS = 50;
const LIVE_DUTY = 2;
const live = { queued: new Set(), timer: null, nextAllowed: 0 };

function requestLiveDraw(chart) {
  live.queued.add(chart);
  if (live.timer !== null) return;
  const wait = Math.max(0, live.nextAllowed - performance.now());
  // rAF does not fire in a hidden tab: there the points wait on a timer (drawn within ~1 s)
  const frame = () => (document.hidden ? setTimeout(runLiveDraws, 1000) : requestAnimationFrame(runLiveDraws));
  live.timer = wait > 0 ? setTimeout(frame, wait) : (frame(), 0);
}

function runLiveDraws() {
  const charts = [...live.queued];
  live.queued.clear();
  const t0 = performance.now();
  for (const chart of charts) {
    try { chart.flush(); } catch (exc) { console.error("live chart draw failed", exc); }
  }
  const took = performance.now() - t0;
  live.nextAllowed = performance.now() + Math.min(2000, Math.max(LIVE_MIN_GAP_MS, LIVE_DUTY * took));
  live.timer = null;
  if (live.queued.size) requestLiveDraw(live.queued.values().next().value);
}

function hexToRgba(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

/** Fetch series of several keys of one run (one request). */
export function fetchSeries(run, keys, { maxPoints = 1000, stepMin = null, stepMax = null, signal } = {}) {
  return api(`runs/${run}/metrics`, {
    params: { keys: keys.join(","), max_points: maxPoints, step_min: stepMin, step_max: stepMax }, signal,
  });
}

export class SeriesChart {
  /**
   * @param {HTMLElement} el the plot container
   * @param {{specs: {run: number, key: string, name: string}[], yTitle?: string, maxPoints?: number}} opts
   */
  constructor(el, { specs, yTitle = "", maxPoints = null }) {
    this.el = el;
    this.specs = specs.map((s, i) => ({ ...s, colour: s.colour || COLOURS[i % COLOURS.length], lastStep: -Infinity, band: false, n: 0 }));
    this.yTitle = yTitle;
    this.maxPoints = maxPoints || Math.max(300, Math.min(2000, Math.round((el.clientWidth || 600) * 1.5)));
    this.pending = new Map();   // spec index -> {x: [], y: []}
    this.flushScheduled = false;
    this.range = null;          // [stepMin, stepMax] while zoomed
    this.loadSeq = 0;
    this.ready = false;
    this.type = "scatter";
    this.streamPos = null;
    // Off-screen charts keep their live points queued and draw them when scrolled into view:
    // with a dozen charts on a page, only the visible ones spend CPU on every event.
    this.visible = true;
    if ("IntersectionObserver" in window) {
      this.visible = false;
      this.observer = new IntersectionObserver((entries) => {
        this.visible = entries.some((e) => e.isIntersecting);
        if (this.visible && this.pending.size) this.scheduleFlush();
      }, { rootMargin: "0px" });
      this.observer.observe(el);
    }
  }

  /** Queue this chart for the page's next live-draw cycle (see `requestLiveDraw`). */
  scheduleFlush() {
    if (this.flushScheduled || !this.visible) return;
    this.flushScheduled = true;
    requestLiveDraw(this);
  }

  specIndex(run, key) {
    return this.specs.findIndex((s) => s.run === run && s.key === key);
  }

  /** Load (or reload for the current zoom) and draw. Returns the smallest stream_pos seen. */
  async load() {
    const seq = ++this.loadSeq;
    const byRun = new Map();
    this.specs.forEach((s) => { if (!byRun.has(s.run)) byRun.set(s.run, []); byRun.get(s.run).push(s.key); });
    const [lo, hi] = this.range || [null, null];
    const answers = await Promise.all([...byRun].map(([run, keys]) =>
      fetchSeries(run, keys, { maxPoints: this.maxPoints, stepMin: lo, stepMax: hi }).then((r) => [run, r])));
    if (seq !== this.loadSeq) return this.streamPos;
    const data = new Map();
    let pos = null;
    for (const [run, r] of answers) {
      for (const [key, series] of Object.entries(r.series || {})) data.set(`${run}\u0000${key}`, series);
      if (typeof r.stream_pos === "number") pos = pos === null ? r.stream_pos : Math.min(pos, r.stream_pos);
    }
    this.streamPos = pos;
    let drawn = 0;
    for (const s of data.values()) drawn += (s.step || []).length;
    if (!this.range) this.type = drawn > BIG ? "scattergl" : "scatter";
    this.draw(data);
    return pos;
  }

  traces(data) {
    const out = [];
    for (const s of this.specs) {
      const d = data.get(`${s.run}\u0000${s.key}`) || { step: [], value: [] };
      const steps = d.step || [], values = d.value || [];
      s.band = Boolean(d.downsampled && d.min && d.max);
      s.n = steps.length;
      if (!this.range) s.lastStep = steps.length ? steps[steps.length - 1] : -Infinity;
      else s.lastStep = Math.max(s.lastStep, steps.length ? steps[steps.length - 1] : -Infinity);
      const common = { type: this.type, mode: "lines", legendgroup: `${s.run}:${s.key}`, hoverinfo: "skip", showlegend: false,
        line: { width: 0, color: s.colour } };
      out.push({ ...common, x: s.band ? steps.slice() : [], y: s.band ? d.max.slice() : [], name: `${s.name} max` });
      out.push({ ...common, x: s.band ? steps.slice() : [], y: s.band ? d.min.slice() : [], name: `${s.name} min`,
        fill: "tonexty", fillcolor: hexToRgba(s.colour, 0.18) });
      out.push({ type: this.type, mode: steps.length < 60 ? "lines+markers" : "lines", x: steps.slice(), y: values.slice(),
        name: s.name, legendgroup: `${s.run}:${s.key}`, line: { width: 1.8, color: s.colour }, marker: { size: 4 },
        hovertemplate: `${s.name}<br>step %{x}: %{y:.4g}<extra></extra>` });
    }
    return out;
  }

  layout() {
    return {
      uirevision: "keep",          // Plotly keeps the user's zoom and legend toggles across react()
      margin: { l: 56, r: 12, t: 8, b: 36 },
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#1c2430" },
      xaxis: { title: { text: "step", standoff: 4 }, zeroline: false, gridcolor: "#eef1f5" },
      yaxis: { title: { text: this.yTitle }, zeroline: false, gridcolor: "#eef1f5", automargin: true },
      hovermode: this.specs.length > 20 ? "closest" : "x unified",
      legend: { orientation: "h", y: -0.22, font: { size: 11 } },
      showlegend: this.specs.length > 1,
      paper_bgcolor: "#fff", plot_bgcolor: "#fff",
    };
  }

  draw(data) {
    const config = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d", "toImage"] };
    if (!this.ready) {
      Plotly.newPlot(this.el, this.traces(data), this.layout(), config);
      this.el.on("plotly_relayout", (ev) => this.onRelayout(ev));
      this.ready = true;
    } else {
      Plotly.react(this.el, this.traces(data), this.layout(), config);
    }
    this.el.dataset.points = String(this.specs.reduce((a, s) => a + s.n, 0));
  }

  onRelayout(ev) {
    if (!ev) return;
    let lo = ev["xaxis.range[0]"], hi = ev["xaxis.range[1]"];
    if (Array.isArray(ev["xaxis.range"])) [lo, hi] = ev["xaxis.range"];
    if (ev["xaxis.autorange"] === true) { this.range = null; this.load(); return; }
    if (lo === undefined || hi === undefined) return;
    this.range = [Math.max(0, Math.floor(lo)), Math.ceil(hi)];
    this.load();
  }

  /** Queue a live point; drawn at the next animation frame together with every other queued point. */
  append(run, step, values) {
    this.specs.forEach((s, i) => {
      const v = values[s.key];
      if (v === undefined || step <= s.lastStep) return;   // dedupe catch-up against the snapshot
      s.lastStep = step;
      if (!this.pending.has(i)) this.pending.set(i, { x: [], y: [] });
      const p = this.pending.get(i);
      p.x.push(step);
      p.y.push(v === null ? NaN : v);
    });
    if (this.pending.size) this.scheduleFlush();
  }

  flush() {
    this.flushScheduled = false;
    if (!this.ready || !this.pending.size) return;
    const x = [], y = [], idx = [];
    const drawn = [];
    for (const [i, p] of this.pending) {
      const s = this.specs[i];
      if (s.band) { x.push(p.x, p.x.slice()); y.push(p.y, p.y.slice()); idx.push(TRACES_PER_SPEC * i, TRACES_PER_SPEC * i + 1); }
      x.push(p.x); y.push(p.y); idx.push(TRACES_PER_SPEC * i + 2);
      s.n += p.x.length;
      drawn.push([s.key, p.x[p.x.length - 1]]);
    }
    this.pending.clear();
    Plotly.extendTraces(this.el, { x, y }, idx);
    this.el.dataset.points = String(this.specs.reduce((a, s) => a + s.n, 0));
    if (window.__fipoDrawLog) { const t = Date.now(); for (const [k, st] of drawn) window.__fipoDrawLog.push([k, st, t]); }
    // after many live points, re-bucket on the server so the browser keeps drawing ~maxPoints
    if (!this.range && this.specs.some((s) => s.n > 4 * this.maxPoints)) this.load();
  }
}
