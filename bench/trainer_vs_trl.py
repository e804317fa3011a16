"""Throughput of our trainer against TRL's GRPOTrainer on the same tiny problem, both on CPU, one run.

Same everything that costs compute: the same randomly initialised tiny Llama (cpu-demo shape) and
character tokenizer, the same reasoning-gym prompts, group size G, response length, prompts per
rollout batch P, mini-batch M (so P/M optimizer updates per rollout batch) and number of rollout
batches; AdamW, fp32, one torch thread each, no eval, no KL (beta 0), no dynamic sampling.
TRL runs ``loss_type="dapo"`` with clip-higher 0.28 and ``steps_per_generation = P/M``,
``num_iterations = 1``: one generation feeds P/M optimizer steps, the same off-policy structure as
our mini-batches (FIPO's influence weights need it). Ours runs the FIPO loss (a little more work
than DAPO: the future-KL scan). A random model rarely emits EOS, so most responses run to the
length limit on both sides; we report generated samples/s and tokens/s (generated + trained).

    .venv/bin/pip install trl        # bench-only dependency (the `bench` extra)
    .venv/bin/python bench/trainer_vs_trl.py [--steps 4] [--repeats 2]

Wall-clock numbers on a shared machine are noisy: runs alternate (ours, TRL, ours, TRL, ...) and
the table shows the median of each; the ratio is what matters.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from fipo_engine.config import apply_overrides, preset
from fipo_engine.data import load_problems, render_prompt
from fipo_engine.models import load_policy, save_policy
from fipo_engine.rewards import score_responses


def bench_config(steps: int, prompts: int, group: int, mini: int, max_new: int):
    return apply_overrides(preset("cpu-demo"), {
        "rollout.n": group, "rollout.max_new_tokens": max_new, "rollout.generation_batch_size": prompts * group,
        "reward.overlong_buffer": {"enable": False, "length": 1, "penalty_factor": 1.0},
        "trainer.total_steps": steps, "trainer.train_batch_size": prompts, "trainer.gen_batch_size": prompts,
        "trainer.ppo_mini_batch_size": mini, "trainer.micro_batch_size": mini * group,
        "trainer.dynamic_sampling": False, "trainer.sft_warmup_steps": 0, "trainer.eval_every": 0,
        "trainer.save_every": 0, "trainer.log_samples": 4, "trainer.warmup_steps": 0, "trainer.lr": 1e-4,
        "trainer.cpu_threads": 1, "data.eval_size": 0,
    })


def run_ours(cfg, model_dir: Path) -> dict[str, float]:
    from fipo_engine.trainer.loop import train

    with tempfile.TemporaryDirectory() as out:
        cfg = apply_overrides(cfg, {"model.source": "hf", "model.path": str(model_dir)})
        cpu = time.process_time()
        result = train(cfg, out, progress=False)  # data + model loading included in the CPU time
        cpu = time.process_time() - cpu
    seconds = sum(h["timing/step_s"] for h in result.history)
    samples = len(result.history) * cfg.trainer.train_batch_size * cfg.rollout.n
    gen_tokens = sum(h["response_length/mean"] for h in result.history) * cfg.trainer.train_batch_size * cfg.rollout.n
    return {"seconds": seconds, "cpu": cpu, "samples": samples, "tokens": 2 * gen_tokens}  # generated + trained


def run_trl(cfg, model_dir: Path) -> dict[str, float]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    class StepClock(TrainerCallback):
        """Wall time of each optimizer step, from ``on_step_begin`` (before ``training_step``, which
        generates when the buffer is empty) to ``on_step_end`` (after clip, AdamW step, zero_grad):
        the same span as our ``timing/step_s``. TRL's own ``step_time`` covers ``training_step``
        only, leaving out the optimizer step."""

        def __init__(self) -> None:
            self.begin, self.seconds = 0.0, []

        def on_step_begin(self, *_args, **_kwargs):
            self.begin = time.perf_counter()

        def on_step_end(self, *_args, **_kwargs):
            self.seconds.append(time.perf_counter() - self.begin)

    t = cfg.trainer
    train_problems, _ = load_problems(cfg.data, t.seed)
    cpu = time.process_time()
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    by_id = {p.id: p for p in train_problems}
    rows = [{"prompt": render_prompt(p, cfg.data, tok, chat=False), "pid": p.id} for p in train_problems]
    lengths: list[int] = []

    def reward(prompts, completions, completion_ids, pid, **_):
        lengths.extend(len(c) for c in completion_ids)
        batch = score_responses(cfg.reward, [by_id[i] for i in pid], completions, [len(c) for c in completion_ids],
                                cfg.rollout.max_new_tokens)
        return batch.scores

    updates_per_batch = t.train_batch_size // t.ppo_mini_batch_size
    with tempfile.TemporaryDirectory() as out:
        args = GRPOConfig(
            output_dir=out, use_cpu=True, report_to="none", save_strategy="no", logging_steps=1,
            max_steps=t.total_steps * updates_per_batch, learning_rate=t.lr, lr_scheduler_type="constant",
            weight_decay=t.weight_decay, max_grad_norm=t.grad_clip, seed=t.seed,
            per_device_train_batch_size=t.ppo_mini_batch_size * cfg.rollout.n, gradient_accumulation_steps=1,
            num_generations=cfg.rollout.n, steps_per_generation=updates_per_batch, num_iterations=1,
            max_completion_length=cfg.rollout.max_new_tokens, temperature=cfg.rollout.temperature,
            top_p=cfg.rollout.top_p, top_k=0, loss_type="dapo", epsilon=0.2, epsilon_high=0.28, beta=0.0,
            disable_dropout=True, bf16=False, dataloader_num_workers=0, shuffle_dataset=True,
        )
        clock = StepClock()
        trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=Dataset.from_list(rows),
                              processing_class=tok, callbacks=[clock])
        trainer.train()
        seconds = sum(clock.seconds)  # the counterpart of our timing/step_s (generation included)
        trl_step_time = sum(h["step_time"] for h in trainer.state.log_history if "step_time" in h)
    cpu = time.process_time() - cpu
    samples = len(lengths)
    return {"seconds": seconds, "trl_step_time": trl_step_time, "cpu": cpu, "samples": samples,
            "tokens": 2 * sum(lengths)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=4, help="rollout batches per run")
    parser.add_argument("--prompts", type=int, default=16, help="prompts per rollout batch (P)")
    parser.add_argument("--group", type=int, default=8, help="responses per prompt (G)")
    parser.add_argument("--mini", type=int, default=4, help="prompts per optimizer step (M)")
    parser.add_argument("--max-new-tokens", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    cfg = bench_config(args.steps, args.prompts, args.group, args.mini, args.max_new_tokens)
    train_problems, _ = load_problems(cfg.data, cfg.trainer.seed)
    results: dict[str, list[dict[str, float]]] = {"ours (FIPO loss)": [], "TRL GRPOTrainer (dapo)": []}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "tiny"
        policy = load_policy(cfg.model, corpus=[str(p.prompt) + p.answer for p in train_problems[:2000]],
                             seed=cfg.trainer.seed)
        save_policy(policy, model_dir)  # both trainers start from these exact weights
        for _ in range(args.repeats):
            results["ours (FIPO loss)"].append(run_ours(cfg, model_dir))
            results["TRL GRPOTrainer (dapo)"].append(run_trl(cfg, model_dir))

    updates = args.steps * (args.prompts // args.mini)
    print(f"\nP={args.prompts} prompts x G={args.group}, {args.max_new_tokens} new tokens, {args.steps} rollout "
          f"batches, {updates} optimizer updates per run, median of {args.repeats} alternating runs, CPU, 1 thread\n")
    print(f"| {'trainer':24s} | {'step s':>7s} | {'samples/s':>9s} | {'tokens/s':>9s} | {'CPU s':>6s} | "
          f"{'samples/CPU-s':>13s} |")
    print(f"|{'-' * 26}|{'-' * 9}|{'-' * 11}|{'-' * 11}|{'-' * 8}|{'-' * 15}|")
    rates = {}
    for name, runs in results.items():
        sec = statistics.median(r["seconds"] for r in runs)
        sps = statistics.median(r["samples"] / r["seconds"] for r in runs)
        tps = statistics.median(r["tokens"] / r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        spc = statistics.median(r["samples"] / r["cpu"] for r in runs)
        rates[name] = (sps, tps, spc)
        print(f"| {name:24s} | {sec:7.1f} | {sps:9.1f} | {tps:9.1f} | {cpu:6.1f} | {spc:13.1f} |")
    ours, trl = rates["ours (FIPO loss)"], rates["TRL GRPOTrainer (dapo)"]
    trl_own = statistics.median(r["samples"] / r["trl_step_time"] for r in results["TRL GRPOTrainer (dapo)"])
    print(f"\nTRL step time is measured from on_step_begin to on_step_end (optimizer step included, as in ours); "
          f"by TRL's own step_time metric (training_step only) TRL does {trl_own:.1f} samples/s "
          f"(ratio {ours[0] / trl_own:.2f}x).")
    print(f"\nratio ours/TRL: samples/s {ours[0] / trl[0]:.2f}x, tokens/s {ours[1] / trl[1]:.2f}x (wall clock of "
          f"the training steps; target >= 1.5x), samples per CPU-second {ours[2] / trl[2]:.2f}x (whole job, "
          "setup included; less sensitive to other processes on a shared machine)")


if __name__ == "__main__":
    main()
