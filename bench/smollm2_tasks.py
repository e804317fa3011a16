"""Starting accuracy of SmolLM2-135M-Instruct on candidate reasoning-gym tasks (choosing its preset).

Dynamic sampling keeps only groups with mixed rewards, so a preset's task should be one the model
solves some of the time (roughly 20-60% of samples): then most groups are mixed. This samples
``--problems`` problems x ``--n`` responses per candidate with the trainer's own prompt rendering,
rollout and grader, and prints accuracy, the fraction of mixed groups and the generation time.

    PYTHONPATH=. .venv/bin/python bench/smollm2_tasks.py --problems 16 --n 4
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from fipo_engine.config import DataConfig, ModelConfig, RewardConfig
from fipo_engine.data import load_problems, render_prompt
from fipo_engine.models import load_policy
from fipo_engine.rewards import score_responses
from fipo_engine.rollout import SamplingParams
from fipo_engine.rollout.hf import HFRollout
from fipo_engine.trainer.sampling import filter_groups

BOXED = "\nPut the final answer in \\boxed{}."
SHORT = "\nGive only the result, as \\boxed{number}."
SYSTEM = "You are a careful calculator. Reply with the final number inside \\boxed{}, for example \\boxed{12}."
ADD_SUB_1 = {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1, "operators": ["+", "-"],
             "allow_parentheses": False, "allow_negation": False}
ADD_SUB_12 = {**ADD_SUB_1, "max_digits": 2}
CANDIDATES: dict[str, dict] = {
    "basic_arithmetic 1-2 digits +/-, boxed suffix": {
        "task": "basic_arithmetic", "prompt_suffix": BOXED, "task_kwargs": ADD_SUB_12},
    "basic_arithmetic 1 digit +/-, short suffix": {
        "task": "basic_arithmetic", "prompt_suffix": SHORT, "task_kwargs": ADD_SUB_1},
    "basic_arithmetic 1-2 digits +/-, short suffix": {
        "task": "basic_arithmetic", "prompt_suffix": SHORT, "task_kwargs": ADD_SUB_12},
    "basic_arithmetic 1 digit +/-, system prompt": {
        "task": "basic_arithmetic", "system_prompt": SYSTEM, "task_kwargs": ADD_SUB_1},
    "basic_arithmetic 1-2 digits +/-, system prompt": {
        "task": "basic_arithmetic", "system_prompt": SYSTEM, "task_kwargs": ADD_SUB_12},
    "leg_counting 1-2 animals, system prompt": {
        "task": "leg_counting", "system_prompt": SYSTEM, "task_kwargs": {"min_animals": 1, "max_animals": 2}},
    "gsm_symbolic (the smollm2-gsm task)": {"task": "gsm_symbolic", "prompt_suffix": BOXED, "task_kwargs": {}},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--only", default="", help="substring of the candidate names to run")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grader", default="reasoning_gym_last_number")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    policy = load_policy(ModelConfig(source="smollm2"))
    print(f"loaded SmolLM2 in {time.perf_counter() - t0:.1f} s; load average {os.getloadavg()[0]:.1f}")
    rollout = HFRollout(policy, generation_batch_size=64)
    params = SamplingParams(n=args.n, temperature=args.temperature, top_p=args.top_p,
                            max_new_tokens=args.max_new_tokens)
    reward = RewardConfig(name=args.grader, overlong_buffer={"enable": False})
    print(f"grader {args.grader}, temperature {args.temperature}, top_p {args.top_p}, "
          f"{args.problems} problems x {args.n} samples, {args.max_new_tokens} new tokens")
    print(f"{'candidate':45} {'acc':>5} {'mixed':>6} {'trunc':>6} {'len':>6} {'gen s':>6}")
    for name, spec in CANDIDATES.items():
        if args.only and args.only not in name:
            continue
        data = DataConfig(source="reasoning_gym", train_size=args.problems, eval_size=0, **spec)
        problems, _ = load_problems(data, seed=1)
        texts = [render_prompt(p, data, policy.tokenizer, policy.chat) for p in problems]
        prompts = policy.tokenizer(texts, add_special_tokens=False)["input_ids"]
        t0 = time.perf_counter()
        gens = rollout.generate(prompts, params)
        gen_s = time.perf_counter() - t0
        out = policy.tokenizer.batch_decode([g.response_ids for g in gens], skip_special_tokens=True)
        lengths = [len(g.response_ids) for g in gens]
        scored = score_responses(reward, [problems[g.prompt_index] for g in gens], out, lengths,
                                 args.max_new_tokens)
        groups = filter_groups(scored.correct, args.n)
        acc = sum(scored.correct) / len(gens)
        trunc = sum(g.truncated for g in gens) / len(gens)
        print(f"{name:45} {acc:5.2f} {len(groups.kept) / groups.total:6.2f} {trunc:6.2f} "
              f"{sum(lengths) / len(lengths):6.1f} {gen_s:6.1f}", flush=True)
        print("   e.g.:", repr(out[0][:200]))


if __name__ == "__main__":
    main()
