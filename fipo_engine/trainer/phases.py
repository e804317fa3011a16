"""The phases of one RL step, in the order ``loop.train_step`` calls them.

Each is a plain function over the ``Run`` and the step's objects (``trainer/state.py``); a phase
that notices a stop raises ``StopRequested`` (``check_stop``), and only ``loop.train`` catches it.
The equations behind each phase are in docs/spec.md (sections cited where they apply).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from fipo_engine import token_channels as token_channel_catalog
from fipo_engine.algorithms import outcome_advantages, policy_loss
from fipo_engine.algorithms.losses import PolicyLossOutput
from fipo_engine.config import RunConfig, TrainerConfig
from fipo_engine.data import render_prompt
from fipo_engine.rewards import score_responses
from fipo_engine.rollout import GenerationInterrupted
from fipo_engine.trainer import sampling
from fipo_engine.trainer.batch import pack, response_logprobs, select
from fipo_engine.trainer.checkpoint import save_checkpoint
from fipo_engine.trainer.evaluate import run_eval
from fipo_engine.trainer.metrics import (
    MetricAccumulator,
    compact,
    length_stats,
    minibatch_of_groups,
    reward_stats,
    sample_indices,
)
from fipo_engine.trainer.sampling import stop_drawing, underfill_message
from fipo_engine.trainer.state import (
    GenerationBatch,
    Group,
    PolicyBatch,
    RolloutBatch,
    Run,
    SampleView,
    StepMetrics,
    StopRequested,
)

log = logging.getLogger("fipo.trainer")
UNDERFILL_LOG_EVERY = 10  # steps between two "batch not filled" log lines

#: The per-token channels a logged sample takes from the policy loss: sample-viewer channel name ->
#: ``PolicyLossOutput`` field, from the channel catalog (fipo_engine/token_channels.py). ``log_ratio`` is the clamped δ the loss used: the samples page rebuilds
#: F_t from it (float16 logprobs are too coarse for their difference to do that). The loop adds
#: ``logprob``, ``old_logprob``, ``advantage`` and ``entropy`` before these.
LOSS_CHANNELS: dict[str, str] = token_channel_catalog.loss_outputs()


def check_stop(run: Run, rng: dict[str, Any] | None = None) -> None:
    """Raise ``StopRequested`` (carrying ``rng``, see there) when a stop has been asked for."""
    if run.stopping():
        raise StopRequested(rng)


# ---------------------------------------------------------------------- rollout, reward, dynamic sampling


def collect_rollouts(run: Run, batch: RolloutBatch, metrics: StepMetrics) -> GenerationBatch:
    """Draw the next prompts and sample ``rollout.n`` responses to each (one generation batch).

    A stop during sampling abandons the step: nothing has been trained yet, so the checkpoint of the
    previous step, with the RNG state this step started from, is exactly where a resume picks up.
    """
    t = run.cfg.trainer
    batch.num_gen_batches += 1
    problems = run.stream.take(t.gen_batch_size if t.dynamic_sampling else t.train_batch_size)
    prompt_ids = run.encode(problems)
    t0 = time.perf_counter()
    try:
        outputs = run.rollout.generate(prompt_ids, run.params)  # n per prompt, grouped
    except GenerationInterrupted:
        raise StopRequested(batch.start_rng) from None
    metrics.timing["timing/generate_s"] += time.perf_counter() - t0
    return GenerationBatch(problems, prompt_ids, outputs)


def score(run: Run, generation: GenerationBatch, metrics: StepMetrics) -> list[Group]:
    """Decode and grade every response (reward plus overlong penalty, docs/spec.md §2.1), one group per prompt."""
    cfg, outputs, problems = run.cfg, generation.outputs, generation.problems
    t0 = time.perf_counter()
    texts = run.tok.batch_decode([g.response_ids for g in outputs], skip_special_tokens=True)
    lengths = [len(g.response_ids) for g in outputs]
    rewards = score_responses(cfg.reward, [problems[g.prompt_index] for g in outputs], texts, lengths,
                              cfg.rollout.max_new_tokens)
    metrics.timing["timing/reward_s"] += time.perf_counter() - t0
    n, groups = cfg.rollout.n, []
    for g, problem in enumerate(problems):
        rows = slice(g * n, (g + 1) * n)  # prompt g's responses
        groups.append(Group(problem=problem, prompt_ids=generation.prompt_ids[g], texts=texts[rows],
                            response_ids=[o.response_ids for o in outputs[rows]],
                            truncated=[o.truncated for o in outputs[rows]],
                            scores=rewards.scores[rows], correct=rewards.correct[rows]))
    return groups


def filter_groups(run: Run, batch: RolloutBatch, groups: list[Group]) -> None:
    """Add one generation batch's groups to ``batch`` and decide whether to draw another.

    Without dynamic sampling every group is kept and one batch is enough. With it (DAPO,
    docs/spec.md §2.2) only groups whose outcomes differ are kept, and drawing goes on until the
    train batch is full or ``sampling.stop_drawing`` gives up.
    """
    t = run.cfg.trainer
    batch.generated += sum(len(g.scores) for g in groups)
    batch.scores += [s for g in groups for s in g.scores]
    batch.correct += [c for g in groups for c in g.correct]
    if not t.dynamic_sampling:
        batch.groups += groups
        batch.stop_reason = "full"
        return
    verdict = sampling.filter_groups([c for g in groups for c in g.correct], run.cfg.rollout.n)
    batch.groups_seen += verdict.total
    batch.all_correct += len(verdict.all_correct)
    batch.all_wrong += len(verdict.all_wrong)
    batch.groups += [groups[g] for g in verdict.kept]
    batch.stop_reason = stop_drawing(len(batch.groups), batch.groups_seen, t.train_batch_size, len(groups),
                                     batch.num_gen_batches, t.max_num_gen_batches)


def rollout_metrics(run: Run, step: int, batch: RolloutBatch, metrics: StepMetrics) -> None:
    """Reward, accuracy and sampling metrics of the step's rollouts; say so when the batch did not fill."""
    t, values = run.cfg.trainer, metrics.values
    values.update({"reward/gen_mean": float(np.mean(batch.scores)), "accuracy/gen_mean": float(np.mean(batch.correct)),
                   "sampling/num_gen_batches": float(batch.num_gen_batches)})
    if batch.groups_seen:
        values["sampling/kept_group_fraction"] = 1 - (batch.all_correct + batch.all_wrong) / batch.groups_seen
        values["sampling/all_correct_group_fraction"] = batch.all_correct / batch.groups_seen
        values["sampling/all_wrong_group_fraction"] = batch.all_wrong / batch.groups_seen
    if t.dynamic_sampling:  # an unfilled batch says so: a metric every step, a log line now and then
        values["sampling/fill_fraction"] = len(batch.groups) / t.train_batch_size
        if len(batch.groups) < t.train_batch_size and (
                run.last_underfill_log is None or step - run.last_underfill_log >= UNDERFILL_LOG_EVERY):
            run.last_underfill_log = step
            _log_underfill(run, step, batch, values["accuracy/gen_mean"])
    if batch.groups:
        prompts, responses = batch.sequences()
        values.update(reward_stats(batch.score_tensor().tolist(), [c for g in batch.groups for c in g.correct]))
        values.update(length_stats([len(r) for r in responses], [x for g in batch.groups for x in g.truncated]))
        values["prompt_length/mean"] = float(np.mean([len(p) for p in prompts]))


