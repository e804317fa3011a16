// The one test hook for timing measurements (bench/browser_latency.py, bench/browser_render.py),
// off unless asked for.
//
// Open a page with `?probe=1` in its URL and it records, in `window.__fipoProbe`:
// - `arrivals`: the wall-clock time (Date.now(), the bench's clock too) of every websocket message;
// - `draws`: [metric key, step, time, "overlay" | "merge"] each time a chart first shows a
//   series' newest point (painted on the live overlay, or merged into the Plotly traces).
// Without the parameter `probe` is null and every call below returns at once: users' pages carry
// no probe state and no global.

const enabled = typeof location !== "undefined" && new URLSearchParams(location.search).get("probe") === "1";

/** The recorder, or null when the page was not opened with ?probe=1. */
export const probe = enabled ? { arrivals: [], draws: [] } : null;
if (probe) window.__fipoProbe = probe;
const shownStep = new WeakMap();   // series spec -> newest step recorded as shown

/** Record that a websocket message arrived. */
export function probeArrival() {
  if (probe) probe.arrivals.push(Date.now());
}

/**
 * Record that these series' newest points became visible, via "overlay" or "merge".
 * `arrived` holds [series spec, newest step] pairs (a spec is any object with a `key`); a step at
 * or below one already recorded for that spec (painted on the overlay, now merged) is not recorded
 * again. Only the newest step of a draw is recorded: earlier steps shown in it count as shown then.
 */
export function probeDraws(arrived, via) {
  if (!probe) return;
  const t = Date.now();
  for (const [spec, step] of arrived) {
    if (step <= (shownStep.get(spec) ?? -Infinity)) continue;
    shownStep.set(spec, step);
    probe.draws.push([spec.key, step, t, via]);
  }
}

/**
 * A named moment of a page's render (a User Timing mark, read by bench/browser_render.py), only
 * with ?probe=1.
 */
export function probeMark(name) {
  if (probe) performance.mark(name);
}

/** Record how long an element took to render, as `data-render-ms` on it, only with ?probe=1. */
export function probeRenderMs(el, ms) {
  if (probe) el.dataset.renderMs = String(Math.round(ms));
}
