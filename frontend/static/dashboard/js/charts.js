// Live metric charts on Plotly (the global `Plotly` from the bundled plotly.min.js).
//
// A chart holds series specs {run, key, name}. It loads downsampled data from
// GET /api/v1/runs/<id>/metrics?keys=..&max_points=..&step_min=..&step_max=.. (min/max-preserving
// buckets), draws a min/max band where the server bucketed, appends live points with
// Plotly.extendTraces (coalesced per animation frame: no full redraw), keeps the user's zoom
// (uirevision), and re-fetches at full detail for the zoomed step range on plotly_relayout.

import { api } from "./api.js";
import { axis, plotArea, traceShown } from "./plotly_internals.js";
import { probe, probeDraws } from "./probe.js";

/** Okabe–Ito: a qualitative palette readable with the common colour-vision deficiencies. */
export const COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999933"];
// Above this many *drawn* points a chart switches to WebGL (scattergl). The server downsamples to
// max_points per series, so a run page's charts stay SVG (cheap to create, no GPU needed: a
// headless or GPU-less browser emulates WebGL in software at ~1 s per context); overlays of many
// runs cross it.
const BIG = 10000;
const TRACES_PER_SPEC = 3;  // band upper, band lower (fill), line

// Live points take two paths.
//
// 1. At the next animation frame they are painted on a <canvas> laid over the plot area, in the
//    trace's colour, width and markers, continuing the line Plotly drew. That costs well under a
//    millisecond, where a Plotly redraw (extendTraces, react) costs 10-40 ms: a page fed 10
//    events/s that redrew each one would do nothing else, and twenty such pages on one machine
//    fell seconds behind.
// 2. Later they are merged into the Plotly traces with one extendTraces, which redraws the chart
//    and clears the overlay. A merge happens when the newest step nears the end of an auto-ranged
//    step axis or a value leaves the value range (the merge widens the view with invisible
//    headroom points, see `headroomFor`, so the next points land inside it: the number of merges
//    grows with the log of the run's length, not with its events), when a series holds
//    OVERLAY_MAX unmerged points, OVERLAY_MERGE_MS after the first unmerged point, and when the
//    pointer enters the chart (hover then sees every point).
//
// Merges run in page-wide cycles: every chart with a merge queued redraws in the same animation
// frame, and the next cycle starts no sooner than LIVE_DUTY times the last cycle's duration later
// (and at least LIVE_MIN_GAP_MS), so under load the merges come further apart and carry more
// points each instead of falling behind.
const LIVE_MIN_GAP_MS = 50;
const LIVE_DUTY = 2;
const OVERLAY_MERGE_MS = 30000;
const OVERLAY_MAX = 300;
const HEADROOM_X = 0.3;        // of the step span, past the newest step
const HEADROOM_Y = 0.3;        // of the value span, on a side the newest values are near
const HEADROOM_MIN_STEPS = 10;
const NEAR_EDGE = 0.1;         // of an axis's span: the newest points this close to an edge make it grow
const merges = { queued: new Set(), timer: null, nextAllowed: 0 };
const paints = { queued: new Set(), pending: false };

// rAF does not fire in a hidden tab: there the work waits on a timer (done within ~1 s)
const nextFrame = (fn) => (document.hidden ? setTimeout(fn, 1000) : requestAnimationFrame(fn));

function requestMerge(chart, { urgent = false } = {}) {
  merges.queued.add(chart);
  if (urgent && merges.timer) { clearTimeout(merges.timer); merges.timer = null; merges.nextAllowed = 0; }
  if (merges.timer !== null) return;
  const wait = Math.max(0, merges.nextAllowed - performance.now());
  merges.timer = wait > 0 ? setTimeout(() => nextFrame(runMerges), wait) : (nextFrame(runMerges), 0);
}