def _log_underfill(run: Run, step: int, batch: RolloutBatch, accuracy: float) -> None:
    t = run.cfg.trainer
    line = underfill_message(
        step, trained=len(batch.groups), train_batch_size=t.train_batch_size, num_gen_batches=batch.num_gen_batches,
        reason=batch.stop_reason or "", kept=batch.groups_seen - batch.all_correct - batch.all_wrong,
        all_correct=batch.all_correct, all_wrong=batch.all_wrong, accuracy=accuracy, group_size=run.cfg.rollout.n,
        max_num_gen_batches=t.max_num_gen_batches)
    log.warning(line)
    run.tracker.log(line)


# ---------------------------------------------------------------------- advantage, old log-probs, update


def compute_advantages(run: Run, step: int, batch: RolloutBatch, metrics: StepMetrics) -> PolicyBatch:
    """Outcome advantages (one per sequence, normalised within its group), spread over its tokens.

    Also fixes the order in which the update visits the groups in each PPO epoch (``epoch_orders``).
    """
    n, num_groups = run.cfg.rollout.n, len(batch.groups)
    prompts, responses = batch.sequences()
    group_ids = torch.arange(num_groups).repeat_interleave(n)
    seq_adv = outcome_advantages(run.cfg.algorithm.advantage_estimator, batch.score_tensor(), group_ids)  # [N]
    packed = pack(prompts, responses, run.tok.pad_token_id)
    response_mask = packed.response_mask  # [N, L]
    lengths = response_mask.sum(1)
    metrics.values["advantage/mean_length_weighted"] = float((seq_adv * lengths).sum() / lengths.sum())
    return PolicyBatch(packed, seq_adv[:, None] * response_mask, num_groups, n,
                       epoch_orders(run.cfg.trainer, step, num_groups))


