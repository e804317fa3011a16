// Token heatmap of one sampled chain of thought (up to ~32k tokens).
//
// Why it stays smooth at 20,480 tokens:
// - tokens are rendered as one HTML string per chunk (~1,000 tokens ending at a newline) into a
//   <div class="chunk"> with `content-visibility: auto`, so the browser lays out only the chunks
//   on screen; chunks after the first are appended over a few animation frames (<= 40 ms each);
// - a token's colour is a class per colour bin (b0..b10, bn for missing), so switching channel
//   rewrites class names only;
// - one delegated listener per event type on the container (no per-token listeners); the tooltip
//   reads one bounding box, then writes (no layout thrash);
// - the strip chart is one canvas, one pixel column per bucket of tokens.

import { api } from "./api.js";
import { probeMark } from "./probe.js";

/** 11-class ColorBrewer palettes a channel of the catalog may name, index 0 = far below neutral.
 * RdBu reversed: blue below, red above (the token classes b0..b10 in app.css draw these colours). */
export const PALETTES = {
  RdBu: ["#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7",
    "#fddbc7", "#f4a582", "#d6604d", "#b2182b", "#67001f"],
};
export const PALETTE = PALETTES.RdBu;
const MID = 5;

let channelCatalog = null;
/**
 * The per-token channel catalog (GET /api/v1/tracking/channels, fipo_engine/token_channels.py):
 * `{byName: Map(name -> {name, label, meaning, unit, scale, neutral, palette, colour}), colour: [names]}`
 * where `colour` lists the channels offered as colourings, in the catalog's order (the first is the default).
 */
export function loadChannels() {
  if (!channelCatalog) {
    channelCatalog = api("tracking/channels").then((raw) => {
      const list = raw.channels || [];
      return { byName: new Map(list.map((c) => [c.name, c])), colour: list.filter((c) => c.colour).map((c) => c.name) };
    });
    channelCatalog.catch(() => { channelCatalog = null; });  // a failed load is retried by the next caller
  }
  return channelCatalog;
}