function runMerges() {
  const charts = [...merges.queued];
  merges.queued.clear();
  const t0 = performance.now();
  for (const chart of charts) {
    try { chart.merge(); } catch (exc) { console.error("live chart merge failed", exc); }
  }
  const took = performance.now() - t0;
  merges.nextAllowed = performance.now() + Math.min(2000, Math.max(LIVE_MIN_GAP_MS, LIVE_DUTY * took));
  merges.timer = null;
  if (merges.queued.size) requestMerge(merges.queued.values().next().value);
}

function requestPaint(chart) {
  paints.queued.add(chart);
  if (paints.pending) return;
  paints.pending = true;
  nextFrame(() => {
    paints.pending = false;
    const charts = [...paints.queued];
    paints.queued.clear();
    for (const chart of charts) {
      try { chart.flush(); } catch (exc) { console.error("live chart paint failed", exc); }
    }
  });
}

/** Pixel mapping of a linear axis onto a length, or null where the overlay cannot draw. */
function axisMap(ax, length, flip) {
  if (!ax || ax.type !== "linear" || !Array.isArray(ax.range)) return null;
  const r0 = Number(ax.range[0]), r1 = Number(ax.range[1]);
  if (!Number.isFinite(r0) || !Number.isFinite(r1) || r0 === r1) return null;
  const k = length / (r1 - r0);
  return flip ? (v) => length - (v - r0) * k : (v) => (v - r0) * k;
}

/**
 * Headroom for new live points on auto-ranged axes, or null while they sit well inside the view.
 *
 * Axes grow ahead of time: once the newest points come within NEAR_EDGE of an edge (the end of
 * the step axis, either end of the value axis), the next merge moves that edge out by HEADROOM_X
 * or HEADROOM_Y of the span while the points are still painted on the overlay. Only points that
 * have already left the view (a value jumping past the range) are `hidden`: they show when the
 * merge lands. Every edge the newest points are near grows in the same merge, so a metric that
 * trends along the steps widens both axes at once. Headroom exceeds NEAR_EDGE, so a merge never
 * leaves the newest point near an edge; a noisy metric stops growing its range after a merge or
 * two.
 */
export function headroomFor(xRange, yRange, xs, ys, { xAuto = true, yAuto = true } = {}) {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let k = 0; k < xs.length; k++) {
    if (!Number.isFinite(ys[k])) continue;
    x0 = Math.min(x0, xs[k]); x1 = Math.max(x1, xs[k]);
    y0 = Math.min(y0, ys[k]); y1 = Math.max(y1, ys[k]);
  }
  if (x1 === -Infinity) return null;
  const [rx0, rx1] = [Math.min(...xRange), Math.max(...xRange)];
  const [ry0, ry1] = [Math.min(...yRange), Math.max(...yRange)];
  const lx = Math.min(rx0, x0), hx = Math.max(rx1, x1);
  const ly = Math.min(ry0, y0), hy = Math.max(ry1, y1);
  const ySpan = hy - ly || Math.abs(hy) || 1;
  // non-negative values (lengths, rates, norms) get no room below zero
  const bottom = y0 >= 0 ? Math.max(0, ly - HEADROOM_Y * ySpan) : ly - HEADROOM_Y * ySpan;
  const hidden = (xAuto && (x1 > rx1 || x0 < rx0)) || (yAuto && (y1 > ry1 || y0 < ry0));
  const growX = xAuto && x1 > rx1 - NEAR_EDGE * (rx1 - rx0);
  const growHi = yAuto && y1 > ry1 - NEAR_EDGE * (ry1 - ry0);
  const growLo = yAuto && y0 < ry0 + NEAR_EDGE * (ry1 - ry0) && bottom < ry0;
  if (!hidden && !growX && !growHi && !growLo) return null;
  const x = growX ? x1 + stepRoom(hx - lx) : x1;
  return { x: [x, x], y: [growHi ? hy + HEADROOM_Y * ySpan : y1, growLo ? bottom : y0], hidden };
}