def epoch_orders(t: TrainerConfig, step: int, num_groups: int) -> list[torch.Tensor]:
    """The group order of each PPO epoch: shuffled by (seed, step, epoch) with its own generator, or as drawn."""
    orders = []
    for epoch in range(t.ppo_epochs):
        if t.shuffle:
            gen = torch.Generator().manual_seed(t.seed * 7919 + step * 31 + epoch)
            orders.append(torch.randperm(num_groups, generator=gen))
        else:
            orders.append(torch.arange(num_groups))
    return orders


def recompute_old_log_probs(run: Run, batch: PolicyBatch, metrics: StepMetrics) -> None:
    """π_old: the log-probs of the policy that sampled the batch, recomputed by the trainer (docs/spec.md §8).

    The first mini-batch trains on that very policy, so its old log-probs are its own first forward
    (detached): skipped here, filled in by ``update_policy``, ratio exactly 1.
    """
    t = run.cfg.trainer
    first_rows = group_rows(batch.orders[0][: t.ppo_mini_batch_size], batch.group_size)
    t0 = time.perf_counter()
    old_log_prob = torch.zeros_like(batch.packed.response_mask)
    rest = torch.tensor(sorted(set(range(batch.num_seqs)) - set(first_rows.tolist())), dtype=torch.long)
    with torch.no_grad():
        for start in range(0, len(rest), t.micro_batch_size):
            rows = rest[start: start + t.micro_batch_size]
            part = select(batch.packed, rows)
            lp, _ = response_logprobs(run.model, part)
            old_log_prob[rows, : part.response_len] = lp.cpu() * part.response_mask
    metrics.timing["timing/old_log_prob_s"] = time.perf_counter() - t0
    batch.old_log_prob = old_log_prob


