"""The samples page explains FIPO's credit (issue 12 §4), in real Chromium.

A real, short ``cot-demo`` run (40 warm-start steps, 2 RL steps, ~35 s on one core) streams its
samples to the live server, exactly as a launched run does; the page must say which mini-batch
trained each sample, and clicking a token must rebuild its future-KL from the later tokens' shares
(matching the trainer's logged, float16-rounded value) with the weight inside its clip bounds.
The 20,480-token synthetic sample checks that an explanation lists the top contributors only.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, DashboardServer
from tests.support.synthetic import sample_event

# A cot-demo run cut short: what matters here is the shape of its samples, not its accuracy.
# Dynamic sampling is off so the few steps always keep their groups (40 warm-start steps leave the
# model mostly wrong, and all-wrong groups would be dropped).
COT_OVERRIDES = {"trainer.total_steps": 2, "trainer.sft_warmup_steps": 40, "trainer.eval_every": 0,
                 "trainer.save_every": 0, "trainer.dynamic_sampling": False, "trainer.cpu_threads": 1,
                 "data.train_size": 2048}


@pytest.fixture(scope="module")
def cot_demo_run(dashboard_server: DashboardServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A cot-demo run trained for real by ``fipo train`` with the run's stored config, streaming to the server."""
    run = dashboard_server.create_run("cot-demo short", preset="cot-demo", overrides=COT_OVERRIDES)
    token = dashboard_server.start_runs(run["id"])[run["id"]]
    out = tmp_path_factory.mktemp("cot-demo")
    config = out / "config-in.json"
    config.write_text(json.dumps(run["config"]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "fipo_engine.cli", "train", str(config), "--out", str(out / "run"), "--no-progress",
         "--server", dashboard_server.base_url, "--run-id", str(run["id"]), "--token", token],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return run


def _samples(server: DashboardServer, run_id: int, step: int) -> dict[str, Any]:
    return server.api().get(f"/runs/{run_id}/samples/", params={"step": step}).json()


# The real run takes ~35 s on an idle core; the shared CI machine can be many times slower.
@pytest.mark.timeout(900)
def test_cot_demo_samples_say_their_mini_batch_and_explain_a_token(page: Any, dashboard_server: DashboardServer,
                                                                   cot_demo_run: dict[str, Any], shoot: Any) -> None:
    run_id = cot_demo_run["id"]
    listing = _samples(dashboard_server, run_id, 2)
    results = listing["results"]
    # 16 groups in mini-batches of 4 groups: 4 mini-batches, one logged sample from each
    assert sorted(s["minibatch"] for s in results) == [0, 1, 2, 3]
    assert {s["num_minibatches"] for s in results} == {4}
    assert listing["fipo"]["policy_loss"] == "fipo"
    details = {s["id"]: dashboard_server.api().get(f"/samples/{s['id']}/").json() for s in results}
    first = next(d for d in details.values() if d["minibatch"] == 0)
    assert set(first["channels"]["future_kl"]) == {0.0}  # the policy had not moved yet

    # the mini-batch label, and the first mini-batch's explanation of why F is 0 there
    page.goto(f"/runs/{run_id}/samples/?step=2&sample={first['id']}")
    page.wait_for_selector(f"#tokens[data-rendered='{len(first['tokens'])}']")
    assert "trained in mini-batch 1 of 4" in page.locator("#minibatch").inner_text()
    assert "had not moved yet" in page.locator("#minibatch-note").inner_text()
    assert page.locator("#sample-list").inner_text().count("/4") == 4
    # the per-step summary above the list: two position charts
    page.wait_for_selector("#position-summary[data-samples='4'] #pos-fkl path.line")
    assert page.locator("#pos-w").count() == 1

    # the token with the largest logged future-KL among the later mini-batches
    later = [d for d in details.values() if d["minibatch"] > 0]
    sample, t = max(((d, i) for d in later for i, v in enumerate(d["channels"]["future_kl"])),
                    key=lambda di: abs(di[0]["channels"]["future_kl"][di[1]]))
    assert sample["channels"]["future_kl"][t] != 0.0, "no later mini-batch moved the policy"
    page.goto(f"/runs/{run_id}/samples/?step=2&sample={sample['id']}")
    page.wait_for_selector(f"#tokens[data-rendered='{len(sample['tokens'])}']")
    assert f"mini-batch {sample['minibatch'] + 1} of 4" in page.locator("#minibatch").inner_text()
    page.click(f"#tokens span[data-i='{t}']")
    panel = page.locator(f"#explain[data-token='{t}']")
    panel.wait_for()
    shares = [float(v) for v in page.eval_on_selector_all("#explain tr[data-k]", "rs => rs.map(r => r.dataset.share)")]
    rest = page.eval_on_selector_all("#explain tr[data-rest-share]", "rs => rs.map(r => r.dataset.restShare)")
    shown_f = float(panel.get_attribute("data-f"))
    stored_f = sample["channels"]["future_kl"][t]
    total = float(panel.get_attribute("data-abs"))
    # the listed shares (plus the "other tokens" row) add up to the F shown ...
    assert sum(shares) + sum(map(float, rest)) == pytest.approx(shown_f, abs=1e-9)
    # ... which is the trainer's logged F within float16 rounding (of F and of every log-ratio)
    assert abs(shown_f - stored_f) <= 1e-3 * (abs(shown_f) + total) + 1e-5
    ks = [int(k) for k in page.eval_on_selector_all("#explain tr[data-k]", "rs => rs.map(r => r.dataset.k)")]
    assert ks and all(k >= t for k in ks) and len(ks) <= 10
    # the top contributors are highlighted in the response, the explained token outlined
    marked = page.eval_on_selector_all("#tokens span[data-mark='up'], #tokens span[data-mark='down']",
                                       "ss => ss.map(s => Number(s.dataset.i))")
    assert set(ks) - {t} <= set(marked) | {t}
    assert page.locator(f"#tokens span[data-i='{t}']").get_attribute("data-mark") == "target"
    # the weight: inside the clip bounds, equal to the logged one
    low, high = float(panel.get_attribute("data-low")), float(panel.get_attribute("data-high"))
    weight = float(panel.get_attribute("data-weight"))
    assert (low, high) == (1.0, 1.2) and low <= weight <= high
    assert weight == pytest.approx(sample["channels"]["influence"][t], abs=2e-3)
    assert "clip(exp(F)" in page.locator("#explain-weight").inner_text()
    page.evaluate("() => { document.getElementById('token-tip').hidden = true; }")  # the panel, not the tooltip
    shoot(page, "samples")
    # keyboard: moving to the next token explains that one
    page.keyboard.press("ArrowRight" if t + 1 < len(sample["tokens"]) else "ArrowLeft")
    page.wait_for_selector(f"#explain:not([data-token='{t}'])")


def test_explaining_a_token_of_a_20k_sample_lists_the_top_contributors(page: Any, dashboard_server: DashboardServer,
                                                                       started_runs: Any) -> None:
    run, token = started_runs["long chain of thought"]
    dashboard_server.post_events(run["id"], token, [
        sample_event(100, step=9, index=0, n_tokens=20_480, seed=5) | {"minibatch": 2, "num_minibatches": 4},
    ])
    page.goto(f"/runs/{run['id']}/samples/?step=9")
    page.wait_for_selector("#tokens[data-rendered='20480']")
    assert "mini-batch 3 of 4" in page.locator("#minibatch").inner_text()
    sample_id = page.evaluate("() => new URL(location).searchParams.get('sample')")
    detail = dashboard_server.api().get(f"/samples/{sample_id}/").json()
    fkl = detail["channels"]["future_kl"]
    t = max(range(len(fkl) // 2), key=lambda i: abs(fkl[i]))
    page.click(f"#tokens span[data-i='{t}']")  # far down the response: the click must explain *this* token
    panel = page.locator(f"#explain[data-token='{t}']")
    panel.wait_for()
    assert page.evaluate("() => Number(document.activeElement.dataset.i)") == t
    assert page.locator("#explain tr[data-k]").count() == 10          # the top 10, not 20k rows
    assert page.locator("#explain tr[data-rest-share]").count() == 1  # and one summary row
    shown_f = float(panel.get_attribute("data-f"))
    assert abs(shown_f - fkl[t]) <= 1e-3 * (abs(shown_f) + float(panel.get_attribute("data-abs"))) + 1e-5
    assert math.isfinite(float(panel.get_attribute("data-weight")))
    # a contributor row jumps to its token and keeps the explanation
    k = int(page.locator("#explain tr[data-k]").nth(3).get_attribute("data-k"))
    page.locator("#explain tr[data-k]").nth(3).click()
    assert page.evaluate("() => Number(document.activeElement.dataset.i)") == k
    assert page.locator("#explain").get_attribute("data-token") == str(t)


def test_synthetic_samples_carry_the_log_ratio_they_were_built_from() -> None:
    """The synthetic future-KL is the discounted suffix sum of the log_ratio channel (what the page rebuilds)."""
    from tests.support.synthetic import synthetic_sample

    s = synthetic_sample(200, seed=1)
    gamma = 2 ** (-1 / 32)
    t = 50
    assert sum(gamma ** (k - t) * s["log_ratio"][k] for k in range(t, 200)) == pytest.approx(s["future_kl"][t])