/** How far past the newest step the step axis reaches, for a step span of `span`. */
function stepRoom(span) {
  return Math.max(HEADROOM_MIN_STEPS, HEADROOM_X * span);
}

/** One pair of headroom points covering two requests (both may arrive before a merge runs). */
function widerHead(a, b) {
  if (!a) return b;
  const x = Math.max(a.x[0], b.x[0]);
  return { x: [x, x], y: [Math.max(a.y[0], b.y[0]), Math.min(a.y[1], b.y[1])], hidden: a.hidden || b.hidden };
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
    this.specs = specs.map((s, i) => ({ ...s, colour: s.colour || COLOURS[i % COLOURS.length], lastStep: -Infinity, band: false, n: 0,
      overlay: { x: [], y: [] } }));
    this.yTitle = yTitle;
    this.maxPoints = maxPoints || Math.max(300, Math.min(2000, Math.round((el.clientWidth || 600) * 1.5)));
    this.pending = new Map();   // spec index -> {x: [], y: []}: arrived, not painted yet
    this.flushScheduled = false;
    this.range = null;          // [stepMin, stepMax] while zoomed
    this.loadSeq = 0;
    this.ready = false;
    this.type = "scatter";
    this.streamPos = null;
    this.live = false;          // has received live points: reloads keep headroom past the newest step
    this.head = null;           // headroom points for the next merge
    this.mergeTimer = null;
    this.canvas = null;
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
    el.fipoChart = this;        // for tests and the console: el.fipoChart.steps(key)
    // hover reads Plotly's traces: give it every point before it looks
    el.addEventListener("pointerenter", () => { if (this.overlaid()) this.merge(); });
  }

  /** Paint this chart's arrived points at the next animation frame (see `requestPaint`). */
  scheduleFlush() {
    if (this.flushScheduled || !this.visible) return;
    this.flushScheduled = true;
    requestPaint(this);
  }

  specIndex(run, key) {
    return this.specs.findIndex((s) => s.run === run && s.key === key);
  }

  headIndex() {
    return TRACES_PER_SPEC * this.specs.length;
  }

  /** Steps shown for a key (of the first run holding it): those in the Plotly trace, then the overlay's. */
  steps(key) {
    const i = this.specs.findIndex((s) => s.key === key);
    if (i < 0 || !this.el.data) return [];
    return [...this.el.data[TRACES_PER_SPEC * i + 2].x, ...this.specs[i].overlay.x];
  }

  overlaid() {
    return this.specs.some((s) => s.overlay.x.length);
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
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const s of this.specs) {
      const d = data.get(`${s.run}\u0000${s.key}`) || { step: [], value: [] };
      const steps = d.step || [], values = d.value || [];
      s.band = Boolean(d.downsampled && d.min && d.max);
      s.n = steps.length;
      if (!this.range) s.lastStep = steps.length ? steps[steps.length - 1] : -Infinity;
      else s.lastStep = Math.max(s.lastStep, steps.length ? steps[steps.length - 1] : -Infinity);
      // the snapshot holds these already
      const o = s.overlay;
      const keep = o.x.findIndex((x) => x > s.lastStep);
      s.overlay = keep < 0 ? { x: [], y: [] } : { x: o.x.slice(keep), y: o.y.slice(keep) };
      if (steps.length) { x0 = Math.min(x0, steps[0]); x1 = Math.max(x1, steps[steps.length - 1]); }
      for (const v of values) if (Number.isFinite(v)) { y0 = Math.min(y0, v); y1 = Math.max(y1, v); }
      const common = { type: this.type, mode: "lines", legendgroup: `${s.run}:${s.key}`, hoverinfo: "skip", showlegend: false,
        line: { width: 0, color: s.colour } };
      out.push({ ...common, x: s.band ? steps.slice() : [], y: s.band ? d.max.slice() : [], name: `${s.name} max` });
      out.push({ ...common, x: s.band ? steps.slice() : [], y: s.band ? d.min.slice() : [], name: `${s.name} min`,
        fill: "tonexty", fillcolor: hexToRgba(s.colour, 0.18) });
      out.push({ type: this.type, mode: steps.length < 60 ? "lines+markers" : "lines", x: steps.slice(), y: values.slice(),
        name: s.name, legendgroup: `${s.run}:${s.key}`, line: { width: 1.8, color: s.colour }, marker: { size: 4 },
        hovertemplate: `${s.name}<br>step %{x}: %{y:.4g}<extra></extra>` });
    }
    // Invisible points that widen the auto-range past the newest step of a live run, so that the
    // next live points land inside the view and are painted on the overlay without a redraw.
    const head = { x: [], y: [] };
    if (this.live && x1 > -Infinity && y1 > -Infinity) {
      const x = x1 + stepRoom(x1 - x0);
      head.x.push(x, x); head.y.push(y1, y0);
    }
    // (an invisible line, not markers: markers would make Plotly pad the step axis on both sides)
    out.push({ type: this.type, mode: "lines", x: head.x, y: head.y, name: "headroom", showlegend: false, hoverinfo: "skip",
      line: { width: 0 } });
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
      // every redraw (ours, a zoom, a resize) moves the axes: repaint the overlay on the new ones
      this.el.on("plotly_afterplot", () => this.paintOverlay());
      this.el.on("plotly_relayouting", () => this.clearOverlay());
      this.ready = true;
    } else {
      Plotly.react(this.el, this.traces(data), this.layout(), config);
    }
    this.paintOverlay();
    this.countPoints();
  }

  countPoints() {
    this.el.dataset.points = String(this.specs.reduce((a, s) => a + s.n + s.overlay.x.length, 0));
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

  /** Queue a live point; painted at the next animation frame together with every other queued point. */
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
    if (this.pending.size) { this.live = true; this.scheduleFlush(); }
  }

  /** Move the arrived points onto the overlay and paint it; queue a merge where the view must grow. */
  flush() {
    this.flushScheduled = false;
    if (!this.ready || !this.pending.size) return;
    const xs = [], ys = [];
    for (const [i, p] of this.pending) {
      const o = this.specs[i].overlay;
      o.x.push(...p.x); o.y.push(...p.y);
      xs.push(...p.x); ys.push(...p.y);
    }
    const arrived = probe ? [...this.pending].map(([i, p]) => [this.specs[i], p.x[p.x.length - 1]]) : [];
    this.pending.clear();
    const xa = axis(this.el, "x"), ya = axis(this.el, "y");
    const head = xa && ya ? headroomFor(xa.range, ya.range, xs, ys, { xAuto: xa.autorange, yAuto: ya.autorange }) : null;
    const painted = this.paintOverlay();
    this.countPoints();
    if (head) { this.head = widerHead(this.head, head); requestMerge(this, { urgent: head.hidden }); }
    // Points the view cannot show yet appear when the merge lands; for those (rare: a value jumping
    // past the range) the merge skips the wait between cycles. Where the overlay cannot paint at all
    // (no layout yet) every point waits for a merge, paced like any other.
    if (!painted) requestMerge(this);
    if (!painted || (head && head.hidden)) return;
    probeDraws(arrived, "overlay");
    if (this.specs.some((s) => s.overlay.x.length >= OVERLAY_MAX)) requestMerge(this);
    else if (this.mergeTimer === null) this.mergeTimer = setTimeout(() => { this.mergeTimer = null; requestMerge(this); }, OVERLAY_MERGE_MS);
  }

  /** Hand the overlay's points (and any headroom) to Plotly in one extendTraces: one redraw. */
  merge() {
    clearTimeout(this.mergeTimer);
    this.mergeTimer = null;
    if (!this.ready) return;
    if (!this.visible && !this.head) return;   // scrolled away: merged when it is next painted
    const x = [], y = [], idx = [], arrived = [];
    this.specs.forEach((s, i) => {
      const o = s.overlay;
      if (!o.x.length) return;
      if (s.band) { x.push(o.x, o.x.slice()); y.push(o.y, o.y.slice()); idx.push(TRACES_PER_SPEC * i, TRACES_PER_SPEC * i + 1); }
      x.push(o.x); y.push(o.y); idx.push(TRACES_PER_SPEC * i + 2);
      s.n += o.x.length;
      arrived.push([s, o.x[o.x.length - 1]]);
      s.overlay = { x: [], y: [] };
    });
    if (this.head) { x.push(this.head.x); y.push(this.head.y); idx.push(this.headIndex()); this.head = null; }
    if (!idx.length) return;
    Plotly.extendTraces(this.el, { x, y }, idx);
    this.paintOverlay();
    this.countPoints();
    probeDraws(arrived, "merge");
    // after many live points, re-bucket on the server so the browser keeps drawing ~maxPoints
    if (!this.range && this.specs.some((s) => s.n > 4 * this.maxPoints)) this.load();
  }

  clearOverlay() {
    if (this.canvas) this.canvas.getContext("2d").clearRect(0, 0, this.canvas.width, this.canvas.height);
  }

  /**
   * Paint the unmerged points over the plot area on the current axes, each series continuing
   * from the last point of its Plotly line. Returns false where it cannot (no layout yet, an
   * axis that is not linear): the caller merges instead.
   */
  paintOverlay() {
    const area = plotArea(this.el);
    const host = this.el.querySelector(".svg-container");
    if (!area || !host) return false;
    const { l, t, w, h } = area;
    const px = axisMap(axis(this.el, "x"), w, false), py = axisMap(axis(this.el, "y"), h, true);
    if (!px || !py) return false;
    if (!this.overlaid()) { this.clearOverlay(); return true; }
    let cv = this.canvas;
    if (!cv || cv.parentNode !== host) {
      cv = this.canvas = document.createElement("canvas");
      cv.className = "live-overlay";
      cv.setAttribute("aria-hidden", "true");
      host.append(cv);
    }
    const dpr = window.devicePixelRatio || 1;
    const cw = Math.max(1, Math.round(w * dpr)), ch = Math.max(1, Math.round(h * dpr));
    if (cv.width !== cw || cv.height !== ch) { cv.width = cw; cv.height = ch; }
    Object.assign(cv.style, { left: `${l}px`, top: `${t}px`, width: `${w}px`, height: `${h}px` });
    const ctx = cv.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    const data = this.el.data || [];
    this.specs.forEach((s, i) => {
      const o = s.overlay;
      const line = data[TRACES_PER_SPEC * i + 2];
      if (!o.x.length || !line || !traceShown(this.el, TRACES_PER_SPEC * i + 2)) return;
      ctx.strokeStyle = s.colour;
      ctx.fillStyle = s.colour;
      ctx.lineWidth = 1.8;
      ctx.lineJoin = "round";
      ctx.beginPath();
      let pen = false;
      const n = line.x.length;
      if (n && Number.isFinite(line.y[n - 1])) { ctx.moveTo(px(line.x[n - 1]), py(line.y[n - 1])); pen = true; }
      for (let k = 0; k < o.x.length; k++) {
        if (!Number.isFinite(o.y[k])) { pen = false; continue; }
        const X = px(o.x[k]), Y = py(o.y[k]);
        if (pen) ctx.lineTo(X, Y); else ctx.moveTo(X, Y);
        pen = true;
      }
      ctx.stroke();
      if (String(line.mode || "").includes("markers")) {
        for (let k = 0; k < o.x.length; k++) {
          if (!Number.isFinite(o.y[k])) continue;
          ctx.beginPath();
          ctx.arc(px(o.x[k]), py(o.y[k]), 2, 0, 2 * Math.PI);
          ctx.fill();
        }
      }
    });
    return true;
  }
}
