// Every read of Plotly's undocumented internals, in one place.
//
// The live overlay (charts.js) paints points on a <canvas> over the plot area, so it must know
// where Plotly put that area and which data range each axis shows *after* autorange and margins
// were resolved. Plotly's public API does not expose that: it lives on the graph div as
// `_fullLayout` (resolved layout: `_size` is the plot area in px, `xaxis`/`yaxis` the resolved
// axes) and `_fullData` (resolved traces: `visible` after legend clicks). These names can change
// in any Plotly release, so nothing else in the dashboard reads them: each function below returns
// a plain object of its own, and tests/e2e/test_plotly_internals.py draws a real plot with the
// served plotly.min.js and checks every function's answer. That test also checks that the served
// bundle is PLOTLY_JS_VERSION, so upgrading Plotly fails it until this file has been re-checked.

/** The plotly.js version these functions were checked against (pyproject.toml pins the package). */
export const PLOTLY_JS_VERSION = "4.1.1";

/**
 * The plot area (inside the margins) in CSS px from the graph div's top-left corner:
 * {l, t, w, h}, or null before Plotly has drawn the plot.
 */
export function plotArea(el) {
  const size = el && el._fullLayout && el._fullLayout._size;
  if (!size) return null;
  return { l: size.l, t: size.t, w: size.w, h: size.h };
}

/**
 * The resolved state of an axis ("x" or "y": the first axis of that direction), or null before
 * Plotly has drawn the plot: {type: "linear" | "log" | "date" | "category" | ...,
 * range: [from, to] (the data range shown, after autorange), autorange: true while Plotly picks it}.
 */
export function axis(el, which) {
  const ax = el && el._fullLayout && el._fullLayout[`${which}axis`];
  if (!ax) return null;
  return { type: ax.type, range: Array.isArray(ax.range) ? ax.range.slice() : null, autorange: ax.autorange === true };
}

/**
 * Whether trace `index` is drawn: false once hidden (a legend click sets "legendonly"), true when
 * shown or not known to Plotly yet (the caller's own data is then the truth).
 */
export function traceShown(el, index) {
  const full = el && el._fullData;
  const trace = full ? full[index] : undefined;
  return !trace || trace.visible === true;
}
