"""Screenshots of a real, finished run: its run directory replayed into a fresh dashboard.

    .venv/bin/fipo train cot-demo --out var/runs/cot
    PYTHONPATH=. .venv/bin/python bench/showcase_run.py var/runs/cot --screenshots docs/screenshots

A run directory's ``events.jsonl`` holds every event its trainer produced, in order, with the
sequence numbers the control plane deduplicates on; posting them to a new run's ingest endpoint
is exactly what the trainer's spool sender does after an outage, so the dashboard then shows the run
as if it had streamed live. The script opens the run page and the samples page of the correct chain
(16+ tokens, trained after the first mini-batch) with the largest |future-KL| of the run, clicks
that token, and writes ``samples-cot.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.conftest import launch_chromium, running_dashboard  # noqa: E402


def replay(server: Any, run_dir: Path, name: str) -> int:
    """A new run of the run directory's preset, fed every event of its spool; its id."""
    config = json.loads((run_dir / "config.json").read_text())
    run = server.create_run(name, preset=config.get("preset") or "cpu-demo")
    token = server.start_runs(run["id"])[run["id"]]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines() if line.strip()]
    for i in range(0, len(events), 200):
        server.post_events(run["id"], token, events[i:i + 200])
    print(f"replayed {len(events)} events into run {run['id']}", flush=True)
    return int(run["id"])


def worked_right(sample: dict[str, Any]) -> bool:
    """For a ``chain_sum`` prompt, whether the response is the full worked chain, every line right
    (a right last digit can follow a wrong line); other tasks: True."""
    import re

    import numpy as np

    from fipo_engine.data.chain_sum import solution

    prompt = sample.get("prompt") if isinstance(sample.get("prompt"), str) else ""
    match = re.match(r"^([0-9+]+) mod ([0-9]+)", prompt)
    if not match:
        return True
    terms = [int(x) for x in match.group(1).split("+")]
    return sample.get("response") == solution(terms, "full", np.random.default_rng(0), modulus=int(match.group(2)))


def pick_sample(server: Any, run_id: int) -> tuple[dict[str, Any], int]:
    """Among correct samples of at least ``min_tokens`` trained after the first mini-batch (where
    future-KL can be non-zero), the one whose largest |future-KL| is largest, and that token: where
    the policy moved most on a worked chain."""
    api = server.api()
    best: tuple[float, dict[str, Any], int] | None = None
    for step in api.get(f"/runs/{run_id}/samples/").json()["steps"]:
        for listed in api.get(f"/runs/{run_id}/samples/", params={"step": step}).json()["results"]:
            if not listed.get("correct") or not listed.get("minibatch") or (listed.get("length") or 0) < 16:
                continue
            detail = api.get(f"/samples/{listed['id']}/").json()
            if not worked_right(detail):
                continue
            fkl = [abs(v or 0.0) for v in detail["channels"]["future_kl"]]
            visible = [i for i, t in enumerate(detail["tokens"]) if str(t).strip()]  # a newline has no box to click
            if not visible:
                continue
            token = max(visible, key=fkl.__getitem__)
            if best is None or fkl[token] > best[0]:
                best = (fkl[token], detail, token)
    if best is None:
        raise SystemExit("no correct chain trained after the first mini-batch in this run")
    return best[1], best[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--screenshots", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--name", default="cot-demo (seed 1)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, running_dashboard(Path(tmp), tag="showcase") as server:
        run_id = replay(server, args.run_dir, args.name)
        sample, token = pick_sample(server, run_id)
        args.screenshots.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            context = browser.new_context(viewport={"width": 1280, "height": 1400}, base_url=server.base_url)
            context.add_cookies(server.login_cookie("alice"))
            page = context.new_page()
            page.goto(f"/runs/{run_id}/samples/?step={sample['step']}&sample={sample['id']}")
            page.wait_for_selector(f"#tokens[data-rendered='{len(sample['tokens'])}']")
            page.click(f"#tokens span[data-i='{token}']")
            page.locator(f"#explain[data-token='{token}']").wait_for()
            page.evaluate("() => { document.getElementById('token-tip').hidden = true; window.scrollTo(0, 0); }")
            page.screenshot(path=str(args.screenshots / "samples-cot.png"))
            browser.close()
        print(f"step {sample['step']}, sample {sample['index']} ({len(sample['tokens'])} tokens), token {token}; "
              f"screenshots in {args.screenshots}")


if __name__ == "__main__":
    main()
