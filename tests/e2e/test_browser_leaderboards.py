"""Leaderboards in a real browser against a whole stack (daphne + a Celery worker; issue 13).

One scenario, in the order a user works: train a tiny ``cpu-demo`` run (3 steps, a checkpoint
each step) through the worker; upload a 30-problem benchmark on the board page; evaluate the final
checkpoint from the run page and watch its progress arrive over the websocket; open the entry,
its answers and the highlighted extracted answers; add an external model's ``fipo eval --responses
--json`` result from the board page; compare the two entries; see a run's Pass@1 against the step.
A viewer of the team sees all of it without Evaluate or Upload, and the API refuses both.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import browser_skip_reason

pytestmark = [pytest.mark.browser, pytest.mark.slow]

N_PROBLEMS = 30
PROBLEMS = [{"id": f"q{i:02d}", "problem": f"Calculate {i % 9 + 1} + {i % 7}.", "answer": str(i % 9 + 1 + i % 7)}
            for i in range(N_PROBLEMS)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    from tests.worker.stack import live_stack

    with live_stack(tmp_path_factory.mktemp("leaderboards"), tag="lb", beat=False) as s:
        yield s


@pytest.fixture(scope="module")
def trained(stack: Any) -> dict[str, Any]:
    """A finished tiny cpu-demo run with checkpoints at steps 1, 2 and 3."""
    run = stack.create_run("lb-tiny", overrides={"trainer.save_every": 1})
    stack.launch(run["id"])
    detail = stack.wait_status(run["id"], {"succeeded", "failed"}, timeout_s=240)
    assert detail["status"] == "succeeded", detail.get("log_tail")
    assert [c["step"] for c in detail["checkpoints"]][-1] == 3, detail["checkpoints"]
    return detail


def _page(browser: Any, stack: Any, user: str) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=stack.base_url)
    context.add_cookies([{"name": "sessionid", "value": stack.users[user]["session"], "url": stack.base_url}])
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    return page


def _external_result(tmp: Path) -> dict[str, Any]:
    """`fipo eval --responses ... --json` of a model that gets the first 20 problems right."""
    from fipo_engine.cli import main

    src = tmp / "arith-30.jsonl"
    src.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    responses = tmp / "answers.jsonl"
    rows = [{"id": p["id"], "responses": [f"So it is \\boxed{{{p['answer'] if i < 20 else '0'}}}"] * 4}
            for i, p in enumerate(PROBLEMS)]
    responses.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["eval", "--responses", str(responses), "--benchmark", str(src), "--json"]) == 0
    return json.loads(out.getvalue())


def test_upload_evaluate_watch_open_compare(browser: Any, stack: Any, trained: dict[str, Any], tmp_path: Path) -> None:
    run_id = trained["id"]
    page = _page(browser, stack, "alice")

    # 1. upload the benchmark file on the board page
    bench_file = tmp_path / "arith-30.jsonl"
    bench_file.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    page.goto("/leaderboards/arith-30/")
    page.wait_for_selector("#board .state:not(.loading), #board table")
    page.set_input_files("#upload-file", str(bench_file))
    page.fill("#upload-name", "arith-30")
    page.click("#upload-btn")
    page.wait_for_selector("#upload-msg.ok")
    assert "Stored arith-30: 30 problems" in page.inner_text("#upload-msg")
    page.wait_for_url("**/leaderboards/arith-30/?version=1*")
    bench = next(b for b in stack.api().get("/benchmarks/").json() if b["name"] == "arith-30")

    # 2. evaluate the final checkpoint from the run page, watching progress over the websocket
    page.goto(f"/runs/{run_id}/")
    page.click("#checkpoints li[data-step='3'] .eval-btn")
    page.wait_for_selector("#eval-dialog[open]")
    assert page.input_value("#eval-k") == "4"                     # the cpu-demo preset's eval_k
    page.select_option("#eval-bench", str(bench["id"]))
    page.fill("#eval-max", "6")
    clicked = time.monotonic()
    page.click("#eval-submit")
    row = page.locator("#eval-jobs tr[data-job]").first
    try:
        row.wait_for()
    except Exception:
        raise AssertionError(f"no job row; dialog says {page.inner_text('#eval-dialog') if page.locator('#eval-dialog').count() else '-'}; "
                             f"errors {page.errors}; {stack.log_tail(40)}") from None
    page.wait_for_function("() => /of 30 problems/.test(document.querySelector('#eval-jobs .eval-progress')?.textContent || '')")
    page.wait_for_selector("#eval-jobs tr[data-status='succeeded']", timeout=180_000)
    elapsed = time.monotonic() - clicked
    assert "30 of 30 problems" in row.inner_text()
    print(f"\nclick Evaluate -> entry on the run page: {elapsed:.1f} s (tiny cpu-demo, 30 problems, k=4)")
    job = stack.api().get(f"/eval-jobs/?run={run_id}").json()["results"][0]
    assert job["status"] == "succeeded" and job["done"] == 30 and job["entry"]

    # 3. the entry page: per problem, every response readable
    page.click("#eval-jobs .entry-link")
    page.wait_for_selector("body[data-entry-ready='1']")
    assert page.locator("#problem-table tr[data-problem]").count() == N_PROBLEMS
    first = page.locator("#problem-table tr[data-problem]").first
    first.locator("button").click()
    detail = page.locator("#problem-table tr.detail:not([hidden])").first
    assert detail.locator(".resp").count() == 4 and "Calculate" in detail.inner_text()
    page.select_option("#filter", "none")
    page.wait_for_function("() => /of 30 problems/.test(document.getElementById('shown')?.textContent || '') || document.querySelector('#problems .state')")

    # 4. an external model's result, uploaded from the board page
    result_file = tmp_path / "result.json"
    result_file.write_text(json.dumps(_external_result(tmp_path)))
    page.goto("/leaderboards/arith-30/")
    page.wait_for_selector("#board table")
    page.set_input_files("#ext-file", str(result_file))
    page.fill("#ext-name", "external-api-model")
    page.click("#ext-btn")
    page.wait_for_selector("#ext-msg.ok")
    page.wait_for_selector("#board tr[data-kind='external']")
    rows = page.locator("#board tbody tr")
    assert rows.count() == 2 and "external-api-model" in rows.first.inner_text()  # 66.7% leads
    assert page.locator("#board .cibar .band").count() == 2

    # 5. compare the two entries
    for box in page.locator("#board tbody input[type=checkbox]").all():
        box.check()
    page.click("#compare-btn")
    page.wait_for_selector("body[data-compare-ready='1']")
    sentence = page.inner_text("#sentence")
    assert "on 30 problems" in sentence and ("ahead" in sentence or "behind" in sentence or "level" in sentence)
    assert page.locator("#cmp-table tbody tr").count() == N_PROBLEMS
    entry_id = job["entry"]
    page.goto(f"/leaderboards/entries/{entry_id}/")
    page.wait_for_selector("body[data-entry-ready='1']")
    page.locator("#problem-table tr[data-problem] button").first.click()
    assert not page.errors, page.errors
    page.context.close()


def test_progress_line_marks_the_best_checkpoint(browser: Any, stack: Any, trained: dict[str, Any]) -> None:
    """Evaluations of steps 1 and 2 (through the API) join step 3's on the run's Pass@1-vs-step line."""
    run_id = trained["id"]
    api = stack.api()
    bench = next((b for b in api.get("/benchmarks/").json() if b["name"] == "arith-30"), None)
    if bench is None:
        pytest.skip("needs the benchmark uploaded by the scenario above")
    for step in (1, 2):
        r = api.post("/leaderboards/evaluate/", json={"run": run_id, "benchmark": "arith-30", "step": step, "k": 2,
                                                      "max_new_tokens": 4, "limit": 10})
        assert r.status_code == 202, r.text
        job_id = r.json()["job"]
        deadline = time.monotonic() + 180
        while api.get(f"/eval-jobs/{job_id}/").json()["status"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, "eval job did not finish"
            time.sleep(0.5)
        assert api.get(f"/eval-jobs/{job_id}/").json()["status"] == "succeeded"
    page = _page(browser, stack, "alice")
    page.goto(f"/leaderboards/arith-30/?run={run_id}&all=1")
    page.wait_for_selector("#progress-chart")
    steps = page.eval_on_selector_all("#progress-chart circle", "cs => cs.map(c => Number(c.dataset.step))")
    assert steps == [1, 2, 3]
    assert "best: step" in (page.text_content("#best-label") or "")
    page.context.close()


def test_a_running_eval_job_can_be_cancelled(stack: Any, trained: dict[str, Any]) -> None:
    """Cancel while `fipo eval` samples: the task stops the process group and says so."""
    api = stack.api()
    r = api.post("/leaderboards/evaluate/", json={"run": trained["id"], "benchmark": "cpu-arithmetic", "k": 64,
                                                  "max_new_tokens": 24})
    assert r.status_code == 202, r.text
    job_id = r.json()["job"]
    deadline = time.monotonic() + 120
    while api.get(f"/eval-jobs/{job_id}/").json()["status"] != "running":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.3)
    assert api.post(f"/eval-jobs/{job_id}/cancel").status_code == 200
    while (job := api.get(f"/eval-jobs/{job_id}/").json())["status"] == "running":
        assert time.monotonic() < deadline, "the job was not stopped"
        time.sleep(0.3)
    assert job["status"] == "cancelled" and job["entry"] is None and job["error"] == "cancelled"


def test_viewer_sees_all_but_cannot_evaluate_or_upload(browser: Any, stack: Any, trained: dict[str, Any]) -> None:
    run_id = trained["id"]
    page = _page(browser, stack, "victor")
    page.goto(f"/runs/{run_id}/")
    page.wait_for_selector("#checkpoints li[data-step='3']")
    page.wait_for_selector("#evaluations")
    assert page.locator(".eval-btn").count() == 0
    page.goto("/leaderboards/arith-30/")
    page.wait_for_selector("#board .state:not(.loading), #board table")
    assert page.locator("#writer-forms").is_hidden()
    assert not page.errors, page.errors
    page.context.close()

    viewer = stack.api("victor")
    r = viewer.post("/leaderboards/evaluate/", json={"run": run_id, "benchmark": "cpu-arithmetic"})
    assert r.status_code == 403
    team = stack.team_id("victor")
    r = viewer.post("/benchmarks/", files={"file": ("b.jsonl", json.dumps(PROBLEMS[0]) + "\n")},
                    data={"name": "viewer-bench", "team": str(team)})
    assert r.status_code == 403
    assert viewer.get(f"/runs/{run_id}/").status_code == 200
