"""FIPO vs DAPO on ``cot-demo``: the paper's two claims in miniature, measured over seeds.

Every arm runs the ``cot-demo`` preset unchanged except the policy loss (and, for the second FIPO
arm, the loss knobs of the paper's 7B pilot): the same model, warm start, prompts, group size,
mini-batches, steps and seeds, so the same optimizer steps and a comparable number of generated
tokens. Arms:

- ``fipo``: the preset (the official 32B recipe's loss: weights in [1.0, 1.2], safety threshold 10);
- ``dapo``: ``algorithm.policy_loss=dapo`` (clip-higher + dual clip, no influence weights);
- ``fipo-7b``: FIPO with the 7B pilot's symmetric weights [0.8, 1.2] and safety threshold 3.

For each run it reads the held-out Pass@1 (``eval/pass_at_1``) and the mean response length per
step, and prints per run the first and last Pass@1 and the length of the first and last tenth of
the steps, then per arm mean ± sd, then each FIPO arm minus DAPO with a bootstrap 95% CI (seeds
resampled within each arm). It writes a two-panel PNG (held-out Pass@1 vs step and mean response
length vs step; one thin line per seed, the mean bold) to ``docs/img/fipo_vs_dapo.png`` and the
raw curves to ``bench/out/fipo_vs_dapo.json``.

    .venv/bin/python bench/fipo_vs_dapo.py                      # 3 arms x seeds 11 12 13, 2 at a time
    .venv/bin/python bench/fipo_vs_dapo.py --arms fipo dapo --seeds 11 12 13 14 --jobs 2

Runs go in parallel processes (``--jobs``, one torch thread each): on 2 cores two runs at a time
take about as long as one. Accuracy numbers are seeded and reproducible; wall times are not.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PNG = ROOT / "docs" / "img" / "fipo_vs_dapo.png"
ARMS: dict[str, dict[str, Any]] = {
    "fipo": {},
    "dapo": {"algorithm.policy_loss": "dapo"},
    "fipo-7b": {"algorithm.loss.future_kl_clip_high_only": False, "algorithm.loss.safety_thresh": 3.0},
}
COLORS = {"fipo": "tab:red", "dapo": "tab:blue", "fipo-7b": "tab:orange"}


def run_one(arm: str, seed: int, steps: int | None) -> dict[str, Any]:
    """Train one arm/seed of ``cot-demo`` in a temp directory; return its per-step curves."""
    import torch
    from transformers.utils import logging as hf_logging

    from fipo_engine.config import apply_overrides, preset
    from fipo_engine.trainer.loop import train

    torch.set_num_threads(1)
    hf_logging.set_verbosity_error()
    overrides: dict[str, Any] = {**ARMS[arm], "trainer.seed": seed}
    if steps:
        overrides["trainer.total_steps"] = steps
    cfg = apply_overrides(preset("cot-demo"), overrides)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = train(cfg, out, progress=False)
        events = [json.loads(line) for line in (Path(out) / "events.jsonl").read_text().splitlines()]
    evals = [(e["step"], e["values"]["eval/pass_at_1"]) for e in events
             if e["type"] == "metric" and "eval/pass_at_1" in e.get("values", {})]
    hist = result.history
    return {
        "arm": arm, "seed": seed, "minutes": (time.perf_counter() - start) / 60,
        "eval_steps": [s for s, _ in evals], "pass_at_1": [v for _, v in evals],
        "steps": [h["step"] for h in hist],
        "length": [h.get("response_length/mean", float("nan")) for h in hist],
        "influence_mean": [h.get("actor/influence_weights_mean", float("nan")) for h in hist],
        # where FIPO's weights sit: at the clip bounds they add nothing a plain clip would not
        "iw_upper": [h.get("actor/IW_upper_clip_ratio", float("nan")) for h in hist],
        "iw_lower": [h.get("actor/IW_lower_clip_ratio", float("nan")) for h in hist],
    }


def tenth_means(values: list[float]) -> tuple[float, float]:
    """Mean of the first and of the last tenth of a per-step series (at least one step each)."""
    k = max(1, len(values) // 10)
    return float(np.nanmean(values[:k])), float(np.nanmean(values[-k:]))


def summarize(run: dict[str, Any]) -> dict[str, float]:
    len_first, len_last = tenth_means(run["length"])
    return {"p1_first": run["pass_at_1"][0], "p1_last": run["pass_at_1"][-1],
            "len_first": len_first, "len_last": len_last, "minutes": run["minutes"]}


def bootstrap_diff_ci(a: list[float], b: list[float], *, draws: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """95% CI of mean(a) − mean(b), resampling the runs of each arm with replacement."""
    rng = np.random.default_rng(seed)
    xa, xb = np.asarray(a, float), np.asarray(b, float)
    diffs = (rng.choice(xa, (draws, len(xa))).mean(1) - rng.choice(xb, (draws, len(xb))).mean(1))
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    return float(lo), float(hi)


def plot(runs: list[dict[str, Any]], arms: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_p1, ax_len) = plt.subplots(1, 2, figsize=(12, 4.4))
    for arm in arms:
        mine = [r for r in runs if r["arm"] == arm]
        for r in mine:
            ax_p1.plot(r["eval_steps"], r["pass_at_1"], color=COLORS[arm], alpha=0.35, lw=0.8)
            ax_len.plot(r["steps"], r["length"], color=COLORS[arm], alpha=0.25, lw=0.6)
        ax_p1.plot(mine[0]["eval_steps"], np.mean([r["pass_at_1"] for r in mine], 0), color=COLORS[arm], lw=2.4,
                   label=f"{arm} (mean of {len(mine)} seeds)")
        ax_len.plot(mine[0]["steps"], np.mean([r["length"] for r in mine], 0), color=COLORS[arm], lw=2.4, label=arm)
    ax_p1.set(title="Held-out Pass@1 (avg@4, T=1, top-p 0.7)", xlabel="step", ylabel="Pass@1")
    ax_len.set(title="Mean response length (tokens)", xlabel="step", ylabel="tokens")
    ax_p1.legend(fontsize=8, loc="lower right")
    ax_p1.grid(alpha=0.3)
    ax_len.grid(alpha=0.3)
    fig.suptitle("cot-demo: FIPO vs DAPO, same compute (thin: one seed; bold: mean)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13])
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (default: the preset's)")
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at the same time (one thread each)")
    parser.add_argument("--png", type=Path, default=PNG)
    args = parser.parse_args()

    jobs = [(arm, seed) for seed in args.seeds for arm in args.arms]
    runs: list[dict[str, Any]] = []
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_one, arm, seed, args.steps): (arm, seed) for arm, seed in jobs}
        for i, fut in enumerate(as_completed(futures), 1):
            runs.append(fut.result())
            arm, seed = futures[fut]
            print(f"[{i}/{len(jobs)}] {arm} seed {seed} done ({time.perf_counter() - started:.0f} s)",
                  file=sys.stderr, flush=True)
    runs.sort(key=lambda r: (args.arms.index(r["arm"]), r["seed"]))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "fipo_vs_dapo.json").write_text(json.dumps(runs))

    print("\n| run | Pass@1 first -> last | length first -> last (tokens) | minutes |")
    print("|---|---|---|---:|")
    for r in runs:
        s = summarize(r)
        print(f"| {r['arm']} seed {r['seed']} | {s['p1_first']:.3f} -> {s['p1_last']:.3f} | "
              f"{s['len_first']:.1f} -> {s['len_last']:.1f} | {s['minutes']:.1f} |")
    print("\n| arm | final Pass@1 (mean ± sd) | final length (mean ± sd) | Pass@1 gain | length ratio |")
    print("|---|---|---|---|---|")
    finals: dict[str, dict[str, list[float]]] = {}
    for arm in args.arms:
        rows = [summarize(r) for r in runs if r["arm"] == arm]
        p1 = [x["p1_last"] for x in rows]
        ln = [x["len_last"] for x in rows]
        finals[arm] = {"p1": p1, "len": ln}
        gain = np.mean([x["p1_last"] - x["p1_first"] for x in rows])
        ratio = np.mean([x["len_last"] / x["len_first"] for x in rows])
        print(f"| {arm} | {np.mean(p1):.3f} ± {np.std(p1, ddof=1) if len(p1) > 1 else 0:.3f} | "
              f"{np.mean(ln):.1f} ± {np.std(ln, ddof=1) if len(ln) > 1 else 0:.1f} | {gain:+.3f} | {ratio:.2f}x |")
    if "dapo" in finals:
        print("\n| difference | Pass@1 (bootstrap 95% CI) | length, tokens (bootstrap 95% CI) |")
        print("|---|---|---|")
        for arm in args.arms:
            if arm == "dapo":
                continue
            dp = np.mean(finals[arm]["p1"]) - np.mean(finals["dapo"]["p1"])
            dl = np.mean(finals[arm]["len"]) - np.mean(finals["dapo"]["len"])
            p_lo, p_hi = bootstrap_diff_ci(finals[arm]["p1"], finals["dapo"]["p1"])
            l_lo, l_hi = bootstrap_diff_ci(finals[arm]["len"], finals["dapo"]["len"])
            print(f"| {arm} − dapo | {dp:+.3f} [{p_lo:+.3f}, {p_hi:+.3f}] | {dl:+.1f} [{l_lo:+.1f}, {l_hi:+.1f}] |")
    fipo_arms = [arm for arm in args.arms if arm != "dapo"]
    if fipo_arms:
        print("\n| arm | mean influence weight | tokens at the upper bound | at the lower bound |")
        print("|---|---|---|---|")
        for arm in fipo_arms:
            mine = [r for r in runs if r["arm"] == arm]

            def mean_of(key: str, mine: list[dict[str, Any]] = mine) -> float:
                return float(np.nanmean([v for r in mine for v in r.get(key, [])] or [float("nan")]))

            print(f"| {arm} | {mean_of('influence_mean'):.3f} | {mean_of('iw_upper'):.1%} | {mean_of('iw_lower'):.1%} |")
    plot(runs, args.arms, args.png)
    print(f"\nplot: {args.png.relative_to(ROOT) if args.png.is_relative_to(ROOT) else args.png}; "
          f"curves: bench/out/fipo_vs_dapo.json; wall {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
