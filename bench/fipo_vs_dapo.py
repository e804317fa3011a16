"""The paper's headline in miniature: FIPO vs DAPO on the CPU demo task, same compute, 3 seeds each.

Both runs use the ``cpu-demo`` preset unchanged except ``algorithm.policy_loss`` (``fipo`` or
``dapo``) and ``trainer.seed``: the same model, warm start, prompts per step, group size,
mini-batches (so the same optimizer steps and generated tokens). Prints, per run, the final
held-out Pass@1 (avg@k), the training accuracy over the last steps and the mean / p75 response
length, then the mean of each algorithm; writes ``bench/out/fipo_vs_dapo.png`` (accuracy and
length over steps, both algorithms).

    .venv/bin/python bench/fipo_vs_dapo.py [--steps 40] [--seeds 1 2 3]

This is a toy: 2-3 token answers on a tiny model cannot show the paper's long-reasoning effect
(FIPO's length growth); it shows the machinery and whether FIPO is at least not worse. CPU
timings on a shared machine are noisy; accuracy numbers are seeded and reproducible.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from fipo_engine.config import apply_overrides, preset
from fipo_engine.trainer.loop import train

OUT = Path(__file__).resolve().parent / "out"
LAST = 5  # steps averaged for the "final" training figures


def run(loss: str, seed: int, steps: int | None) -> dict:
    overrides: dict[str, object] = {"algorithm.policy_loss": loss, "trainer.seed": seed}
    if steps:
        overrides["trainer.total_steps"] = steps
    cfg = apply_overrides(preset("cpu-demo"), overrides)
    with tempfile.TemporaryDirectory() as out:
        result = train(cfg, out, progress=False)
    hist = result.history
    tail = hist[-LAST:]
    return {
        "loss": loss, "seed": seed, "history": hist,
        "pass_at_1": (result.last_eval or {}).get("eval/pass_at_1", float("nan")),
        "train_acc": float(np.mean([h["accuracy/gen_mean"] for h in tail])),
        "len_mean": float(np.mean([h.get("response_length/mean", np.nan) for h in tail])),
        "len_p75": float(np.mean([h.get("response_length/p75", np.nan) for h in tail])),
        "minutes": sum(h["timing/step_s"] for h in hist) / 60,
    }


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_acc, ax_len) = plt.subplots(1, 2, figsize=(11, 4))
    colors = {"fipo": "tab:red", "dapo": "tab:blue"}
    for r in runs:
        steps = [h["step"] for h in r["history"]]
        label = f"{r['loss'].upper()} seed {r['seed']}"
        ax_acc.plot(steps, [h["accuracy/gen_mean"] for h in r["history"]], color=colors[r["loss"]], alpha=0.7,
                    label=label)
        ax_len.plot(steps, [h.get("response_length/mean", np.nan) for h in r["history"]], color=colors[r["loss"]],
                    alpha=0.7, label=label)
    ax_acc.set(title="Training accuracy (all generated responses)", xlabel="step", ylabel="accuracy")
    ax_len.set(title="Mean response length", xlabel="step", ylabel="tokens")
    ax_acc.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (default: the preset's)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    torch.set_num_threads(1)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    runs = [run(loss, seed, args.steps) for seed in args.seeds for loss in ("fipo", "dapo")]

    print(f"\n| {'run':14s} | {'eval Pass@1':>11s} | {'train acc (last 5)':>18s} | {'len mean':>8s} | "
          f"{'len p75':>7s} | {'minutes':>7s} |")
    print(f"|{'-' * 16}|{'-' * 13}|{'-' * 20}|{'-' * 10}|{'-' * 9}|{'-' * 9}|")
    for r in runs:
        print(f"| {r['loss'].upper() + ' seed ' + str(r['seed']):14s} | {r['pass_at_1']:11.3f} | {r['train_acc']:18.3f} "
              f"| {r['len_mean']:8.2f} | {r['len_p75']:7.2f} | {r['minutes']:7.2f} |")
    for loss in ("fipo", "dapo"):
        mine = [r for r in runs if r["loss"] == loss]
        print(f"| {loss.upper() + ' mean':14s} | {np.mean([r['pass_at_1'] for r in mine]):11.3f} | "
              f"{np.mean([r['train_acc'] for r in mine]):18.3f} | {np.mean([r['len_mean'] for r in mine]):8.2f} | "
              f"{np.mean([r['len_p75'] for r in mine]):7.2f} | {np.mean([r['minutes'] for r in mine]):7.2f} |")
    path = OUT / "fipo_vs_dapo.png"
    plot(runs, path)
    print(f"\nplot: {path}")


if __name__ == "__main__":
    main()
