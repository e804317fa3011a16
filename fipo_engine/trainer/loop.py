"""The native FIPO trainer: one loop that reads top to bottom (rollout, reward, advantage, loss, step).

How FIPO differs from the algorithms it builds on (docs/spec.md):
1. GRPO samples G responses per prompt and gives every token of a response the same advantage,
   the response's reward normalised within its group (mean and unbiased std), then takes PPO
   clipped steps (often with a KL penalty to a reference model).
2. DAPO keeps the group advantage and drops the KL term; it adds clip-higher (ε_high 0.28 >
   ε_low 0.2), a dual clip c = 10 for negative advantages, a token-mean loss, dynamic sampling
   (groups whose answers are all right or all wrong are dropped and more prompts are drawn) and a
   soft overlong penalty on the reward.
3. FIPO keeps all of DAPO and re-weights each token's advantage by an influence weight
   w_t = clip(exp(F_t), 1, 1.2), where F_t = Σ_{k≥t} γ^{k-t} log(π/π_old)_k is the discounted
   (half-life τ = 32 tokens) sum of the log-ratio *from this token onwards*: tokens whose future
   the current policy already favours more than the rollout policy get more credit. Tokens with a
   log-ratio above ln c are left out of the sums, and negative samples with ratio above a safety
   threshold get weight ≤ 1.
4. F is zero on-policy, so FIPO only acts when one rollout batch feeds several optimizer steps:
   old log-probs are recomputed once (π_old), then each mini-batch moves π away from π_old and the
   later mini-batches see non-trivial weights. Presets therefore use several mini-batches per step.

Launch (the chain-of-thought demo on a CPU; ``cpu-demo`` is the two-minute one):

    fipo train cot-demo --out var/runs/cot
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fipo_engine.algorithms import outcome_advantages, policy_loss
from fipo_engine.config import RunConfig
from fipo_engine.data import Problem, PromptStream, load_problems, render_prompt
from fipo_engine.data.chain_sum import warm_start_solution
from fipo_engine.models import load_hf_dir, load_policy, resolve_device
from fipo_engine.rewards import score_responses
from fipo_engine.rollout import GenerationInterrupted, SamplingParams, make_rollout
from fipo_engine.tracking import Tracker
from fipo_engine.trainer.batch import pack, response_logprobs, select
from fipo_engine.trainer.checkpoint import (
    TrainerState,
    latest_checkpoint,
    load_optimizer_state,
    load_rng,
    load_trainer_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from fipo_engine.trainer.evaluate import run_eval
from fipo_engine.trainer.metrics import (
    MetricAccumulator,
    compact,
    length_stats,
    minibatch_of_groups,
    reward_stats,
    sample_indices,
)
from fipo_engine.trainer.sampling import filter_groups, stop_drawing, underfill_message
from fipo_engine.trainer.stop import StopRequest

log = logging.getLogger("fipo.trainer")
UNDERFILL_LOG_EVERY = 10  # steps between two "batch not filled" log lines


@dataclass
class TrainResult:
    """What a run produced: per-step metrics (as logged), the last checkpoint, the last eval."""

    history: list[dict[str, Any]] = field(default_factory=list)
    last_checkpoint: Path | None = None
    last_eval: dict[str, float] | None = None
    final_step: int = 0
    stopped: str | None = None  # the signal that stopped the run early (a checkpoint was written)


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _lr_at(cfg: RunConfig, optimizer_step: int) -> float:
    """Linear warm-up over ``warmup_steps`` optimizer steps, then constant (the recipe's schedule)."""
    t = cfg.trainer
    if t.warmup_steps == 0:
        return t.lr
    return t.lr * min(1.0, (optimizer_step + 1) / t.warmup_steps)


def _warm_start_target(cfg: RunConfig, problem: Problem, rng: np.random.Generator, progress: float) -> str:
    """The supervised target: a worked solution where the task has them (``chain_sum``), else the answer."""
    if problem.source == "chain_sum":
        return warm_start_solution(problem, rng, progress)
    return f"\\boxed{{{problem.answer}}}" if cfg.reward.name == "math" else problem.answer


def train(cfg: RunConfig, out_dir: str | Path, *, resume: bool = False, tracker: Tracker | None = None,
          progress: bool = True, stop: StopRequest | None = None) -> TrainResult:
    """Train ``cfg`` into ``out_dir`` (config.json, events.jsonl, checkpoints/); see the module docstring.

    ``stop`` (``trainer/stop.py``): when it is requested, the run stops at the next safe point with a
    checkpoint a ``resume`` continues from exactly, and returns with ``result.stopped`` set. A stop
    during generation abandons that step (model and optimizer are untouched until the update, and
    the step's prompts and RNG state are those of the checkpoint); a stop during the update finishes
    the step's remaining mini-batches first; evaluation is skipped. A stop during the supervised
    warm start writes nothing (a resume starts over, which is exact too).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    own_tracker = tracker is None
    tracker = tracker or Tracker(out)
    t = cfg.trainer
    result = TrainResult()
    if cfg.algorithm.kl_coef > 0:
        raise ValueError("algorithm.kl_coef > 0 needs a reference model, which the native trainer does not keep "
                         "(the recipe uses 0)")

    # ------------------------------------------------------------------ setup: data, model, optimizer
    if t.cpu_threads:
        torch.set_num_threads(t.cpu_threads)
    _seed_everything(t.seed)
    device = resolve_device(t.device)
    train_problems, eval_problems = load_problems(cfg.data, t.seed)
    ckpt_root = out / "checkpoints"
    ckpt = latest_checkpoint(ckpt_root) if resume else None
    if resume and ckpt is None:
        log.warning("--resume: no checkpoint in %s, starting from scratch", ckpt_root)
    if ckpt is not None:
        policy = load_hf_dir(ckpt / "model", cfg.model.dtype)
        policy.model.to(device)
        state = load_trainer_state(ckpt)
    else:
        corpus = [str(p.prompt) + p.answer for p in train_problems[:2000]] + [cfg.data.prompt_suffix]
        policy = load_policy(cfg.model, corpus=corpus, seed=t.seed, device=device)
        state = TrainerState()
    model, tok = policy.model, policy.tokenizer
    model.train()
    (out / "config.json").write_text(cfg.to_json())

    def encode(problems: list) -> list[list[int]]:
        texts = [render_prompt(p, cfg.data, tok, policy.chat) for p in problems]
        enc = tok(texts, add_special_tokens=not policy.chat, truncation=True,
                  max_length=cfg.data.max_prompt_length)
        return enc["input_ids"]

    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, betas=t.betas, weight_decay=t.weight_decay)
    if ckpt is not None:
        load_optimizer_state(ckpt, optimizer)
        set_rng_state(load_rng(ckpt))
    stream = PromptStream(train_problems, seed=t.seed, shuffle=cfg.data.shuffle, position=state.data_position)
    rollout = make_rollout(cfg.rollout, policy, seed=t.seed,
                           max_model_len=cfg.data.max_prompt_length + cfg.rollout.max_new_tokens)
    stopping = stop.requested if stop is not None else (lambda: False)
    if hasattr(rollout, "should_stop"):
        rollout.should_stop = stopping  # polled once per generated token
    params = SamplingParams(n=cfg.rollout.n, temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
                            top_k=cfg.rollout.top_k, max_new_tokens=cfg.rollout.max_new_tokens)
    eval_prompts = encode(eval_problems) if eval_problems else []
    tracker.status("running", f"step {state.step}/{t.total_steps}" + (f", resumed from {ckpt.name}" if ckpt else ""))

    def evaluate(step: int) -> bool:
        """Evaluate and log; False when a stop request interrupted it (nothing logged)."""
        if not eval_problems:
            return True
        try:
            ev = run_eval(cfg, rollout, tok, eval_problems, eval_prompts, step, device)
        except GenerationInterrupted:
            return False
        ci = ev.pop("pass_at_1_ci")
        tracker.metric(step, ev)
        benchmark = cfg.data.eval_path or f"{cfg.data.source}:{cfg.data.task}"
        tracker.eval(benchmark=benchmark, step=step, pass_at_1=ev["eval/pass_at_1"], pass_at_1_ci=ci,
                     k=t.eval_k, cons_at_k=ev["eval/cons_at_k"], pass_at_k=ev["eval/pass_at_k"],
                     n_problems=len(eval_problems))
        result.last_eval = ev
        return True

    saved_step = state.step if ckpt is not None else -1

    def checkpoint(rng: dict[str, Any] | None = None) -> None:
        nonlocal saved_step
        path = save_checkpoint(ckpt_root, policy, optimizer, replace(state), cfg, t.keep_checkpoints, rng=rng)
        tracker.checkpoint(state.step, str(path.resolve()))
        result.last_checkpoint, saved_step = path, state.step

    def stop_here(rng: dict[str, Any] | None = None) -> None:
        """Checkpoint the last finished step (``rng``: the RNG state at its end) and mark the run stopped."""
        result.stopped = stop.signal_name if stop is not None else "stop"
        if saved_step != state.step:
            checkpoint(rng)
        where = f"checkpoint {result.last_checkpoint}" if result.last_checkpoint else "no checkpoint"
        tracker.log(f"stopped by {result.stopped} after step {state.step} ({where}); "
                    "continue with: fipo train --resume --out DIR")

    # ------------------------------------------------------------------ supervised warm start (CPU demo)
    if t.sft_warmup_steps and not state.sft_done:
        sft_stream = PromptStream(train_problems, seed=t.seed + 1)
        sft_opt = torch.optim.AdamW(model.parameters(), lr=t.sft_lr, weight_decay=0.0)
        sft_rng = np.random.default_rng([t.seed, 1])  # which worked solution each warm-start example gets
        sft_loss, sft_steps = math.nan, 0
        sft_bar = _progress_bar(progress, t.sft_warmup_steps, "warm start")
        report_every = max(1, t.sft_warmup_steps // 10)  # a log line every tenth: the run page shows it live
        tracker.log(f"supervised warm start: {t.sft_warmup_steps} steps, then {t.total_steps} RL steps")
        for sft_step in range(t.sft_warmup_steps):
            if stopping():
                break
            sft_steps += 1
            problems = sft_stream.take(t.micro_batch_size)
            done = sft_step / t.sft_warmup_steps
            answers = tok([_warm_start_target(cfg, p, sft_rng, done) for p in problems], add_special_tokens=False)
            responses = [[*ids, tok.eos_token_id] for ids in answers["input_ids"]]
            packed = pack(encode(problems), responses, tok.pad_token_id)
            log_prob, _ = response_logprobs(model, packed)
            mask = packed.response_mask.to(log_prob.device)
            loss = -(log_prob * mask).sum() / mask.sum()
            sft_opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
            sft_opt.step()
            sft_loss = float(loss.detach())
            if sft_bar is not None:
                sft_bar.update(1)
            if sft_steps % report_every == 0:
                tracker.log(f"warm start {sft_steps}/{t.sft_warmup_steps}: loss {sft_loss:.3f}")
        if sft_bar is not None:
            sft_bar.close()
        del sft_opt
        if sft_steps < t.sft_warmup_steps:  # stopped: a partial warm start is not kept, a resume starts over
            result.stopped = stop.signal_name if stop is not None else "stop"
            tracker.log(f"stopped by {result.stopped} during the warm start (no checkpoint; --resume starts over)")
            if own_tracker:
                tracker.close()
            return result
        state.sft_done = True
        tracker.metric(0, {"actor/sft_loss": sft_loss})
    # the starting point of the eval curve (the recipe validates before training)
    if state.step == 0 and t.eval_every and (not evaluate(0) or stopping()):
        stop_here()

    bar = _progress_bar(progress, t.total_steps, "fipo train", initial=state.step)
    n = cfg.rollout.n
    last_underfill_log = -UNDERFILL_LOG_EVERY

    while state.step < t.total_steps and not result.stopped:
        if stopping():
            stop_here()
            break
        step = state.step + 1
        step_rng = rng_state()  # what a checkpoint of the last finished step holds
        t_step = time.perf_counter()
        timing: dict[str, float] = {"timing/generate_s": 0.0, "timing/reward_s": 0.0}

        # -------------------------------------------------------------- rollout, reward, dynamic sampling
        kept: list[dict[str, Any]] = []  # one dict per kept group
        gen_scores: list[float] = []
        gen_correct: list[bool] = []
        counts = {"groups": 0, "all_correct": 0, "all_wrong": 0}
        num_gen_batches, generated = 0, 0
        try:
            while True:
                num_gen_batches += 1
                problems = stream.take(t.gen_batch_size if t.dynamic_sampling else t.train_batch_size)
                prompt_ids = encode(problems)
                t0 = time.perf_counter()
                gens = rollout.generate(prompt_ids, params)  # n per prompt, grouped
                timing["timing/generate_s"] += time.perf_counter() - t0
                t0 = time.perf_counter()
                texts = tok.batch_decode([g.response_ids for g in gens], skip_special_tokens=True)
                lengths = [len(g.response_ids) for g in gens]
                rewards = score_responses(cfg.reward, [problems[g.prompt_index] for g in gens], texts, lengths,
                                          cfg.rollout.max_new_tokens)
                timing["timing/reward_s"] += time.perf_counter() - t0
                generated += len(gens)
                gen_scores += rewards.scores
                gen_correct += rewards.correct
                groups = filter_groups(rewards.correct, n) if t.dynamic_sampling else None
                keep = groups.kept if groups else range(len(problems))
                if groups:
                    counts["groups"] += groups.total
                    counts["all_correct"] += len(groups.all_correct)
                    counts["all_wrong"] += len(groups.all_wrong)
                for g in keep:
                    rows = range(g * n, (g + 1) * n)
                    kept.append({"problem": problems[g], "prompt_ids": prompt_ids[g], "text": [texts[i] for i in rows],
                                 "response_ids": [gens[i].response_ids for i in rows],
                                 "truncated": [gens[i].truncated for i in rows],
                                 "scores": [rewards.scores[i] for i in rows], "correct": [rewards.correct[i] for i in rows]})
                stop_reason = stop_drawing(len(kept), counts["groups"], t.train_batch_size, len(problems),
                                           num_gen_batches, t.max_num_gen_batches) if t.dynamic_sampling else "full"
                if stop_reason:
                    break
                if stopping():
                    raise GenerationInterrupted
            if stopping():  # before the update: nothing has changed since the last step
                raise GenerationInterrupted
        except GenerationInterrupted:
            stop_here(rng=step_rng)
            break
        kept = kept[: t.train_batch_size]  # truncate to the train batch (recipe)
        num_groups = len(kept)
        metrics: dict[str, Any] = {"reward/gen_mean": float(np.mean(gen_scores)),
                                   "accuracy/gen_mean": float(np.mean(gen_correct)),
                                   "sampling/num_gen_batches": float(num_gen_batches)}
        if counts["groups"]:
            metrics["sampling/kept_group_fraction"] = 1 - (counts["all_correct"] + counts["all_wrong"]) / counts["groups"]
            metrics["sampling/all_correct_group_fraction"] = counts["all_correct"] / counts["groups"]
            metrics["sampling/all_wrong_group_fraction"] = counts["all_wrong"] / counts["groups"]
        if t.dynamic_sampling:  # an unfilled batch says so: a metric every step, a log line now and then
            metrics["sampling/fill_fraction"] = num_groups / t.train_batch_size
            if num_groups < t.train_batch_size and step - last_underfill_log >= UNDERFILL_LOG_EVERY:
                last_underfill_log = step
                line = underfill_message(
                    step, trained=num_groups, train_batch_size=t.train_batch_size, num_gen_batches=num_gen_batches,
                    reason=stop_reason, kept=counts["groups"] - counts["all_correct"] - counts["all_wrong"],
                    all_correct=counts["all_correct"], all_wrong=counts["all_wrong"],
                    accuracy=metrics["accuracy/gen_mean"], group_size=n, max_num_gen_batches=t.max_num_gen_batches)
                log.warning(line)
                tracker.log(line)

        trained_tokens = 0
        if num_groups:
            seq_prompts = [g["prompt_ids"] for g in kept for _ in range(n)]
            seq_responses = [r for g in kept for r in g["response_ids"]]
            scores = torch.tensor([s for g in kept for s in g["scores"]], dtype=torch.float32)
            correct = [c for g in kept for c in g["correct"]]
            truncated = [x for g in kept for x in g["truncated"]]
            resp_lengths = [len(r) for r in seq_responses]
            metrics.update(reward_stats(scores.tolist(), correct))
            metrics.update(length_stats(resp_lengths, truncated))
            metrics["prompt_length/mean"] = float(np.mean([len(p) for p in seq_prompts]))

            # ---------------------------------------------------------- outcome advantage (per sequence)
            group_ids = torch.arange(num_groups).repeat_interleave(n)
            seq_adv = outcome_advantages(cfg.algorithm.advantage_estimator, scores, group_ids)  # [N]
            packed = pack(seq_prompts, seq_responses, tok.pad_token_id)
            response_mask = packed.response_mask  # [N, L]
            advantages = seq_adv[:, None] * response_mask  # every token carries its sequence's advantage
            lengths_t = response_mask.sum(1)
            metrics["advantage/mean_length_weighted"] = float((seq_adv * lengths_t).sum() / lengths_t.sum())

            # ---------------------------------------------------------- old log-probs (recomputed, §8)
            # The first mini-batch trains on the policy that sampled it, so its old log-probs are its
            # own first forward (detached): skipped here, filled in below, ratio exactly 1.
            num_seqs = num_groups * n
            mini_groups = t.ppo_mini_batch_size
            orders = []
            for epoch in range(t.ppo_epochs):
                if t.shuffle:
                    gen = torch.Generator().manual_seed(t.seed * 7919 + step * 31 + epoch)
                    orders.append(torch.randperm(num_groups, generator=gen))
                else:
                    orders.append(torch.arange(num_groups))
            first_rows = _group_rows(orders[0][:mini_groups], n)
            t0 = time.perf_counter()
            old_log_prob = torch.zeros_like(response_mask)
            rest = torch.tensor(sorted(set(range(num_seqs)) - set(first_rows.tolist())), dtype=torch.long)
            with torch.no_grad():
                for start in range(0, len(rest), t.micro_batch_size):
                    rows = rest[start: start + t.micro_batch_size]
                    part = select(packed, rows)
                    lp, _ = response_logprobs(model, part)
                    old_log_prob[rows, : part.response_len] = lp.cpu() * part.response_mask
            timing["timing/old_log_prob_s"] = time.perf_counter() - t0

            # ---------------------------------------------------------- policy update: mini-batches × epochs
            t0 = time.perf_counter()
            # logged samples come from every mini-batch position of the last pass (F is 0 in the first)
            minibatch_of = minibatch_of_groups(orders[-1].tolist(), mini_groups)
            num_minibatches = -(-num_groups // mini_groups)
            show = sample_indices(num_groups, n, t.log_samples, t.seed, step, minibatch_of)
            channels: dict[int, dict[str, torch.Tensor]] = {}
            loss_metrics, grad_norms, entropies, lr = MetricAccumulator(), [], [], t.lr
            for epoch, order in enumerate(orders):
                for g0 in range(0, num_groups, mini_groups):
                    seq_rows = _group_rows(order[g0: g0 + mini_groups], n)  # [mini * n]
                    on_policy = epoch == 0 and g0 == 0
                    optimizer.zero_grad(set_to_none=True)
                    for m0 in range(0, len(seq_rows), t.micro_batch_size):
                        rows = seq_rows[m0: m0 + t.micro_batch_size]
                        part = select(packed, rows)
                        width = part.response_len
                        log_prob, entropy = response_logprobs(
                            model, part, with_entropy=True, entropy_grad=cfg.algorithm.entropy_coeff > 0)
                        dev = log_prob.device
                        mask = part.response_mask.to(dev)
                        if on_policy:  # no optimizer step yet: pi_old is the current policy
                            old = log_prob.detach() * mask
                            old_log_prob[rows, :width] = old.cpu()
                        else:
                            old = old_log_prob[rows, :width].to(dev)
                        adv = advantages[rows, :width].to(dev)
                        out = policy_loss(cfg.algorithm.policy_loss, log_prob, old, adv, mask, cfg.algorithm.loss)
                        # verl's loss scale: micro-batch means are averaged, weighted by sequences (§5)
                        loss = out.loss * (len(rows) / len(seq_rows))
                        token_entropy = (entropy * mask).sum() / mask.sum().clamp(min=1)
                        if cfg.algorithm.entropy_coeff > 0:
                            loss = loss - cfg.algorithm.entropy_coeff * token_entropy * (len(rows) / len(seq_rows))
                        loss.backward()
                        loss_metrics.add(out.metrics)
                        entropies.append(float(token_entropy))
                        trained_tokens += int(mask.sum())
                        for j, row in enumerate(rows.tolist()):
                            if row in show:  # keep the per-token view of the last pass over this sequence
                                channels[row] = _channels(out, log_prob, old, adv, entropy, j)
                    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
                    lr = _lr_at(cfg, state.optimizer_steps)
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                    optimizer.step()
                    state.optimizer_steps += 1
                    grad_norms.append(float(grad_norm))
            rollout.sync_weights()
            timing["timing/update_s"] = time.perf_counter() - t0
            metrics.update(loss_metrics.result())
            metrics["actor/entropy"] = float(np.mean(entropies))
            metrics["actor/grad_norm"] = float(np.mean(grad_norms))
            metrics["actor/lr"] = lr

        # -------------------------------------------------------------- log: metrics, samples, progress
        state.step, state.data_position = step, stream.position
        step_s = time.perf_counter() - t_step
        gen_tokens = sum(len(r) for g in kept for r in g["response_ids"])
        metrics.update(timing)
        metrics["timing/step_s"] = step_s
        metrics["perf/samples_per_second"] = generated / step_s
        metrics["perf/tokens_per_second"] = (gen_tokens + trained_tokens) / step_s
        tracker.metric(step, metrics)
        result.history.append({"step": step, **metrics})
        if num_groups:
            for index, row in enumerate(sorted(channels)):
                g, j = divmod(row, n)
                ids = kept[g]["response_ids"][j]
                tracker.sample(
                    step, index, prompt=render_prompt(kept[g]["problem"], cfg.data, tok, policy.chat),
                    response=kept[g]["text"][j], reward=kept[g]["scores"][j], correct=kept[g]["correct"][j],
                    tokens=tok.batch_decode([[i] for i in ids]), minibatch=minibatch_of[g],
                    num_minibatches=num_minibatches,
                    **{name: compact(values[: len(ids)]) for name, values in channels[row].items()})
        if bar is not None:
            bar.update(1)
            bar.set_postfix({"reward": f"{metrics.get('reward/gen_mean', 0):.2f}",
                             "acc": f"{metrics.get('accuracy/gen_mean', 0):.2f}",
                             "len": f"{metrics.get('response_length/mean', 0):.1f}",
                             "pass@1": f"{(result.last_eval or {}).get('eval/pass_at_1', float('nan')):.2f}"})

        # -------------------------------------------------------------- eval and checkpoint
        if stopping():  # the step is complete: checkpoint it, skip the evaluation
            stop_here()
            break
        if t.eval_every and (step % t.eval_every == 0 or step == t.total_steps) and not evaluate(step):
            stop_here()
            break
        if (t.save_every and step % t.save_every == 0) or step == t.total_steps:
            checkpoint()

    if bar is not None:
        bar.close()
    result.final_step = state.step
    if own_tracker:
        tracker.close()
    return result


def _progress_bar(show: bool, total: int, desc: str, initial: int = 0) -> Any:
    """A tqdm bar in the terminal (``None`` when progress is off, e.g. under the control plane)."""
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)


def _group_rows(groups: torch.Tensor, n: int) -> torch.Tensor:
    """The sequence rows of ``groups`` (group g holds rows g*n .. g*n+n-1), in group order."""
    return (groups[:, None] * n + torch.arange(n)).reshape(-1)


def _channels(out: Any, log_prob: torch.Tensor, old: torch.Tensor, adv: torch.Tensor, entropy: torch.Tensor,
              j: int) -> dict[str, torch.Tensor]:
    """The per-token arrays of row ``j`` of a micro-batch, detached on the CPU (sample viewer channels)."""
    ch = {"logprob": log_prob[j], "old_logprob": old[j], "advantage": adv[j], "entropy": entropy[j]}
    # log_ratio: the clamped δ the loss used; the samples page rebuilds F_t from it (float16 logprobs
    # are too coarse for their difference to do that)
    named = {"ratio": "ratio", "log_ratio": "log_ratio", "future_kl": "future_kl", "influence": "influence_weights",
             "weighted_advantage": "weighted_advantages"}
    for channel, attr in named.items():
        value = getattr(out, attr, None)
        if value is not None:
            ch[channel] = value[j]
    if "ratio" not in ch:
        ch["ratio"] = torch.exp(log_prob[j] - old[j])
    return {k: v.detach().float().cpu() for k, v in ch.items()}
