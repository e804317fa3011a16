"""The metric catalog: every scalar the engine emits, with a one-line meaning, unit and chart group.

One list shared by the trainer (what it logs), the API (what it accepts and documents) and the
dashboard (chart titles, grouping and axis labels). Add a metric here before logging it;
``tests/engine/test_metrics_catalog.py`` checks the trainer and the loss emit only catalog names.
Loss metrics keep the official verl names under ``actor/`` (docs/spec.md §6).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    group: str
    unit: str
    meaning: str


# Chart groups, in the order the run page shows them.
GROUPS: dict[str, str] = {
    "reward": "Reward and accuracy",
    "length": "Response length",
    "influence": "FIPO influence weights",
    "clip": "PPO clipping and policy KL",
    "ratio": "Importance-ratio statistics",
    "entropy": "Entropy",
    "optim": "Gradient norm and learning rate",
    "throughput": "Throughput and phase times",
    "eval": "Evaluation",
    "sampling": "Dynamic sampling",
}

_M = Metric
METRICS: tuple[Metric, ...] = (
    # --- reward and accuracy (per training step, over the rollout batch after dynamic sampling)
    _M("reward/mean", "reward", "score", "Mean sequence reward, overlong penalty included."),
    _M("reward/std", "reward", "score", "Standard deviation of sequence rewards."),
    _M("reward/max", "reward", "score", "Highest sequence reward in the batch."),
    _M("reward/min", "reward", "score", "Lowest sequence reward in the batch."),
    _M("accuracy/mean", "reward", "fraction", "Fraction of responses graded correct (no length penalty)."),
    _M("reward/gen_mean", "reward", "score",
       "Mean reward over every response generated this step, before dynamic sampling drops groups."),
    _M("accuracy/gen_mean", "reward", "fraction",
       "Fraction correct over every response generated this step, before dynamic sampling."),
    _M("advantage/mean_length_weighted", "reward", "advantage",
       "Token-weighted mean advantage (paper Fig. 5: rises under FIPO)."),
    # --- response length (tokens)
    _M("response_length/mean", "length", "tokens", "Mean response length."),
    _M("response_length/median", "length", "tokens", "Median response length."),
    _M("response_length/p75", "length", "tokens", "75th percentile of response length."),
    _M("response_length/max", "length", "tokens", "Longest response."),
    _M("response_length/min", "length", "tokens", "Shortest response."),
    _M("response_length/clip_ratio", "length", "fraction", "Truncation rate: responses that hit max_new_tokens."),
    _M("prompt_length/mean", "length", "tokens", "Mean prompt length."),
    # --- dynamic sampling
    _M("sampling/num_gen_batches", "sampling", "batches", "Generation batches drawn to fill the step."),
    _M("sampling/kept_group_fraction", "sampling", "fraction", "Groups kept: reward variance was non-zero."),
    _M("sampling/all_correct_group_fraction", "sampling", "fraction", "Groups dropped because all were correct."),
    _M("sampling/all_wrong_group_fraction", "sampling", "fraction", "Groups dropped because all were wrong."),
    _M("sampling/fill_fraction", "sampling", "fraction",
       "Groups trained on / train_batch_size: below 1 when dynamic sampling stopped before the batch was full."),
    # --- policy loss (official verl names, docs/spec.md §6)
    _M("actor/pg_loss", "clip", "loss", "Policy-gradient loss (× loss-scale factor), mean over mini-batches."),
    _M("actor/pg_clipfrac", "clip", "fraction", "Tokens whose clipped surrogate was active (r outside the clip band)."),
    _M("actor/pg_clipfrac_lower", "clip", "fraction", "Negative-advantage tokens cut by the dual clip (r > c)."),
    _M("actor/ppo_kl", "clip", "nats", "Policy KL: masked mean of old minus new log-prob."),
    _M("actor/influence_weights_mean", "influence", "weight", "Mean final influence weight over valid tokens."),
    _M("actor/influence_weights_min", "influence", "weight", "Smallest final influence weight."),
    _M("actor/influence_weights_max", "influence", "weight", "Largest final influence weight."),
    _M("actor/influence_weights_mean_raw", "influence", "weight", "Mean of exp(F) before clipping."),
    _M("actor/raw_influence_weights_min", "influence", "weight", "Smallest exp(F) before clipping."),
    _M("actor/raw_influence_weights_max", "influence", "weight", "Largest exp(F) before clipping."),
    _M("actor/IW_upper_clip_ratio", "influence", "fraction", "Tokens whose weight sits at the upper clip bound."),
    _M("actor/IW_lower_clip_ratio", "influence", "fraction",
       "Tokens whose weight sits at the lower clip bound (safety-reset weights count here)."),
    _M("actor/IW_overall_clip_ratio", "influence", "fraction", "Upper plus lower clip fractions."),
    _M("actor/neg_ratio_2_3", "ratio", "fraction", "Valid tokens with A<0 and ratio in [2, 3)."),
    _M("actor/neg_ratio_3_4", "ratio", "fraction", "Valid tokens with A<0 and ratio in [3, 4)."),
    _M("actor/neg_ratio_4_10", "ratio", "fraction", "Valid tokens with A<0 and ratio in [4, c)."),
    _M("actor/neg_is_max", "ratio", "ratio", "Largest ratio among negative-advantage tokens (null if none)."),
    _M("actor/neg_is_p995", "ratio", "ratio", "99.5th percentile ratio, negative-advantage tokens."),
    _M("actor/neg_is_p999", "ratio", "ratio", "99.9th percentile ratio, negative-advantage tokens."),
    _M("actor/neg_is_p75", "ratio", "ratio", "75th percentile ratio, negative-advantage tokens."),
    _M("actor/pos_is_max", "ratio", "ratio", "Largest ratio among positive-advantage tokens (null if none)."),
    _M("actor/pos_is_median", "ratio", "ratio", "Median ratio, positive-advantage tokens."),
    _M("actor/pos_is_p75", "ratio", "ratio", "75th percentile ratio, positive-advantage tokens."),
    _M("actor/pos_is_p995", "ratio", "ratio", "99.5th percentile ratio, positive-advantage tokens."),
    _M("actor/pos_is_p999", "ratio", "ratio", "99.9th percentile ratio, positive-advantage tokens."),
    _M("actor/pos_is_p25", "ratio", "ratio", "25th percentile ratio, positive-advantage tokens."),
    _M("actor/pos_is_min", "ratio", "ratio", "Smallest ratio among positive-advantage tokens."),
    _M("actor/pos_mini_frac", "ratio", "fraction", "Valid tokens with A>0 and ratio < 1e-3."),
    _M("actor/invalidated_seq_frac", "clip", "fraction",
       "Sequences dropped from the loss for two or more dual-clipped tokens."),
    # --- entropy, optimisation
    _M("actor/entropy", "entropy", "nats", "Mean per-token entropy of the current policy on sampled responses."),
    _M("actor/grad_norm", "optim", "norm", "Global gradient norm before clipping (mean over optimizer steps)."),
    _M("actor/lr", "optim", "lr", "Learning rate of the last optimizer step."),
    _M("actor/sft_loss", "optim", "nats", "Cross-entropy of the supervised warm start (CPU demo)."),
    # --- throughput and phase times
    _M("perf/tokens_per_second", "throughput", "tokens/s", "Generated plus trained tokens per wall-clock second."),
    _M("perf/samples_per_second", "throughput", "samples/s", "Responses generated per wall-clock second."),
    _M("timing/generate_s", "throughput", "s", "Time spent sampling responses this step."),
    _M("timing/reward_s", "throughput", "s", "Time spent grading responses this step."),
    _M("timing/old_log_prob_s", "throughput", "s", "Time spent recomputing old log-probs."),
    _M("timing/update_s", "throughput", "s", "Time spent in forward/backward/optimizer updates."),
    _M("timing/step_s", "throughput", "s", "Whole training step wall-clock time."),
    # --- evaluation
    _M("eval/pass_at_1", "eval", "fraction", "Held-out Pass@1 as avg@k (mean accuracy over k samples)."),
    _M("eval/cons_at_k", "eval", "fraction", "Held-out majority-vote accuracy over k samples."),
    _M("eval/pass_at_k", "eval", "fraction", "Held-out pass@k (unbiased estimator)."),
    _M("eval/response_length_mean", "eval", "tokens", "Mean response length on the held-out set."),
    _M("eval/truncation_rate", "eval", "fraction", "Held-out responses that hit the length limit."),
)

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}
if len(BY_NAME) != len(METRICS):  # pragma: no cover - guarded by a test too
    raise RuntimeError("duplicate metric name in the catalog")

# The headline metrics a run keeps in its summary (the newest value of each), so that the runs list
# shows them without reading any series: the ingest writes them (webapp/tracking/services.py), the
# runs API serves them (webapp/runs/api.py).
RUN_SUMMARY_KEYS: tuple[str, ...] = ("reward/mean", "accuracy/mean", "response_length/mean")


def get(name: str) -> Metric | None:
    return BY_NAME.get(name)


def is_known(name: str) -> bool:
    return name in BY_NAME


def as_dicts() -> list[dict[str, str]]:
    """The catalog as JSON-ready dicts (served by the API, rendered by the dashboard)."""
    return [asdict(m) for m in METRICS]
