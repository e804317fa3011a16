"""The dashboard in a real browser (headless Chromium via Playwright) against a live daphne.

Scenarios of issue 5: log in; create a run from a preset with one field changed; a server
validation error shown next to its field; a chart gaining points while events are POSTed to the
ingest endpoint; a 20,480-token sample with heatmap and tooltip; compare two runs; cancel a run;
another team's run is not reachable. Assertions read what a user sees (DOM text, classes, the
chart's point count), and cross-check the server's state through the API.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.e2e.conftest import DashboardServer
from tests.support.synthetic import metric_values, sample_event

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHART_KEYS = ["reward/mean", "accuracy/mean", "response_length/mean", "actor/entropy", "actor/pg_clipfrac"]


def metric_events(first: int, last: int, seed: int = 0) -> list[dict[str, Any]]:
    return [{"type": "metric", "step": s, "values": metric_values(s, CHART_KEYS, seed=seed)} for s in range(first, last + 1)]


def test_login_page_then_runs_list(browser: Any, dashboard_server: DashboardServer, shoot: Any) -> None:
    run = dashboard_server.create_run("listed run")
    context = browser.new_context(viewport={"width": 1280, "height": 760}, base_url=dashboard_server.base_url)
    page = context.new_page()
    page.goto("/runs/")
    assert "/login/" in page.url                       # not logged in: redirected
    shoot(page, "login")
    page.fill("#id_username", "alice")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    page.wait_for_selector(".banner.error")            # a wrong password says so
    page.fill("#id_username", "alice")
    page.fill("#id_password", "pw-alice")
    page.click("button[type=submit]")
    page.wait_for_url("**/runs/")
    row = page.locator(f"tr[data-run='{run['id']}']")
    row.wait_for()
    assert "listed run" in row.inner_text()
    assert row.locator(".status").inner_text() == "draft"
    # filters: a status that matches nothing gives the empty state, clearing it brings the row back
    page.select_option("#f-status", "failed")
    page.wait_for_selector(".state.empty")
    page.select_option("#f-status", "")
    row.wait_for()
    shoot(page, "runs")
    context.close()


def test_new_run_from_preset_with_one_field_changed(page: Any, dashboard_server: DashboardServer, shoot: Any) -> None:
    page.goto("/runs/new/")
    page.wait_for_selector(".field[data-path='trainer.lr'] input")
    assert page.locator("#run-preset option").count() >= 4
    titles = page.locator("#run-preset").inner_text()
    assert "CPU demo" in titles and "FIPO 32B recipe" in titles
    page.select_option("#run-preset", "cpu-demo")
    # registry-backed choices are selects listing exactly the registered names
    assert page.locator("select#f-algorithm-policy_loss option").all_inner_texts() == ["dapo", "fipo", "ppo"]
    assert page.locator(".field.changed").count() == 0
    page.fill("#run-name", "lr sweep 5e-4")
    page.fill("#f-trainer-lr", "0.0005")
    assert page.locator(".field.changed").count() == 1
    assert page.locator(".field.changed").get_attribute("data-path") == "trainer.lr"
    assert "1 field changed" in page.locator("#changed-count").inner_text()
    assert page.locator("#section-nav a[href='#sec-trainer'] .n").inner_text() == "1"
    page.evaluate("() => document.getElementById('f-trainer-lr').scrollIntoView({block: 'center'})")
    shoot(page, "new_run")
    page.click("#create-draft")
    page.wait_for_url(re.compile(r"/runs/\d+/$"))
    run_id = int(re.search(r"/runs/(\d+)/", page.url).group(1))
    detail = dashboard_server.api().get(f"/runs/{run_id}/").json()
    assert detail["status"] == "draft"
    assert detail["config"]["trainer"]["lr"] == pytest.approx(5e-4)
    preset = next(p for p in dashboard_server.api().get("/config/presets").json() if p["name"] == "cpu-demo")
    for section in ("model", "data", "rollout", "reward"):                     # the rest is the preset
        assert detail["config"][section] == preset["config"][section]
    assert {k: v for k, v in detail["config"]["trainer"].items() if k != "lr"} == \
        {k: v for k, v in preset["config"]["trainer"].items() if k != "lr"}
    page.wait_for_selector("#run-status .status")
    assert page.locator("#run-status").inner_text() == "draft"
    # clone: the form is filled with that run's config, the change still highlighted against the preset
    page.goto(f"/runs/new/?from={run_id}")
    page.wait_for_selector(".field.changed")
    assert page.input_value("#run-name") == "lr sweep 5e-4 (copy)"
    assert [el.get_attribute("data-path") for el in page.locator(".field.changed").all()] == ["trainer.lr"]


def test_server_validation_error_next_to_the_field(page: Any, dashboard_server: DashboardServer, shoot: Any) -> None:
    before = dashboard_server.api().get("/runs/").json()["count"]
    page.goto("/runs/new/")
    page.wait_for_selector("#f-trainer-lr")
    page.fill("#run-name", "bad lr")
    page.fill("#f-trainer-lr", "-1")
    page.click("#create-draft")
    err = page.locator(".field[data-path='trainer.lr'] .err")
    err.wait_for(state="visible")
    assert "greater than 0" in err.inner_text()
    assert "invalid" in page.locator(".field[data-path='trainer.lr']").get_attribute("class")
    assert page.url.endswith("/runs/new/")
    assert dashboard_server.api().get("/runs/").json()["count"] == before   # nothing was created
    assert "rejected" in page.locator("#form-banner").inner_text()
    page.evaluate("() => document.getElementById('f-trainer-lr').scrollIntoView({block: 'center'})")
    shoot(page, "new_run_error")
    # fixing the value clears the error mark
    page.fill("#f-trainer-lr", "0.001")
    assert "invalid" not in page.locator(".field[data-path='trainer.lr']").get_attribute("class")


def test_chart_gains_points_while_events_arrive(page: Any, dashboard_server: DashboardServer, started_runs: Any,
                                                shoot: Any) -> None:
    run, token = started_runs["live charts"]
    dashboard_server.post_events(run["id"], token, [{"type": "status", "state": "running", "message": "hello"},
                                                    *metric_events(1, 5)])
    page.goto(f"/runs/{run['id']}/")
    chart = page.locator("[data-chart='reward:score'] .chart")
    chart.wait_for()
    page.wait_for_function("() => document.body.dataset.chartsReady")
    page.wait_for_selector("#conn[data-state='live']")
    assert page.locator("#run-status").inner_text() == "running"
    points_before = int(chart.get_attribute("data-points"))
    assert points_before == 5                                               # reward/mean steps 1..5
    dashboard_server.post_events(run["id"], token, metric_events(6, 12))
    page.wait_for_function("n => Number(document.querySelector(\"[data-chart='reward:score'] .chart\").dataset.points) >= n",
                           arg=12)
    # the same number of points the server holds, each step once (catch-up and live do not duplicate)
    xs = page.evaluate("() => document.querySelector(\"[data-chart='reward:score'] .chart\").fipoChart.steps('reward/mean')")
    assert xs == list(range(1, 13))
    assert page.locator("#fig-step").inner_text() == "12"
    # zoom: the chart asks the server again for the visible step range and keeps that range
    with page.expect_response(lambda r: "/metrics?" in r.url and "step_min=3" in r.url and "step_max=8" in r.url):
        page.evaluate("() => Plotly.relayout(document.querySelector(\"[data-chart='reward:score'] .chart\"), {'xaxis.range': [3, 8]})")
    page.wait_for_function("() => document.querySelector(\"[data-chart='reward:score'] .chart\").fipoChart.steps('reward/mean')[0] >= 3")
    dashboard_server.post_events(run["id"], token, metric_events(13, 13))
    page.wait_for_function("() => document.querySelector(\"[data-chart='reward:score'] .chart\").fipoChart.steps('reward/mean').includes(13)")
    x_range = page.evaluate("() => document.querySelector(\"[data-chart='reward:score'] .chart\").layout.xaxis.range")
    assert x_range == [3, 8]
    # the catalog grouping is on the page too
    assert page.locator("[data-chart='reward:score'] .group-label").inner_text().lower() == "reward and accuracy"
    # off-screen charts draw their queued points when scrolled into view
    page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_function("() => document.querySelector(\"[data-chart='entropy:nats'] .chart\").fipoChart.steps('actor/entropy').length === 13")
    page.evaluate("() => window.scrollTo(0, 0)")
    shoot(page, "run", full_page=True)


def test_page_catches_up_after_a_server_restart(page: Any, dashboard_server: DashboardServer, started_runs: Any) -> None:
    run, token = started_runs["live charts"]
    page.goto(f"/runs/{run['id']}/")
    page.wait_for_selector("#conn[data-state='live']")
    page.evaluate("() => { window.__sameDocument = true; }")
    last = int(page.locator("#fig-step").inner_text())
    dashboard_server.restart_web()
    # events that arrive while the page is still reconnecting reach it through the catch-up
    dashboard_server.post_events(run["id"], token, metric_events(last + 1, last + 3))
    page.wait_for_function("s => document.getElementById('fig-step').innerText === String(s)", arg=last + 3, timeout=60_000)
    page.wait_for_selector("#conn[data-state='live']")
    assert page.evaluate("() => window.__sameDocument") is True          # no reload happened
    xs = page.evaluate("() => document.querySelector(\"[data-chart='reward:score'] .chart\").fipoChart.steps('reward/mean')")
    assert xs[-3:] == [last + 1, last + 2, last + 3] and len(xs) == len(set(xs))


def test_20k_token_sample_heatmap_and_tooltip(page: Any, dashboard_server: DashboardServer, started_runs: Any,
                                              shoot: Any) -> None:
    run, token = started_runs["long chain of thought"]
    dashboard_server.post_events(run["id"], token, [
        sample_event(0, step=3, index=0, n_tokens=20_480, seed=2) | {"seq": 1},
        sample_event(0, step=3, index=1, n_tokens=300, seed=3) | {"seq": 2},
        sample_event(0, step=4, index=0, n_tokens=500, seed=4) | {"seq": 3},
    ])
    page.goto(f"/runs/{run['id']}/samples/?step=3&order=-length")
    page.wait_for_selector("#tokens[data-rendered='20480']")
    assert page.locator("#tokens span[data-i]").count() == 20_480
    assert page.locator("#sample-list tr[data-sample]").count() == 2
    # a colour class per token, several bins in use, one colour legend
    bins = page.evaluate("() => new Set([...document.querySelectorAll('#tokens span')].map(s => s.className)).size")
    assert bins >= 5
    assert "future-KL" in page.locator("#legend").inner_text()
    # hover: the tooltip lists every channel of that token
    page.hover("#tokens span[data-i='5']")
    tip = page.locator("#token-tip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert "token 6 of 20480" in text
    for label in ("future-KL", "influence weight", "advantage", "ratio", "logprob", "old logprob", "entropy"):
        assert label in text
    # keyboard: focus enters at the first token, arrow keys move it (and the tooltip)
    page.mouse.move(0, 0)
    page.focus("#tokens")
    assert "token 1 of 20480" in tip.inner_text()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert "token 3 of 20480" in tip.inner_text()
    assert page.evaluate("() => document.activeElement.dataset.i") == "2"
    # a click makes that token the keyboard position
    page.click("#tokens span[data-i='40']")
    page.mouse.move(0, 0)
    page.keyboard.press("ArrowLeft")
    assert "token 40 of 20480" in tip.inner_text()
    # a channel switch recolours without re-rendering; the strip chart jumps to a token
    page.click("button[data-channel='ratio']")
    assert page.locator("button[data-channel='ratio']").get_attribute("aria-pressed") == "true"
    assert "ratio" in page.locator("#legend").inner_text()
    box = page.locator("#strip").bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
    focused = page.evaluate("() => Number(document.activeElement.dataset.i)")
    assert focused > 20_480 * 0.8
    shoot(page, "samples-long")
    # step navigation
    page.click("#step-next")
    page.wait_for_selector("#tokens[data-rendered='500']")
    assert "step=4" in page.url


def test_compare_two_runs(page: Any, dashboard_server: DashboardServer, started_runs: Any, shoot: Any) -> None:
    (a, token_a), (b, token_b) = started_runs["compare A"], started_runs["compare B"]
    dashboard_server.post_events(a["id"], token_a, metric_events(1, 20))
    dashboard_server.post_events(b["id"], token_b, metric_events(1, 15, seed=1))
    page.goto(f"/compare/?runs={a['id']},{b['id']}")
    page.wait_for_function("() => document.body.dataset.chartsReady")
    rows = page.locator("#config-diff tbody tr")
    paths = [rows.nth(i).locator("td.path").inner_text() for i in range(rows.count())]
    assert "trainer.lr" in paths and "rollout.n" in paths
    assert "trainer.total_steps" not in paths                 # equal fields are hidden
    traces = page.evaluate("() => document.querySelector(\"[data-chart='reward/mean'] .chart\").data.filter(t => t.showlegend !== false).map(t => t.x.length)")
    assert sorted(traces) == [15, 20]
    assert page.locator(".chip").count() == 2
    shoot(page, "compare", full_page=True)


def test_cancel_a_run(page: Any, dashboard_server: DashboardServer) -> None:
    run = dashboard_server.create_run("to cancel")
    dashboard_server.launch(run["id"])                         # queued: no worker takes it
    page.goto(f"/runs/{run['id']}/")
    page.wait_for_selector("#cancel-btn")
    page.on("dialog", lambda d: d.accept())
    page.click("#cancel-btn")
    page.wait_for_function("() => document.querySelector('#run-status').innerText.trim() === 'cancelled'")
    page.wait_for_selector("#cancel-btn", state="detached")
    assert dashboard_server.api().get(f"/runs/{run['id']}/").json()["status"] == "cancelled"
    assert page.locator("#transitions li").count() >= 2


def test_a_viewer_sees_the_team_run_but_no_actions(page: Any, dashboard_server: DashboardServer) -> None:
    run = dashboard_server.create_run("viewer can look")
    dashboard_server.launch(run["id"])                         # queued: an owner could cancel it
    page.context.clear_cookies()
    page.context.add_cookies(dashboard_server.login_cookie("victor"))
    page.goto("/runs/")
    row = page.locator(f"tr[data-run='{run['id']}']")
    row.wait_for()
    assert "viewer can look" in row.inner_text()
    assert "Cancel" not in row.inner_text() and "Launch" not in row.inner_text()
    page.goto(f"/runs/{run['id']}/")
    page.wait_for_selector("#run-status")
    page.wait_for_function("() => document.querySelector('#run-status')?.innerText.trim() === 'queued'")
    assert page.locator("#cancel-btn").count() == 0
    assert dashboard_server.api("victor").post(f"/runs/{run['id']}/cancel").status_code == 403
    assert dashboard_server.api().get(f"/runs/{run['id']}/").json()["status"] == "queued"


def test_another_teams_run_is_not_reachable(page: Any, dashboard_server: DashboardServer) -> None:
    theirs = dashboard_server.create_run("bob's secret", user="bob")
    page.goto(f"/runs/{theirs['id']}/")
    page.wait_for_selector(".state.error")
    assert "Run not found" in page.inner_text("#run-root")
    assert "bob's secret" not in page.content()
    page.goto(f"/runs/{theirs['id']}/samples/")
    page.wait_for_selector("#sample-list .state.error")
    page.goto("/runs/")
    page.wait_for_selector("#runs-table table, #runs-table .state")
    assert page.locator(f"tr[data-run='{theirs['id']}']").count() == 0


def test_leaderboard_page_renders_a_state(page: Any, shoot: Any) -> None:
    page.goto("/leaderboards/")
    assert "/leaderboards/aime-2024/" in page.url
    page.wait_for_selector("#board .state:not(.loading), #board table")
    page.click("#scope-global")
    assert "scope=global" in page.url
    page.wait_for_selector("#board .state:not(.loading), #board table")
    # the paper's figures, when the leaderboard has them, are tagged as reported
    for row in page.locator("#board tr[data-kind='reported']").all():
        assert "reported" in row.inner_text()
    shoot(page, "leaderboard")
    page.goto("/leaderboards/no-such-benchmark/")
    page.wait_for_selector("#board .state:not(.loading), #board table")


def test_a_long_runs_checkpoints_scroll_newest_first(page: Any, dashboard_server: DashboardServer,
                                                     tmp_path: Any) -> None:
    """Hundreds of steps bring dozens of checkpoints: the list scrolls inside its card (newest first)
    instead of pushing the charts off the first screen. (The page lists only checkpoints that exist:
    the directories are made here.)"""
    for step in [*range(25, 751, 25), 775]:
        (tmp_path / f"step_{step:06d}").mkdir()
    run = dashboard_server.create_run("many checkpoints")
    token = dashboard_server.start_runs(run["id"])[run["id"]]
    dashboard_server.post_events(run["id"], token, [
        {"type": "status", "state": "running", "message": "hello"}, *metric_events(1, 3),
        *({"type": "checkpoint", "step": 25 * i, "uri": str(tmp_path / f"step_{25 * i:06d}")} for i in range(1, 31))])
    page.goto(f"/runs/{run['id']}/")
    page.wait_for_function("() => document.body.dataset.chartsReady")
    page.wait_for_selector("#conn[data-state='live']")
    items = page.locator("#checkpoints li")
    assert items.count() == 30
    assert items.first.inner_text().startswith("step 750")
    box = page.evaluate("() => { const l = document.getElementById('checkpoints'); return [l.clientHeight, l.scrollHeight]; }")
    assert box[0] < box[1] and box[0] <= 14 * 16 + 1  # scrolls, at most 14rem tall
    assert page.locator("#charts").bounding_box()["y"] < 860  # the charts start on the first screen
    dashboard_server.post_events(run["id"], token, [{"type": "checkpoint", "step": 775,
                                                     "uri": str(tmp_path / "step_000775")}])
    page.wait_for_function("() => document.querySelector('#checkpoints li').textContent.startsWith('step 775')")


def test_resume_a_failed_run_from_its_page(page: Any, dashboard_server: DashboardServer, tmp_path: Any) -> None:
    """A failed run with a checkpoint gets Resume; the same run goes back to queued with a new
    segment in its status history. A viewer sees no Resume and the API refuses them."""
    (tmp_path / "step_000002").mkdir()
    run = dashboard_server.create_run("resume me")
    token = dashboard_server.start_runs(run["id"])[run["id"]]
    dashboard_server.post_events(run["id"], token, [
        {"type": "status", "state": "running", "message": "hello"}, *metric_events(1, 2),
        {"type": "checkpoint", "step": 2, "uri": str(tmp_path / "step_000002")},
        {"type": "status", "state": "failed", "message": "CUDA error: device lost"}])
    page.context.clear_cookies()
    page.context.add_cookies(dashboard_server.login_cookie("victor"))
    page.goto(f"/runs/{run['id']}/")
    page.wait_for_function("() => document.querySelector('#run-status')?.innerText.trim() === 'failed'")
    assert page.locator("#resume-btn").count() == 0
    assert dashboard_server.api("victor").post(f"/runs/{run['id']}/resume/").status_code == 403

    page.context.clear_cookies()
    page.context.add_cookies(dashboard_server.login_cookie("alice"))
    page.goto(f"/runs/{run['id']}/")
    page.click("#resume-btn")
    page.wait_for_function("() => document.querySelector('#run-status').innerText.trim() === 'queued'")
    page.wait_for_selector("#resume-btn", state="detached")
    page.wait_for_selector("#transitions li.segment")
    assert "resumed by alice from its newest checkpoint (the last reported: step 2)" in page.inner_text("#transitions")
    detail = dashboard_server.api().get(f"/runs/{run['id']}/").json()
    assert detail["status"] == "queued" and detail["id"] == run["id"]
