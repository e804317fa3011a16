"""Evaluate-from-the-browser latency and eval throughput on this CPU (issue 13).

1. Trains a ``cpu-demo`` run through a whole stack (daphne + a Celery worker; the preset's model,
   ``--steps`` steps, a checkpoint every ``--steps // 2``), uploads a 30-problem arithmetic file as
   a benchmark, then in headless Chromium clicks **Evaluate…** on the final checkpoint (k=4, the
   preset's 24 new tokens) and times until the entry link appears on the run page.
2. Baseline measured in the same run: the same ``fipo eval --model`` command run directly (no
   control plane), and grading only (``fipo eval --responses`` on the responses the job saved).
   Throughput = responses / wall seconds of the whole command (model load included).

With ``--screenshots DIR`` it also evaluates the other checkpoint, adds an external result and
takes the board, entry-page and comparison screenshots (docs/screenshots/leaderboard-*.png).
Usage: .venv/bin/python bench/eval_jobs.py [--steps 60] [--screenshots docs/screenshots]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import browser_skip_reason, launch_chromium  # noqa: E402
from tests.worker.stack import live_stack  # noqa: E402

N, K = 30, 4


def problems() -> list[dict[str, str]]:
    """30 questions in the cpu-demo task's own wording (1-digit + and -)."""
    import random

    rng = random.Random(13)
    out = []
    for i in range(N):
        a, b, op = rng.randint(0, 9), rng.randint(0, 9), rng.choice("+-")
        out.append({"id": f"a{i:02d}", "problem": f"Calculate {a} {op} {b}.", "answer": str(a + b if op == "+" else a - b)})
    return out


