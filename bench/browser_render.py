"""Render time of the heaviest dashboard pages in headless Chromium, against a live daphne.

1. Samples page with one 20,480-token sample carrying all 9 per-token channels: time from
   navigation start until every token is in the DOM (API fetches included), the heatmap's own
   share, and a channel switch. Baseline in the same browser: the naive rendering (one span and
   two listeners per token, appended at once, then a forced layout).
2. Run page whose 12 charts each hold 100,000 points (12 catalog keys in 12 (group, unit) charts):
   time from navigation start until every chart has drawn what the server sent (the API
   downsamples to max_points per series, min/max preserved). Baseline: the same page with 1,000
   points per chart.

3. Token explanation (issue 12) on that sample: focus token 100 (20k later tokens contribute) until
   the panel is filled, to the next frame. Baseline: the naive panel, one table row per contributing
   token (20k rows), then a forced layout.

Targets (issue 5): sample < 1 s, run page < 2 s.
Usage: .venv/bin/python bench/browser_render.py [--reps 3] [--points 100000] [--skip-charts]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import (  # noqa: E402
    DashboardServer,
    browser_skip_reason,
    launch_chromium,
    running_dashboard,
)
from tests.support.synthetic import sample_event  # noqa: E402

# one key per (group, unit) chart of the run page
TWELVE_KEYS = ["reward/mean", "accuracy/mean", "advantage/mean_length_weighted", "response_length/mean",
               "response_length/clip_ratio", "sampling/num_gen_batches", "sampling/kept_group_fraction",
               "actor/pg_loss", "actor/pg_clipfrac", "actor/ppo_kl", "actor/influence_weights_mean", "actor/entropy"]

EXPLAIN_JS = """(t) => new Promise(res => {
  if (!document.getElementById('explain')) return res(null);  // code before issue 12
  const span = document.querySelector(`#tokens span[data-i='${t}']`);
  span.tabIndex = -1;
  const t0 = performance.now();
  span.focus();
  if (document.getElementById('explain').dataset.token !== String(t)) throw new Error('no explanation');
  requestAnimationFrame(() => setTimeout(() => res(performance.now() - t0), 0));
})"""

NAIVE_EXPLAIN_JS = """({sample, t}) => {
  const lr = sample.channels.log_ratio, g = 2 ** (-1 / 32);
  if (!lr) return null;  // samples before issue 12
  const t0 = performance.now();
  const table = document.createElement('table');
  for (let k = t, d = 1; k < lr.length; k++, d *= g) {
    const tr = table.insertRow();
    tr.insertCell().textContent = sample.tokens[k];
    tr.insertCell().textContent = String(lr[k]);
    tr.insertCell().textContent = String(d * lr[k]);
  }
  document.body.append(table);
  table.getBoundingClientRect();
  const ms = performance.now() - t0;
  table.remove();
  return ms;
}"""

NAIVE_JS = """(sample) => {
  const root = document.createElement('div');
  root.className = 'tokens';
  document.body.append(root);
  const t0 = performance.now();
  const v = sample.channels.future_kl;
  let mx = 0; for (const x of v) if (x !== null) mx = Math.max(mx, Math.abs(x));
  sample.tokens.forEach((tok, i) => {
    const s = document.createElement('span');
    s.textContent = tok;
    const d = v[i] === null ? 0 : v[i] / mx;
    s.style.background = d >= 0 ? `rgba(178,24,43,${d})` : `rgba(33,102,172,${-d})`;
    s.addEventListener('mouseenter', () => { s.title = String(v[i]); });
    s.addEventListener('focus', () => { s.title = String(v[i]); });
    root.append(s);
  });
  root.getBoundingClientRect();
  const ms = performance.now() - t0;
  root.remove();
  return ms;
}"""


def post_metrics(server: DashboardServer, run_id: int, token: str, points: int, batch: int = 4000) -> float:
    t0 = time.perf_counter()
    for start in range(1, points + 1, batch):
        events = []
        for step in range(start, min(points, start + batch - 1) + 1):
            values = {k: round(((step * (i + 3)) % 997) / 997.0 + i, 4) for i, k in enumerate(TWELVE_KEYS)}
            events.append({"type": "metric", "step": step, "values": values})
        server.post_events(run_id, token, events)
    return time.perf_counter() - t0


BREAKDOWN_JS = """() => {
  const out = {};
  for (const e of performance.getEntriesByType('resource')) {
    const u = new URL(e.name);
    const key = u.pathname.replace(/\\d+/g, 'N');
    out[key] = [Math.round(e.startTime), Math.round(e.responseEnd)];
  }
  for (const m of performance.getEntriesByType('mark')) out[m.name] = Math.round(m.startTime);
  const nav = performance.getEntriesByType('navigation')[0];
  out['domContentLoaded'] = Math.round(nav.domContentLoadedEventEnd);
  return out;
}"""


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--tokens", type=int, default=20_480)
    parser.add_argument("--skip-charts", action="store_true", help="only the samples page (cases 1 and 3)")
    args = parser.parse_args()
    reason = browser_skip_reason()
    if reason:
        sys.exit(f"cannot run: {reason}")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, running_dashboard(Path(tmp), tag="bench_render") as server, \
            sync_playwright() as pw:
        browser = launch_chromium(pw)
        ctx = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=server.base_url)
        ctx.add_cookies(server.login_cookie("alice"))
        page = ctx.new_page()
        page.set_default_timeout(120_000)

        # ---- 1. the 20,480-token sample
        run = server.create_run("bench sample")
        token = server.start_runs(run["id"])[run["id"]]
        server.post_events(run["id"], token, [sample_event(1, step=1, index=0, n_tokens=args.tokens, seed=2)])
        sample_id = server.api().get(f"/runs/{run['id']}/samples/", params={"step": 1}).json()["results"][0]["id"]
        t0 = time.perf_counter()
        server.api().get(f"/samples/{sample_id}/").raise_for_status()
        api_ms = (time.perf_counter() - t0) * 1000
        sample_rows = []
        load_ms, heat_ms, switch_ms, naive_ms, first_ms, explain_ms, naive_explain_ms = [], [], [], [], [], [], []
        for _ in range(args.reps):
            page.goto(f"/runs/{run['id']}/samples/?step=1&sample={sample_id}&probe=1")   # probe: the render marks
            page.wait_for_selector(f"#tokens[data-rendered='{args.tokens}']")
            load_ms.append(page.evaluate("() => performance.now()"))
            sample_breakdown = page.evaluate(BREAKDOWN_JS)
            first_ms.append(sample_breakdown["fipo:first-chunk"])
            heat_ms.append(float(page.evaluate("() => Number(document.getElementById('sample-body').dataset.renderMs)")))
            switch_ms.append(page.evaluate("""() => new Promise(res => {
                const t0 = performance.now();
                document.querySelector("button[data-channel='ratio']").click();
                requestAnimationFrame(() => setTimeout(() => res(performance.now() - t0), 0));
            })"""))
            sample = page.evaluate("() => fetch('/api/v1/samples/' + document.querySelector('tr[data-sample]').dataset.sample + '/').then(r => r.json())")
            naive_ms.append(page.evaluate(NAIVE_JS, sample))
            explain_ms.append(page.evaluate(EXPLAIN_JS, 100))
            naive_explain_ms.append(page.evaluate(NAIVE_EXPLAIN_JS, {"sample": sample, "t": 100}))
        sample_rows.append((f"samples page, {args.tokens:,} tokens x 9 channels: navigation -> all tokens in DOM",
                            f"{med(load_ms):.0f}", f"{min(load_ms):.0f}", "< 1000"))
        sample_rows.append(("  navigation -> first screen of tokens in DOM (first chunk)", f"{med(first_ms):.0f}",
                            f"{min(first_ms):.0f}", ""))
        sample_rows.append(("  GET /api/v1/samples/<id>/ alone (server, from the bench process)", f"{api_ms:.0f}", "", ""))
        sample_rows.append(("  of which the heatmap (bins, legend, strip, chunked DOM)", f"{med(heat_ms):.0f}",
                            f"{min(heat_ms):.0f}", ""))
        sample_rows.append(("  channel switch (future-KL -> ratio), to next frame", f"{med(switch_ms):.0f}",
                            f"{min(switch_ms):.0f}", ""))
        sample_rows.append(("  baseline: naive DOM (span + 2 listeners per token, one layout)", f"{med(naive_ms):.0f}",
                            f"{min(naive_ms):.0f}", ""))
        sample_rows.append(("  ratio heatmap / naive baseline", f"{med(heat_ms) / med(naive_ms):.2f}", "", ""))
        explain_ms = [v for v in explain_ms if v is not None] or [math.nan]
        naive_explain_ms = [v for v in naive_explain_ms if v is not None] or [math.nan]
        sample_rows.append(("explain token 100 (O(L) pass, top 10 rows + summary), to next frame", f"{med(explain_ms):.0f}",
                            f"{min(explain_ms):.0f}", ""))
        sample_rows.append(("  baseline: one row per contributing token, one layout", f"{med(naive_explain_ms):.0f}",
                            f"{min(naive_explain_ms):.0f}", ""))
        if args.skip_charts:
            browser.close()
            print(f"\nChromium headless, {args.reps} reps, median and best (ms)\n")
            print(table(sample_rows, ("measure", "median ms", "best ms", "target")))
            print("\nsamples page:", sample_breakdown)
            return

        # ---- 2. run page, 12 charts x N points (and the 1,000-point baseline)
        chart_rows = []
        breakdowns: dict[int, dict] = {}
        for points in (1000, args.points):
            run = server.create_run(f"bench charts {points}")
            token = server.start_runs(run["id"])[run["id"]]
            ingest_s = post_metrics(server, run["id"], token, points)
            page.goto(f"/runs/{run['id']}/?probe=1")   # warm-up (plotly.js into the cache), not measured
            page.wait_for_function("() => document.body.dataset.chartsReady === '12'")
            times = []
            for _ in range(args.reps):
                page.goto(f"/runs/{run['id']}/?probe=1")   # probe: the render marks in the breakdown
                page.wait_for_function("() => document.body.dataset.chartsReady === '12'")
                times.append(page.evaluate("() => performance.now()"))
                breakdowns[points] = page.evaluate(BREAKDOWN_JS)
            drawn = page.evaluate("() => [...document.querySelectorAll('.chart')].map(c => Number(c.dataset.points))")
            chart_rows.append((f"run page, 12 charts x {points:,} points: navigation -> all charts drawn",
                               f"{med(times):.0f}", f"{min(times):.0f}", "< 2000" if points == args.points else "baseline",
                               f"{sum(drawn) // len(drawn)}", f"{ingest_s:.1f}"))
        base, big = float(chart_rows[0][1]), float(chart_rows[1][1])
        browser.close()

    print(f"\nChromium headless, {args.reps} reps, median and best (ms); server: daphne + "
          f"{'PostgreSQL' if server.env.get('DATABASE_URL') else 'SQLite'}\n")
    print(table(sample_rows, ("measure", "median ms", "best ms", "target")))
    print()
    print(table(chart_rows, ("measure", "median ms", "best ms", "target", "points drawn/chart", "ingest s")))
    print(f"\nratio {args.points:,}-point page / 1,000-point page: {big / base:.2f}")
    print("\nwhere the time goes (last rep; ms since navigation start; resources as [start, end]):")
    print("samples page:", sample_breakdown)
    print(f"run page, {args.points:,} points:", breakdowns[args.points])


if __name__ == "__main__":
    main()