def update_policy(run: Run, step: int, batch: PolicyBatch, metrics: StepMetrics) -> SampleView:
    """PPO-style update: every epoch, one AdamW step per mini-batch of groups, gradients summed over micro-batches.

    Returns the sequences to log token by token: drawn from every mini-batch position of the last
    pass, since F (hence FIPO's weights) is 0 in the first mini-batch and grows with each step.
    """
    t = run.cfg.trainer
    t0 = time.perf_counter()
    mini_groups = t.ppo_mini_batch_size
    minibatch_of = minibatch_of_groups(batch.orders[-1].tolist(), mini_groups)
    view = SampleView(rows=sample_indices(batch.num_groups, batch.group_size, t.log_samples, t.seed, step,
                                          minibatch_of),
                      minibatch_of=minibatch_of, num_minibatches=-(-batch.num_groups // mini_groups))
    losses, grad_norms, entropies, lr = MetricAccumulator(), [], [], t.lr
    for epoch, order in enumerate(batch.orders):
        for g0 in range(0, batch.num_groups, mini_groups):
            seq_rows = group_rows(order[g0: g0 + mini_groups], batch.group_size)  # [mini * n]
            run.optimizer.zero_grad(set_to_none=True)
            for m0 in range(0, len(seq_rows), t.micro_batch_size):
                rows = seq_rows[m0: m0 + t.micro_batch_size]
                out, entropy, tokens = _backward_micro_batch(run, batch, rows, len(seq_rows),
                                                             epoch == 0 and g0 == 0, view)
                losses.add(out.metrics)
                entropies.append(entropy)
                metrics.trained_tokens += tokens
            grad_norm = torch.nn.utils.clip_grad_norm_(run.model.parameters(), t.grad_clip)
            lr = lr_at(run.cfg, run.state.optimizer_steps)
            for param_group in run.optimizer.param_groups:
                param_group["lr"] = lr
            run.optimizer.step()
            run.state.optimizer_steps += 1
            grad_norms.append(float(grad_norm))
    run.rollout.sync_weights()
    metrics.timing["timing/update_s"] = time.perf_counter() - t0
    metrics.values.update(losses.result())
    metrics.values.update({"actor/entropy": float(np.mean(entropies)), "actor/grad_norm": float(np.mean(grad_norms)),
                           "actor/lr": lr})
    return view


def _backward_micro_batch(run: Run, batch: PolicyBatch, rows: torch.Tensor, mini_rows: int, on_policy: bool,
                          view: SampleView) -> tuple[PolicyLossOutput, float, int]:
    """Loss and backward pass of one micro-batch: the loss output, the mean token entropy, the tokens trained.

    ``on_policy``: the first mini-batch of the first epoch, trained before any optimizer step, so its
    own detached log-probs are π_old. The loss is scaled as verl does: micro-batch means averaged,
    weighted by sequences (docs/spec.md §5). The logged rows keep their per-token channels.
    """
    algorithm = run.cfg.algorithm
    part = select(batch.packed, rows)
    width = part.response_len
    log_prob, entropy = response_logprobs(run.model, part, with_entropy=True, entropy_grad=algorithm.entropy_coeff > 0)
    dev = log_prob.device
    mask = part.response_mask.to(dev)
    assert batch.old_log_prob is not None  # recompute_old_log_probs ran first
    if on_policy:  # no optimizer step yet: pi_old is the current policy
        old = log_prob.detach() * mask
        batch.old_log_prob[rows, :width] = old.cpu()
    else:
        old = batch.old_log_prob[rows, :width].to(dev)
    adv = batch.advantages[rows, :width].to(dev)
    out = policy_loss(algorithm.policy_loss, log_prob, old, adv, mask, algorithm.loss)
    loss = out.loss * (len(rows) / mini_rows)
    token_entropy = (entropy * mask).sum() / mask.sum().clamp(min=1)
    if algorithm.entropy_coeff > 0:
        loss = loss - algorithm.entropy_coeff * token_entropy * (len(rows) / mini_rows)
    loss.backward()
    for j, row in enumerate(rows.tolist()):
        if row in view.rows:  # keep the per-token view of the last pass over this sequence
            view.channels[row] = token_channels(out, log_prob, old, adv, entropy, j)
    return out, float(token_entropy.detach()), int(mask.sum())


def token_channels(out: PolicyLossOutput, log_prob: torch.Tensor, old: torch.Tensor, adv: torch.Tensor,
                   entropy: torch.Tensor, j: int) -> dict[str, torch.Tensor]:
    """The per-token arrays of row ``j`` of a micro-batch, detached on the CPU (the sample viewer's channels)."""
    channels = {"logprob": log_prob[j], "old_logprob": old[j], "advantage": adv[j], "entropy": entropy[j]}
    channels.update({name: getattr(out, attr)[j] for name, attr in LOSS_CHANNELS.items()})
    return {k: v.detach().float().cpu() for k, v in channels.items()}


def group_rows(groups: torch.Tensor, n: int) -> torch.Tensor:
    """The sequence rows of ``groups`` (group g holds rows g*n .. g*n+n-1), in group order."""
    return (groups[:, None] * n + torch.arange(n)).reshape(-1)


def lr_at(cfg: RunConfig, optimizer_step: int) -> float:
    """Linear warm-up over ``warmup_steps`` optimizer steps, then constant (the recipe's schedule)."""
    t = cfg.trainer
    if t.warmup_steps == 0:
        return t.lr
    return t.lr * min(1.0, (optimizer_step + 1) / t.warmup_steps)


# ---------------------------------------------------------------------- log, evaluate, checkpoint


def log_step(run: Run, step: int, batch: RolloutBatch, metrics: StepMetrics, view: SampleView | None,
             started: float) -> None:
    """Emit the step's metrics (and keep them in the history), its samples, and move the progress bar."""
    step_s = time.perf_counter() - started
    generated_tokens = sum(len(r) for g in batch.groups for r in g.response_ids)
    values = metrics.emitted(step_s, batch.generated, generated_tokens)
    run.tracker.metric(step, values)
    run.result.history.append({"step": step, **values})
    if view is not None:
        _log_samples(run, step, batch, view)
    if run.bar is not None:
        run.bar.update(1)
        run.bar.set_postfix({"reward": f"{values.get('reward/gen_mean', 0):.2f}",
                             "acc": f"{values.get('accuracy/gen_mean', 0):.2f}",
                             "len": f"{values.get('response_length/mean', 0):.1f}",
                             "pass@1": f"{(run.result.last_eval or {}).get('eval/pass_at_1', float('nan')):.2f}"})


def _log_samples(run: Run, step: int, batch: RolloutBatch, view: SampleView) -> None:
    """One ``sample`` event per logged sequence: prompt, response, reward, tokens and per-token channels."""
    tok = run.tok
    for index, row in enumerate(sorted(view.channels)):
        g, j = divmod(row, run.cfg.rollout.n)
        group = batch.groups[g]
        ids = group.response_ids[j]
        run.tracker.sample(
            step, index, prompt=render_prompt(group.problem, run.cfg.data, tok, run.policy.chat),
            response=group.texts[j], reward=group.scores[j], correct=group.correct[j],
            tokens=tok.batch_decode([[i] for i in ids]), minibatch=view.minibatch_of[g],
            num_minibatches=view.num_minibatches,
            **{name: compact(values[: len(ids)]) for name, values in view.channels[row].items()})


def evaluate(run: Run, step: int) -> None:
    """Evaluate on the held-out problems and log it (docs/spec.md §9); a stop during it skips it."""
    if not run.eval_problems:
        return
    cfg, t = run.cfg, run.cfg.trainer
    try:
        ev = run_eval(cfg, run.rollout, run.tok, run.eval_problems, run.eval_prompts, step, run.device)
    except GenerationInterrupted:
        raise StopRequested() from None
    ci = ev.pop("pass_at_1_ci")
    run.tracker.metric(step, ev)
    benchmark = cfg.data.eval_path or f"{cfg.data.source}:{cfg.data.task}"
    run.tracker.eval(benchmark=benchmark, step=step, pass_at_1=ev["eval/pass_at_1"], pass_at_1_ci=ci,
                     k=t.eval_k, cons_at_k=ev["eval/cons_at_k"], pass_at_k=ev["eval/pass_at_k"],
                     n_problems=len(run.eval_problems))
    run.result.last_eval = ev


def maybe_eval(run: Run, step: int) -> None:
    """Evaluate every ``eval_every`` steps and after the last one."""
    t = run.cfg.trainer
    if t.eval_every and (step % t.eval_every == 0 or step == t.total_steps):
        evaluate(run, step)


def maybe_checkpoint(run: Run, step: int) -> None:
    """Checkpoint every ``save_every`` steps and after the last one."""
    t = run.cfg.trainer
    if (t.save_every and step % t.save_every == 0) or step == t.total_steps:
        write_checkpoint(run)


def write_checkpoint(run: Run, rng: dict[str, Any] | None = None) -> None:
    """Checkpoint the last finished step (``rng``: the RNG state to store, default the current one) and report it."""
    path = save_checkpoint(run.ckpt_root, run.policy, run.optimizer, replace(run.state), run.cfg,
                           run.cfg.trainer.keep_checkpoints, rng=rng)
    run.tracker.checkpoint(run.state.step, str(path.resolve()))
    run.result.last_checkpoint, run.saved_step = path, run.state.step


def record_stop(run: Run, stop: StopRequested) -> None:
    """Mark the run stopped and say so; checkpoint the last finished step unless it is saved already.

    A stop during the warm start writes nothing: a partial warm start is not kept, a resume starts it over.
    """
    run.result.stopped = run.stop_name
    if stop.during_warm_start:
        run.tracker.log(f"stopped by {run.result.stopped} during the warm start (no checkpoint; --resume starts over)")
        return
    if run.saved_step != run.state.step:
        write_checkpoint(run, stop.rng)
    where = f"checkpoint {run.result.last_checkpoint}" if run.result.last_checkpoint else "no checkpoint"
    run.tracker.log(f"stopped by {run.result.stopped} after step {run.state.step} ({where}); "
                    "continue with: fipo train --resume --out DIR")


def progress_bar(show: bool, total: int, desc: str, initial: int = 0) -> Any:
    """A tqdm bar in the terminal (``None`` when progress is off, e.g. under the control plane)."""
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)