def run_cli(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fipo_engine.cli", *args], check=True, env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def in_process(tmp: Path) -> tuple[float, float, int]:
    """(sampling s, grading s, responses) with the model already loaded: the eval's own throughput,
    without process start, imports and model load. A cpu-demo-sized model (untrained: every response
    runs to the 24-token limit, the slowest case)."""
    from fipo_engine.config import preset
    from fipo_engine.data.problem import Problem
    from fipo_engine.eval import evaluate
    from fipo_engine.eval.generate import SamplingSettings, generate_samples
    from fipo_engine.models.loader import build_tiny, save_policy

    model_dir = tmp / "cpu-demo-model"
    save_policy(build_tiny(preset("cpu-demo").model, ["0123456789+-=. CalcuteAnswr:"], seed=0), model_dir)
    probs = [Problem(id=p["id"], prompt=p["problem"], answer=p["answer"], source="bench") for p in problems()]
    settings = SamplingSettings(k=K, temperature=1.0, top_p=0.7, max_new_tokens=24, device="cpu")
    generate_samples(str(model_dir), probs[:2], settings)                    # warm-up: load, first forward
    t0 = time.perf_counter()
    samples = generate_samples(str(model_dir), probs, settings)
    t1 = time.perf_counter()
    evaluate("arith-30", probs, samples, grader="math", k=K)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, sum(len(v) for v in samples.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--checkpoints", type=int, default=2, help="checkpoints saved (evaluated for the screenshots)")
    parser.add_argument("--screenshots", default=None)
    parser.add_argument("--in-process-only", action="store_true", help="only the in-process throughput row")
    args = parser.parse_args()
    if args.in_process_only:
        with tempfile.TemporaryDirectory() as tmp:
            sample_s, grade_s, n = in_process(Path(tmp))
        print(f"{'in process, model loaded: sampling (k=4, 24 tokens)':<52} {sample_s:>7.1f} {n / sample_s:>12.1f}")
        print(f"{'in process: grading (math grader)':<52} {grade_s:>7.2f} {n / grade_s:>12.1f}")
        return
    if browser_skip_reason():
        sys.exit(f"cannot run: {browser_skip_reason()}")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, live_stack(Path(tmp), tag="evalbench", beat=False) as stack:
        api = stack.api()
        half = max(1, args.steps // args.checkpoints)
        r = api.post("/runs/", json={"name": "cpu-demo eval bench", "team": stack.team_id(), "preset": "cpu-demo",
                                     "overrides": {"trainer.total_steps": args.steps, "trainer.save_every": half,
                                                   "trainer.eval_every": 0}})
        assert r.status_code == 201, r.text
        run = r.json()
        stack.launch(run["id"])
        detail = stack.wait_status(run["id"], {"succeeded", "failed"}, timeout_s=900)
        assert detail["status"] == "succeeded", detail.get("log_tail")
        last = detail["checkpoints"][-1]
        bench_path = Path(tmp) / "arith-30.jsonl"
        bench_path.write_text("".join(json.dumps(p) + "\n" for p in problems()))
        with bench_path.open("rb") as fh:
            r = api.post("/benchmarks/", files={"file": ("arith-30.jsonl", fh)},
                         data={"name": "arith-30", "team": str(stack.team_id())})
        assert r.status_code == 201, r.text

        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            ctx = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=stack.base_url)
            ctx.add_cookies([{"name": "sessionid", "value": stack.users["alice"]["session"], "url": stack.base_url}])
            page = ctx.new_page()
            page.set_default_timeout(600_000)
            page.goto(f"/runs/{run['id']}/")
            page.click(f"#checkpoints li[data-step='{last['step']}'] .eval-btn")
            page.wait_for_selector("#eval-dialog[open]")
            page.select_option("#eval-bench", label="arith-30 · 30 problems")
            t0 = time.perf_counter()
            page.click("#eval-submit")
            page.wait_for_selector("#eval-jobs tr[data-status='succeeded'] .entry-link")
            click_to_entry = time.perf_counter() - t0
            job = api.get(f"/eval-jobs/?run={run['id']}").json()["results"][0]
            entry = api.get(f"/leaderboards/entries/{job['entry']}/").json()

            # baselines in the same run: the same command without the control plane, and grading only
            model = last["uri"].removeprefix("file://")
            env = {**stack.env}
            direct = run_cli(["eval", "--model", model, "--benchmark", str(bench_path), "--k", str(K),
                              "--max-new-tokens", "24", "--temperature", "1.0", "--top-p", "0.7", "--json",
                              "--out", str(Path(tmp) / "direct.json"),
                              "--save-responses", str(Path(tmp) / "resp.jsonl")], env)
            grading = run_cli(["eval", "--responses", str(Path(tmp) / "resp.jsonl"), "--benchmark", str(bench_path),
                               "--json"], env)
            n = N * K
            print(f"cpu-demo checkpoint step {last['step']} ({args.steps} training steps), {N} problems, k={K}, "
                  f"24 new tokens, Pass@1 {100 * entry['pass_at_1']:.1f}%")
            print(f"{'path':<52} {'wall s':>7} {'responses/s':>12}")
            print(f"{'fipo eval --model, direct (baseline)':<52} {direct:>7.1f} {n / direct:>12.1f}")
            print(f"{'browser: click Evaluate -> entry on the run page':<52} {click_to_entry:>7.1f} {n / click_to_entry:>12.1f}")
            print(f"{'fipo eval --responses (grading only)':<52} {grading:>7.1f} {n / grading:>12.1f}")

            if args.screenshots:
                shots(page, api, stack, run, detail, entry, Path(args.screenshots), Path(tmp))
            browser.close()


def shots(page, api, stack, run, detail, entry, out: Path, tmp: Path) -> None:
    """Board (two checkpoints + an external model), the entry page, a comparison."""
    out.mkdir(parents=True, exist_ok=True)
    for ckpt in detail["checkpoints"][:-1]:
        r = api.post("/leaderboards/evaluate/", json={"run": run["id"], "benchmark": "arith-30", "step": ckpt["step"]})
        job_id = r.json()["job"]
        while api.get(f"/eval-jobs/{job_id}/").json()["status"] not in ("succeeded", "failed", "cancelled"):
            time.sleep(0.5)
    rows = []
    for i, p in enumerate(problems()):
        wrong = str(int(p["answer"]) + 1)
        answers = [p["answer"] if (i + j) % 9 < 4 else wrong for j in range(K)]  # ~44%: near the run
        rows.append({"id": p["id"], "responses": [f"{p['problem'][10:-1]} = {a}. Answer: {a}" for a in answers]})
    (tmp / "ext.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = subprocess.run([sys.executable, "-m", "fipo_engine.cli", "eval", "--responses", str(tmp / "ext.jsonl"),
                             "--benchmark", str(tmp / "arith-30.jsonl"), "--json"], capture_output=True, text=True,
                            env=stack.env, cwd=ROOT, check=True)
    bench = next(b for b in api.get("/benchmarks/").json() if b["name"] == "arith-30")
    ext = api.post(f"/leaderboards/{bench['id']}/entries/", json={"team": stack.team_id(), "model_name": "external-api-model",
                                                                 "result": json.loads(result.stdout)}).json()
    page.goto("/leaderboards/arith-30/")
    page.wait_for_selector("#board table")
    page.screenshot(path=str(out / "leaderboard-board.png"))
    page.goto(f"/leaderboards/entries/{entry['id']}/")
    page.wait_for_selector("body[data-entry-ready='1']")
    idx = next((i for i, p in enumerate(entry["problems"]) if 0 < p["correct"] < p["n"]), 0)
    page.locator("#problem-table tr[data-problem] button").nth(idx).click()
    page.screenshot(path=str(out / "leaderboard-entry.png"))
    page.goto(f"/leaderboards/compare/?a={ext['id']}&b={entry['id']}")
    page.wait_for_selector("body[data-compare-ready='1']")
    page.screenshot(path=str(out / "leaderboard-compare.png"))
    page.goto(f"/leaderboards/arith-30/?run={run['id']}&all=1")
    page.wait_for_selector("#progress-chart")
    page.screenshot(path=str(out / "leaderboard-progress.png"))


if __name__ == "__main__":
    main()
