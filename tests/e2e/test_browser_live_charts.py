"""Live chart drawing in a real browser: the overlay that shows live points without a Plotly
redraw, the headroom that keeps them inside the view, and a run page that costs nothing at rest.

The overlay (frontend/static/dashboard/js/charts.js) is what lets twenty open run pages keep up
with 10 events/s (bench/browser_latency.py); these tests pin down that what it paints is where
Plotly would draw the same points, and that the points reach Plotly's traces (hover) later.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.e2e.conftest import DashboardServer

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHART = "[data-chart='reward:score'] .chart"
BLUE = (0, 114, 178)   # COLOURS[0], the first series' colour


def wave(step: int) -> float:
    """A value that stays in the middle of its range (0.4-0.6): live points near 0.5 never touch a y edge."""
    return 0.5 + 0.1 * math.sin(step / 6)


def reward_events(first: int, last: int, value: Any = wave) -> list[dict[str, Any]]:
    return [{"type": "metric", "step": s, "values": {"reward/mean": value(s)}} for s in range(first, last + 1)]


def chart_state(page: Any) -> dict[str, Any]:
    """Read through the page's Plotly adapter (`window.pi`, see `open_running_run`), as charts.js does."""
    return page.evaluate(f"""() => {{
      const el = document.querySelector("{CHART}"), c = el.fipoChart, area = pi.plotArea(el);
      return {{ overlay: c.specs[0].overlay.x.slice(), plotly: el.data[2].x.slice(), xRange: pi.axis(el, "x").range,
                yRange: pi.axis(el, "y").range, size: {{ w: area.w, h: area.h }} }};
    }}""")


def open_running_run(page: Any, server: DashboardServer, name: str, steps: int,
                     query: str = "") -> tuple[dict[str, Any], str]:
    """A running run with `steps` reward points, its page open and live, the reward chart in view."""
    run = server.create_run(name)
    token = server.start_runs(run["id"])[run["id"]]
    server.post_events(run["id"], token, [{"type": "status", "state": "running", "message": "go"},
                                          *reward_events(1, steps)])
    page.goto(f"/runs/{run['id']}/{query}")
    page.wait_for_function("() => document.body.dataset.chartsReady")
    page.wait_for_selector("#conn[data-state='live']")
    page.evaluate("async () => { window.pi = await import('/static/dashboard/js/plotly_internals.js'); }")
    page.locator(CHART).scroll_into_view_if_needed()
    return run, token


def test_headroom_rules(page: Any) -> None:
    """`headroomFor`, the pure rule deciding when live points need a Plotly merge and how far the view grows."""
    page.goto("/runs/")
    out = page.evaluate("""async () => {
      const { headroomFor } = await import("/static/dashboard/js/charts.js");
      const r = (xr, yr, xs, ys, auto) => headroomFor(xr, yr, xs, ys, auto);
      const res = {
        inside: r([0, 100], [0, 1], [50], [0.5]),
        nearEnd: r([0, 100], [0, 1], [95], [0.5]),
        pastTop: r([0, 100], [0, 1], [50], [1.2]),
        nearBottom: r([0, 100], [-1, 1], [50], [-0.9]),
        nearZero: r([0, 100], [-0.5, 30], [50], [0.2]),
        pastBottom: r([0, 100], [10, 30], [50], [5]),
        nan: r([0, 100], [0, 1], [150], [NaN]),
        zoomed: r([0, 100], [0, 1], [150], [2], { xAuto: false, yAuto: false }),
        early: r([1, 5], [0.1, 0.5], [6], [0.3]),
      };
      // after a merge the newest point is never near an edge again (no merge on every event)
      const h = res.nearEnd;
      res.again = r([0, h.x[0]], [0, 1], [95], [0.5]);
      const t = res.pastTop;
      res.againTop = r([0, 100], [0, t.y[0]], [50], [1.2]);
      return res;
    }""")
    assert out["inside"] is None
    assert out["nearEnd"]["hidden"] is False and out["nearEnd"]["x"][0] == pytest.approx(95 + 0.3 * 100)
    assert out["nearEnd"]["y"] == [0.5, 0.5]                         # the value axis is left alone
    assert out["pastTop"]["hidden"] is True                          # shown only when the merge lands
    assert out["pastTop"]["y"][0] == pytest.approx(1.2 + 0.3 * 1.2)  # top edge moved past the new value
    assert out["pastTop"]["x"][0] == 50                              # the step axis is left alone
    assert out["nearBottom"]["y"][1] == pytest.approx(-1 - 0.3 * 2)
    assert out["nearZero"] is None                                   # non-negative values: no room below 0
    assert out["pastBottom"]["hidden"] is True and out["pastBottom"]["y"][1] == 0
    assert out["nan"] is None                                        # a NaN value draws nothing
    assert out["zoomed"] is None                                     # a user's zoom is kept
    assert out["early"]["x"][0] == 16 and out["early"]["hidden"] is True   # at least 10 steps of room
    assert out["again"] is None and out["againTop"] is None