const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" };
const escapeHtml = (s) => s.replace(/[&<>"]/g, (c) => ESC[c]);

/** Robust half-width of the colour scale: 99th percentile of |x - neutral| (outliers saturate). */
export function scaleOf(values, neutral) {
  const dev = [];
  for (const v of values) if (v !== null && Number.isFinite(v)) dev.push(Math.abs(v - neutral));
  if (!dev.length) return 1;
  const arr = Float64Array.from(dev).sort();
  const q = arr[Math.min(arr.length - 1, Math.floor(0.99 * arr.length))];
  return q > 0 ? q : arr[arr.length - 1] || 1;
}

/** Colour bin 0..10 of a value, or -1 when missing. */
export function binOf(v, neutral, scale) {
  if (v === null || v === undefined || !Number.isFinite(v)) return -1;
  const d = Math.max(-1, Math.min(1, (v - neutral) / scale));
  return MID + Math.round(d * MID);
}

/** Split token indices into chunks of ~`size` tokens, preferring to end a chunk after a newline. */
export function chunkBounds(tokens, size = 1000) {
  const bounds = [];
  let start = 0;
  const n = tokens.length;
  while (start < n) {
    let end = Math.min(n, start + size);
    if (end < n) {
      const hardEnd = Math.min(n, start + 2 * size);
      while (end < hardEnd && !tokens[end - 1].includes("\n")) end += 1;
    }
    bounds.push([start, end]);
    start = end;
  }
  return bounds;
}

const showWs = (t) => t.replace(/ /g, "␣").replace(/\n/g, "↵").replace(/\t/g, "⇥");

export class TokenHeatmap {
  /**
   * @param {{tokens: HTMLElement, strip: HTMLCanvasElement, legend: HTMLElement, tooltip: HTMLElement}} els
   * @param {{onSelect?: (i: number) => void, catalog: {byName: Map, colour: string[]}}} hooks onSelect: a
   *   token was clicked or got keyboard focus; catalog: the channel catalog (`loadChannels()`)
   */
  constructor(els, hooks) {
    this.els = els;
    this.catalog = hooks.catalog;
    this.onSelect = hooks.onSelect || (() => {});
    this.marked = [];
    this.tokens = [];
    this.channels = {};
    this.channel = null;
    this.bins = null;
    this.active = -1;
    this.renderToken = 0;
    els.tokens.addEventListener("mouseover", (e) => this.onHover(e));
    els.tokens.addEventListener("mouseleave", () => { if (document.activeElement?.parentNode?.parentNode !== els.tokens) this.hideTip(); });
    els.tokens.addEventListener("focusin", (e) => this.onFocus(e));
    els.tokens.addEventListener("focusout", () => this.hideTip());
    els.tokens.addEventListener("keydown", (e) => this.onKey(e));
    // A mouse press focuses the nearest focusable ancestor: make the pressed token focusable first, or
    // the container would get focus, move it to the first token and scroll the pressed one away.
    els.tokens.addEventListener("mousedown", (e) => {
      const span = e.target.closest && e.target.closest("span[data-i]");
      if (!span) return;
      const prev = els.tokens.querySelector("span[tabindex]");
      if (prev && prev !== span) prev.removeAttribute("tabindex");
      span.tabIndex = -1;
    });
    els.tokens.addEventListener("click", (e) => {
      const span = e.target.closest && e.target.closest("span[data-i]");
      if (span) this.focusToken(+span.dataset.i, false);
    });
    els.strip.addEventListener("click", (e) => this.onStripClick(e));
    els.strip.addEventListener("keydown", (e) => this.onStripKey(e));
    this.stripCursor = 0;
    this.resizeObs = new ResizeObserver(() => this.drawStrip());
    this.resizeObs.observe(els.strip);
  }

  /** The catalog entry of a channel (undefined for a channel the catalog does not know). */
  spec(name) {
    return this.catalog.byName.get(name);
  }

  /** Available colour channels of the loaded sample. */
  available() {
    return this.catalog.colour.filter((c) => Array.isArray(this.channels[c]) && this.channels[c].length);
  }

  /**
   * Show a sample. Resolves when every chunk is in the DOM.
   * @param {{tokens: string[], channels: Object<string, (number|null)[]>}} sample
   * @param {string} channel
   */
  setSample(sample, channel) {
    this.tokens = sample.tokens || [];
    this.channels = sample.channels || {};
    this.active = -1;
    this.marked = [];
    const avail = this.available();
    this.channel = avail.includes(channel) ? channel : avail[0] || null;
    this.computeBins();
    this.drawLegend();
    this.drawStrip();
    return this.renderTokens();
  }

  setChannel(channel) {
    if (!this.available().includes(channel) || channel === this.channel) return;
    this.channel = channel;
    this.computeBins();
    this.drawLegend();
    this.drawStrip();
    // rewrite class names only (chunks are children of the container, spans of each chunk)
    const bins = this.bins;
    for (const chunk of this.els.tokens.children) {
      for (const span of chunk.children) {
        const b = bins[+span.dataset.i];
        span.className = b < 0 ? "bn" : `b${b}`;
      }
    }
    if (this.active >= 0) this.showTip(this.spanAt(this.active));
  }

  computeBins() {
    const n = this.tokens.length;
    this.bins = new Int8Array(n).fill(-1);
    const spec = this.spec(this.channel);
    const values = this.channel ? this.channels[this.channel] : null;
    if (!spec || !values) { this.scale = 1; return; }
    this.scale = scaleOf(values, spec.neutral);
    for (let i = 0; i < n; i++) this.bins[i] = binOf(values[i], spec.neutral, this.scale);
  }

  renderTokens() {
    const root = this.els.tokens;
    root.replaceChildren();
    const token = ++this.renderToken;
    const bounds = chunkBounds(this.tokens);
    const buildChunk = ([a, b]) => {
      const parts = new Array(b - a);
      const bins = this.bins;
      for (let i = a; i < b; i++) {
        const bin = bins[i];
        parts[i - a] = `<span class="${bin < 0 ? "bn" : `b${bin}`}" data-i="${i}">${escapeHtml(this.tokens[i])}</span>`;
      }
      const div = document.createElement("div");
      div.className = "chunk";
      div.innerHTML = parts.join("");
      return div;
    };
    return new Promise((resolve) => {
      let next = 0;
      // The first chunk goes in at once (the first screen of text); the rest follows in slices of
      // at most ~40 ms of work per frame, short enough for input to stay responsive (RAIL: 50 ms)
      // and few enough frames that 20k tokens are complete within a few frames.
      const step = () => {
        if (token !== this.renderToken) return resolve(false);
        const t0 = performance.now();
        const frag = document.createDocumentFragment();
        const budget = next === 0 ? 0 : 40;
        do frag.append(buildChunk(bounds[next++]));
        while (next < bounds.length && performance.now() - t0 < budget);
        root.append(frag);
        if (next === 1 || next === bounds.length) probeMark(next === 1 ? "fipo:first-chunk" : "fipo:all-chunks");
        if (next < bounds.length) requestAnimationFrame(step);
        else { root.dataset.rendered = String(this.tokens.length); resolve(true); }
      };
      root.dataset.rendered = "";
      step();
    });
  }

  /**
   * Mark tokens (a `data-mark` attribute, so a channel switch, which rewrites class names, keeps it):
   * `marks` maps a token index to a mark name; the previous marks are cleared.
   * @param {Map<number, string>} marks
   */
  mark(marks) {
    for (const span of this.marked) delete span.dataset.mark;
    this.marked = [];
    for (const [i, name] of marks) {
      const span = this.spanAt(i);
      if (span) { span.dataset.mark = name; this.marked.push(span); }
    }
  }

  spanAt(i) {
    return this.els.tokens.querySelector(`span[data-i="${i}"]`);
  }

  onHover(e) {
    const span = e.target.closest && e.target.closest("span[data-i]");
    if (span) this.showTip(span);
  }

  onFocus(e) {
    const span = e.target.closest && e.target.closest("span[data-i]");
    if (span) { this.active = +span.dataset.i; this.showTip(span); this.drawStrip(); this.onSelect(this.active); return; }
    // focus on the container itself: move into the tokens (roving focus)
    if (e.target === this.els.tokens && this.tokens.length) this.focusToken(this.active >= 0 ? this.active : 0, false);
  }

  onKey(e) {
    if (this.active < 0) return;
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: 20, ArrowUp: -20, PageDown: 200, PageUp: -200 };
    let target = null;
    if (e.key in moves) target = this.active + moves[e.key];
    else if (e.key === "Home") target = 0;
    else if (e.key === "End") target = this.tokens.length - 1;
    else if (e.key === "Escape") { this.hideTip(); this.els.tokens.focus(); return; }
    if (target === null) return;
    e.preventDefault();
    this.focusToken(Math.max(0, Math.min(this.tokens.length - 1, target)), false);
  }

  /** Scroll to token i, focus it (tooltip follows) and optionally flash it. */
  focusToken(i, flash = true) {
    const span = this.spanAt(i);
    if (!span) return;
    const prev = this.els.tokens.querySelector("span[tabindex]");
    if (prev && prev !== span) prev.removeAttribute("tabindex");
    span.tabIndex = -1;
    span.scrollIntoView({ block: "nearest", inline: "nearest" });
    span.focus({ preventScroll: true });
    if (flash) {
      span.scrollIntoView({ block: "center" });
      span.classList.add("flash");
      setTimeout(() => span.classList.remove("flash"), 1200);
    }
  }

  showTip(span) {
    const i = +span.dataset.i;
    const tip = this.els.tooltip;
    const rows = Object.keys(this.channels)
      .filter((c) => Array.isArray(this.channels[c]))
      .map((c) => {
        const v = this.channels[c][i];
        const txt = v === null || v === undefined ? "–" : Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : v.toFixed(4);
        return `<tr class="${c === this.channel ? "active" : ""}"><td>${escapeHtml((this.spec(c) || { label: c }).label)}</td><td>${txt}</td></tr>`;
      }).join("");
    tip.innerHTML = `<div>token ${i + 1} of ${this.tokens.length} <span class="tok">${escapeHtml(showWs(this.tokens[i]))}</span></div><table>${rows}</table>`;
    tip.hidden = false;
    const r = span.getBoundingClientRect();             // one read ...
    const w = tip.offsetWidth, hgt = tip.offsetHeight;
    let x = Math.min(window.innerWidth - w - 8, Math.max(8, r.left));
    let y = r.bottom + 6;
    if (y + hgt > window.innerHeight - 8) y = r.top - hgt - 6;
    tip.style.transform = `translate(${Math.round(x)}px, ${Math.round(y)}px)`;   // ... then writes
    tip.style.left = "0"; tip.style.top = "0";
    tip.dataset.index = String(i);
  }

  hideTip() { this.els.tooltip.hidden = true; }

  drawLegend() {
    const el = this.els.legend;
    const spec = this.spec(this.channel);
    if (!spec) { el.textContent = "This sample carries no per-token channels."; return; }
    const lo = spec.neutral - this.scale, hi = spec.neutral + this.scale;
    const f = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toPrecision(2));
    el.innerHTML = "";
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.setAttribute("aria-hidden", "true");
    for (const c of PALETTES[spec.palette] || PALETTE) { const s = document.createElement("span"); s.style.background = c; bar.append(s); }
    const wrap = document.createElement("div");
    const ticks = document.createElement("div");
    ticks.className = "ticks";
    ticks.innerHTML = `<span>≤ ${f(lo)}</span><span>${f(spec.neutral)}</span><span>≥ ${f(hi)}</span>`;
    wrap.append(bar, ticks);
    const text = document.createElement("span");
    text.textContent = `${spec.label}: ${spec.meaning} Scale clipped at the 99th percentile of |x − ${spec.neutral}|; grey text = no value.`;
    el.append(wrap, text);
  }

  /** One pixel column per bucket of tokens: the value farthest from neutral, as a bar up or down. */
  drawStrip() {
    const c = this.els.strip;
    const dpr = window.devicePixelRatio || 1;
    const W = Math.max(1, Math.round(c.clientWidth * dpr)), H = Math.max(1, Math.round(c.clientHeight * dpr));
    if (c.width !== W) c.width = W;
    if (c.height !== H) c.height = H;
    const ctx = c.getContext("2d");
    ctx.clearRect(0, 0, W, H);
    const n = this.tokens.length;
    const spec = this.spec(this.channel);
    const values = spec && this.channels[this.channel];
    ctx.fillStyle = "#c9d1dc";
    ctx.fillRect(0, Math.floor(H / 2), W, 1);
    if (!n || !values) return;
    this.columns = new Int32Array(W).fill(-1);
    for (let x = 0; x < W; x++) {
      const a = Math.floor((x * n) / W), b = Math.max(a + 1, Math.floor(((x + 1) * n) / W));
      let best = -1, bestDev = -1;
      for (let i = a; i < b && i < n; i++) {
        const v = values[i];
        if (v === null || !Number.isFinite(v)) continue;
        const d = Math.abs(v - spec.neutral);
        if (d > bestDev) { bestDev = d; best = i; }
      }
      this.columns[x] = best;
      if (best < 0) continue;
      const d = Math.max(-1, Math.min(1, (values[best] - spec.neutral) / this.scale));
      const bin = MID + Math.round(d * MID);
      const len = Math.max(1, Math.abs(d) * (H / 2 - 1));
      ctx.fillStyle = bin === MID ? "#c9d1dc" : (PALETTES[spec.palette] || PALETTE)[bin];
      if (d >= 0) ctx.fillRect(x, H / 2 - len, 1, len);
      else ctx.fillRect(x, H / 2, 1, len);
    }
    if (this.active >= 0) {
      ctx.fillStyle = "#111a25";
      ctx.fillRect(Math.floor((this.active / n) * W), 0, Math.max(1, dpr), H);
    }
    c.setAttribute("aria-label", `Strip chart of ${spec.label} along ${n} tokens. Click or press Enter to jump.`);
  }

  columnAt(clientX) {
    const c = this.els.strip;
    const r = c.getBoundingClientRect();
    return Math.max(0, Math.min(c.width - 1, Math.floor(((clientX - r.left) / r.width) * c.width)));
  }

  jumpToColumn(x) {
    if (!this.columns || !this.tokens.length) return;
    let i = this.columns[x];
    if (i < 0) i = Math.floor((x / this.els.strip.width) * this.tokens.length);
    this.focusToken(i, true);
  }

  onStripClick(e) { this.jumpToColumn(this.columnAt(e.clientX)); }

  onStripKey(e) {
    const c = this.els.strip;
    const stepPx = Math.max(1, Math.round(c.width / 100));
    if (e.key === "ArrowRight") this.stripCursor = Math.min(c.width - 1, this.stripCursor + stepPx);
    else if (e.key === "ArrowLeft") this.stripCursor = Math.max(0, this.stripCursor - stepPx);
    else if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this.jumpToColumn(this.stripCursor); return; }
    else return;
    e.preventDefault();
    const ctx = c.getContext("2d");
    this.drawStrip();
    ctx.fillStyle = "#f0a500";
    ctx.fillRect(this.stripCursor, 0, Math.max(2, window.devicePixelRatio || 1), c.height);
  }
}
