"""The Plotly internals the dashboard reads, checked on the plotly.js the server really serves.

frontend/static/dashboard/js/plotly_internals.js is the only code that reads Plotly's private
state (``_fullLayout``, ``_size``, ``_fullData``). These tests draw real plots with the served
bundle and check every adapter function against a layout whose answer is known, so a Plotly
release that renames or reshapes those internals fails here, loudly, instead of the live overlay
silently painting nothing. The version checks make any Plotly upgrade stop here first: re-check the
adapter, then move the pin (pyproject.toml) and ``PLOTLY_JS_VERSION`` together.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from typing import Any

import pytest

from tests.e2e.conftest import ROOT
from webapp.dashboard.assets import plotly_js_version

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ADAPTER = "/static/dashboard/js/plotly_internals.js"


def pinned_plotly() -> str:
    """The version pyproject.toml pins the plotly package to (``plotly==X``)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = [m.group(1) for d in deps if (m := re.fullmatch(r"plotly\s*==\s*([\w.]+)", d.strip()))]
    assert pins, f"pyproject.toml must pin plotly with == (the adapter is checked on one bundle): {deps}"
    return pins[0]


def test_the_plotly_package_is_the_pinned_one() -> None:
    assert version("plotly") == pinned_plotly(), "the installed plotly is not the version pyproject.toml pins"


@pytest.fixture
def plot_page(page: Any) -> Any:
    """A dashboard page with the served plotly.min.js and the adapter loaded (as `window.pi`)."""
    page.goto("/runs/")
    page.add_script_tag(url=f"/assets/plotly-{plotly_js_version()}.min.js")
    page.evaluate(f"""async () => {{
      window.pi = await import("{ADAPTER}");
      const el = document.createElement("div");
      el.id = "probe-plot";
      document.body.prepend(el);
    }}""")
    return page


def test_the_served_bundle_is_the_one_the_adapter_was_checked_on(plot_page: Any) -> None:
    loaded, checked = plot_page.evaluate("() => [Plotly.version, pi.PLOTLY_JS_VERSION]")
    assert loaded == plotly_js_version(), "the page runs another plotly.js than the server's URL names"
    assert loaded == checked, (
        f"the server serves plotly.js {loaded}, but plotly_internals.js was checked on {checked}: "
        "re-check every function there against the new Plotly, then update PLOTLY_JS_VERSION")


def test_nothing_is_known_before_plotly_draws(plot_page: Any) -> None:
    out = plot_page.evaluate("""() => {
      const el = document.getElementById("probe-plot");
      return { area: pi.plotArea(el), x: pi.axis(el, "x"), shown: pi.traceShown(el, 0) };
    }""")
    assert out == {"area": None, "x": None, "shown": True}


def test_each_adapter_function_on_a_drawn_plot(plot_page: Any) -> None:
    out = plot_page.evaluate("""async () => {
      const el = document.getElementById("probe-plot");
      const snap = () => ({ area: pi.plotArea(el), x: pi.axis(el, "x"), y: pi.axis(el, "y"),
                            shown: [0, 1, 7].map((i) => pi.traceShown(el, i)) });
      await Plotly.newPlot(el, [
        { type: "scatter", mode: "lines", x: [0, 5, 10], y: [1, 2, 3] },
        { type: "scatter", mode: "lines", x: [0, 10], y: [2, 2] },
      ], { width: 600, height: 400, margin: { l: 50, r: 30, t: 20, b: 40 }, yaxis: { range: [0, 5] },
           showlegend: false });   // a legend would take room from the plot area
      const res = { drawn: snap() };
      pi.axis(el, "x").range[0] = -99;                         // a copy: the plot is not touched
      res.copied = pi.axis(el, "x").range[0];
      await Plotly.relayout(el, { "xaxis.range": [2, 4], width: 800, "yaxis.type": "log" });
      res.zoomed = snap();
      await Plotly.restyle(el, { visible: "legendonly" }, [0]);
      await Plotly.restyle(el, { visible: false }, [1]);
      res.hidden = snap().shown;
      await Plotly.restyle(el, { visible: true }, [0, 1]);
      res.shownAgain = snap().shown;
      return res;
    }""")
    drawn = out["drawn"]
    assert drawn["area"] == {"l": 50, "t": 20, "w": 600 - 50 - 30, "h": 400 - 20 - 40}
    assert drawn["x"]["type"] == "linear" and drawn["x"]["autorange"] is True
    assert drawn["x"]["range"] == pytest.approx([0, 10])             # lines only: a tight autorange
    assert drawn["y"] == {"type": "linear", "range": [0, 5], "autorange": False}
    assert drawn["shown"] == [True, True, True]                      # index 7: no such trace, not hidden
    assert out["copied"] == pytest.approx(0)

    zoomed = out["zoomed"]
    assert zoomed["area"] == {"l": 50, "t": 20, "w": 800 - 50 - 30, "h": 340}   # resolved after a relayout
    assert zoomed["x"] == {"type": "linear", "range": [2, 4], "autorange": False}
    assert zoomed["y"]["type"] == "log"                              # the overlay draws only on linear axes

    assert out["hidden"] == [False, False, True]
    assert out["shownAgain"] == [True, True, True]