def test_live_points_paint_where_plotly_draws_them_then_merge(page: Any, dashboard_server: DashboardServer) -> None:
    run, token = open_running_run(page, dashboard_server, "overlay", steps=80)
    before = chart_state(page)
    assert before["plotly"] == list(range(1, 81)) and before["xRange"][1] == pytest.approx(80)   # finished data: tight

    # the first live point near the end of the step axis widens it (a merge), the point shows meanwhile
    dashboard_server.post_events(run["id"], token, reward_events(81, 81))
    page.wait_for_function(f"() => pi.axis(document.querySelector(\"{CHART}\"), 'x').range[1] > 100")
    grown = chart_state(page)
    assert grown["xRange"][1] == pytest.approx(81 + 0.3 * 80, abs=1)
    assert grown["plotly"][-1] == 81 and grown["overlay"] == []

    # the next one lands inside the view: painted on the overlay, Plotly's traces untouched
    dashboard_server.post_events(run["id"], token, reward_events(82, 82, value=lambda s: 0.5))
    page.wait_for_function(f"() => document.querySelector(\"{CHART}\").fipoChart.specs[0].overlay.x.includes(82)")
    state = chart_state(page)
    assert state["plotly"][-1] == 81 and state["xRange"] == grown["xRange"]
    assert page.evaluate(f"() => document.querySelector(\"{CHART}\").dataset.points") == "82"
    (x0, x1), (y0, y1), size = state["xRange"], state["yRange"], state["size"]
    px = (82 - x0) / (x1 - x0) * size["w"]
    py = size["h"] - (0.5 - y0) / (y1 - y0) * size["h"]
    pixels = page.evaluate("""([px, py]) => {
      const cv = document.querySelector("[data-chart='reward:score'] .live-overlay"), dpr = window.devicePixelRatio || 1;
      const d = cv.getContext("2d").getImageData(Math.round(px * dpr) - 1, Math.round(py * dpr) - 1, 3, 3).data;
      const out = []; for (let i = 0; i < d.length; i += 4) out.push([d[i], d[i + 1], d[i + 2], d[i + 3]]);
      return { at: out, corner: cv.getContext("2d").getImageData(2, 2, 3, 3).data.some((v) => v !== 0) };
    }""", [px, py])
    solid = [p for p in pixels["at"] if p[3] > 200]
    assert solid, f"nothing painted at ({px:.1f}, {py:.1f}): {pixels['at']}"
    assert all(abs(c - b) <= 40 for p in solid for c, b in zip(p[:3], BLUE, strict=True))
    assert pixels["corner"] is False                                  # and nothing far from the line

    # hover needs Plotly's traces: the pointer entering the chart merges the overlay into them
    page.hover(CHART)
    page.wait_for_function(f"() => document.querySelector(\"{CHART}\").fipoChart.specs[0].overlay.x.length === 0")
    merged = chart_state(page)
    assert merged["plotly"][-2:] == [81, 82] and merged["plotly"] == sorted(set(merged["plotly"]))


def test_a_value_leaving_the_range_grows_the_value_axis(page: Any, dashboard_server: DashboardServer) -> None:
    run, token = open_running_run(page, dashboard_server, "overlay jump", steps=40)
    dashboard_server.post_events(run["id"], token, reward_events(41, 41, value=lambda s: 3.0))
    page.wait_for_function(f"() => document.querySelector(\"{CHART}\").data[2].x.includes(41)")
    state = chart_state(page)
    assert state["yRange"][1] > 3.0                                  # the jump is inside the view
    assert page.evaluate("() => window.__fipoProbe === undefined")   # the bench probe is off by default


def test_the_probe_records_arrivals_and_draws_when_asked(page: Any, dashboard_server: DashboardServer) -> None:
    """bench/browser_latency.py opens run pages with ?probe=1 and reads `window.__fipoProbe`."""
    run, token = open_running_run(page, dashboard_server, "probe", steps=40, query="?probe=1")
    dashboard_server.post_events(run["id"], token, reward_events(41, 41))
    page.wait_for_function("() => window.__fipoProbe.draws.some((d) => d[0] === 'reward/mean' && d[1] === 41)")
    probe = page.evaluate("() => window.__fipoProbe")
    assert probe["arrivals"] and all(isinstance(t, int | float) for t in probe["arrivals"])
    key, step, t, via = next(d for d in probe["draws"] if d[0] == "reward/mean")
    assert (key, step) == ("reward/mean", 41) and via in ("overlay", "merge")
    assert any(a <= t for a in probe["arrivals"])                    # drawn after its message arrived


def test_an_idle_run_page_runs_no_animation(page: Any, dashboard_server: DashboardServer) -> None:
    """An infinite CSS animation (the old pulsing "running" dot) makes the compositor draw 60 frames a
    second for as long as the page is open: 8% of a core per page in headless Chromium."""
    open_running_run(page, dashboard_server, "idle page", steps=5)
    page.wait_for_selector("#run-status .status.running")
    assert page.evaluate("() => document.getAnimations().filter((a) => a.playState === 'running').length") == 0
