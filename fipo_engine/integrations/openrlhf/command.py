"""`fipo openrlhf-command`: the OpenRLHF 0.11.2 ``train_ppo_ray`` command that reproduces a run config.

    fipo openrlhf-command fipo-32b                      # the command, one flag per line
    fipo openrlhf-command fipo-32b --ray-submit         # wrapped in `ray job submit` with the runtime env
    fipo openrlhf-command my.json --set trainer.lr=2e-6 --notes

The ``ray`` launcher (engine ``openrlhf``) submits exactly ``openrlhf_command(cfg)`` as the job's
entrypoint. OpenRLHF >= 0.10.2 uses dotted flags (``--algo.advantage.estimator``); this builder
targets 0.11.2 only (flags drift inside 0.11.x). FIPO's own knobs (decay rate, influence clip,
safety threshold, filter) have no OpenRLHF flag, and OpenRLHF rejects unknown flags: they reach the
FIPO loss through ``$FIPO_CONFIG_JSON`` in the job's runtime env, read by the worker setup hook.
``command_notes(cfg)`` lists every value the command cannot express and what we do instead.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from dataclasses import dataclass, field

from fipo_engine.config import RunConfig

OPENRLHF_VERSION = "0.11.2"
ENTRY_MODULE = "openrlhf.cli.train_ppo_ray"
SETUP_HOOK = "fipo_engine.integrations.openrlhf.hook.setup"
# Resolved on the node that runs the driver: every node has fipo installed at the same path.
REWARD_FILE_EXPR = "$(python3 -c 'import fipo_engine.integrations.openrlhf.reward_func as m; print(m.__file__)')"

# Run directory, expanded by the shell on the driver node: put FIPO_RUNS_DIR on a shared filesystem
# so that every node writes checkpoints to the same place (and a relaunch of the run resumes from it).
RUN_DIR_EXPR = "${FIPO_RUNS_DIR:-/tmp/fipo-runs}/${FIPO_RUN_ID:-manual}"

# our estimator name -> OpenRLHF's
ESTIMATORS = {"grpo": "group_norm", "dr_grpo": "dr_grpo", "rloo": "rloo"}
# our aggregation -> the closest OpenRLHF mode (the FIPO loss does the exact one itself)
AGG_MODES = {"token-mean": "token-mean", "seq-mean-token-mean": "seq-mean-token-mean"}


@dataclass
class OpenRLHFCommand:
    """The argv after ``python3 -m openrlhf.cli.train_ppo_ray`` and what could not be expressed."""

    args: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def flag(self, name: str, *values: object) -> None:
        self.args.append(f"--{name}")
        self.args.extend(_fmt(v) for v in values)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) >= 1e16 else f"{value:.1f}"
    return str(value)


def optimizer_steps(cfg: RunConfig) -> int:
    """Optimizer steps in the whole run: steps x (prompts per step / prompts per mini-batch) x epochs."""
    t = cfg.trainer
    return t.total_steps * (t.train_batch_size // t.ppo_mini_batch_size) * t.ppo_epochs


def warmup_ratio(warmup_steps: int, max_steps: int) -> float:
    """The ratio OpenRLHF turns back into ``ceil(max_steps * ratio)`` warm-up steps, exact for our count."""
    if warmup_steps <= 0:
        return 0.0
    ratio = warmup_steps / max_steps
    while math.ceil(max_steps * ratio) > warmup_steps:  # float round-up would add one step
        ratio = math.nextafter(ratio, 0.0)
    return ratio


def build(cfg: RunConfig, *, reward_file: str | None = None) -> OpenRLHFCommand:
    """Translate a run config into OpenRLHF 0.11.2 flags (pure; no OpenRLHF import).

    One helper per part of the command, in the order the flags appear.
    """
    out = OpenRLHFCommand()
    _placement(out, cfg)
    _deepspeed(out, cfg)
    _data(out, cfg)
    _rollout_and_reward(out, cfg, reward_file)
    _algorithm(out, cfg)
    _optimisation(out, cfg)
    _evaluation_and_checkpoints(out, cfg)
    return out


def _num_gpus(cfg: RunConfig) -> int:
    return cfg.launcher.ray.num_nodes * cfg.launcher.ray.gpus_per_node


def _max_len(cfg: RunConfig) -> int:
    """Prompt plus response tokens: the longest sequence, per GPU and in the data."""
    return cfg.data.max_prompt_length + cfg.rollout.max_new_tokens


def _placement(out: OpenRLHFCommand, cfg: RunConfig) -> None:
    """Model and placement: hybrid engine (vLLM and the actor share every GPU), as the recipe's colocation."""
    m, r, ray = cfg.model, cfg.rollout, cfg.launcher.ray
    out.flag("actor.model_name_or_path", m.path or "MODEL_PATH")
    if m.source != "hf":
        out.notes.append(f"model.source={m.source}: OpenRLHF loads Hugging Face directories only; "
                         "the command uses model.path (set it to an exported HF directory).")
    gpus = _num_gpus(cfg)
    tp = min(r.tensor_parallel_size, gpus)
    out.flag("actor.num_nodes", ray.num_nodes)
    out.flag("actor.num_gpus_per_node", ray.gpus_per_node)
    out.flag("vllm.num_engines", max(gpus // tp, 1))
    out.flag("vllm.tensor_parallel_size", tp)
    out.flag("vllm.gpu_memory_utilization", r.gpu_memory_utilization)
    out.flag("vllm.enable_sleep")
    out.flag("train.colocate_all")


def _deepspeed(out: OpenRLHFCommand, cfg: RunConfig) -> None:
    """DeepSpeed as the recipe: FSDP with param + optimizer offload, gradient checkpointing, dynamic batch."""
    m, t = cfg.model, cfg.trainer
    out.flag("ds.zero_stage", 3)
    out.flag("ds.param_dtype", "fp16" if m.dtype == "float16" else "bf16")
    out.flag("ds.enable_sleep")
    out.flag("ds.adam_offload")
    out.flag("ds.packing_samples")
    if m.gradient_checkpointing:
        out.flag("actor.gradient_checkpointing_enable")
    out.flag("train.dynamic_batch_enable")
    out.flag("train.max_tokens_per_gpu", _max_len(cfg))
    # OpenRLHF asserts n x rollout.batch_size / rollout.micro_batch_size >= actor GPUs
    out.flag("rollout.micro_batch_size",
             max(1, min(t.micro_batch_size, cfg.rollout.n * t.train_batch_size // _num_gpus(cfg))))
    out.flag("train.micro_batch_size", t.micro_batch_size)


def _data(out: OpenRLHFCommand, cfg: RunConfig) -> None:
    """The prompt file (a non-file source must be exported first) and how many prompts the run reads."""
    d, t = cfg.data, cfg.trainer
    if d.source == "file":
        out.flag("data.prompt_dataset", d.path)
    else:
        out.flag("data.prompt_dataset", f"fipo-data/{d.source}-{d.task}.jsonl")
        out.notes.append(f"data.source={d.source}: OpenRLHF reads files only; export the prompts to "
                         f"fipo-data/{d.source}-{d.task}.jsonl (DAPO layout: prompt messages, reward_model).")
    out.flag("data.input_key", "prompt")
    out.flag("data.label_key", "reward_model")
    out.flag("data.apply_chat_template")
    out.flag("data.max_len", _max_len(cfg))
    out.flag("data.max_samples", t.total_steps * t.train_batch_size)
    out.flag("train.num_episodes", 1)


def _rollout_and_reward(out: OpenRLHFCommand, cfg: RunConfig, reward_file: str | None) -> None:
    """Sampling, then the reward: our graders through a reward-function file, DAPO's overlong penalty natively."""
    r, rw, t = cfg.rollout, cfg.reward, cfg.trainer
    out.flag("rollout.n_samples_per_prompt", r.n)
    out.flag("rollout.batch_size", t.train_batch_size)
    out.flag("rollout.max_new_tokens", r.max_new_tokens)
    out.flag("rollout.temperature", r.temperature)
    out.flag("rollout.top_p", r.top_p)
    if r.top_k != -1:
        out.notes.append(f"rollout.top_k={r.top_k}: OpenRLHF has no top-k flag; vLLM samples without it.")
    out.flag("reward.remote_url", reward_file or REWARD_FILE_EXPR)
    if rw.overlong_buffer.enable:
        out.flag("reward.overlong_buffer_len", rw.overlong_buffer.length)
        out.flag("reward.overlong_penalty_factor", rw.overlong_buffer.penalty_factor)
    if t.dynamic_sampling:
        # scores = accuracy in {0, 1}: a group survives iff 0 < mean accuracy < 1 (non-zero variance)
        out.flag("algo.dynamic_filtering_enable")
        out.flag("algo.dynamic_filtering_range", 0.0, 1.0)


def _algorithm(out: OpenRLHFCommand, cfg: RunConfig) -> None:
    """Advantage, KL, entropy, then the policy loss: clip-higher, dual clip, aggregation.

    FIPO's influence weights have no flag: they come from the loss the setup hook swaps in.
    """
    a, loss = cfg.algorithm, cfg.algorithm.loss
    if a.advantage_estimator not in ESTIMATORS:
        raise ValueError(f"advantage_estimator {a.advantage_estimator!r} has no OpenRLHF counterpart")
    out.flag("algo.advantage.estimator", ESTIMATORS[a.advantage_estimator])
    out.flag("algo.kl.init_coef", a.kl_coef)
    if a.kl_coef > 0:
        out.flag("algo.kl.use_loss")
        out.flag("algo.kl.estimator", "k3")
    if a.entropy_coeff:
        # 0.11.2 computes a full-vocabulary entropy kept through backward for ANY value, 0 included
        # (152k vocab x 22.5k tokens ~ 13.7 GB fp32): omitted, the flag stays None and nothing is computed.
        out.flag("actor.entropy_coef", a.entropy_coeff)
    out.flag("actor.eps_clip_low_high", loss.clip_ratio_low, loss.clip_ratio_high)
    out.flag("actor.dual_clip", loss.clip_ratio_c)
    out.flag("actor.loss_agg_mode", AGG_MODES.get(loss.loss_agg_mode, "token-mean"))
    if loss.loss_agg_mode not in AGG_MODES:
        out.notes.append(f"loss_agg_mode={loss.loss_agg_mode}: not an OpenRLHF mode; the FIPO loss aggregates "
                         "it itself within each micro-batch.")


def _optimisation(out: OpenRLHFCommand, cfg: RunConfig) -> None:
    """One mini-batch of prompts x n samples per optimizer step; AdamW with our warm-up, exactly."""
    t = cfg.trainer
    out.flag("train.batch_size", t.ppo_mini_batch_size * cfg.rollout.n)
    out.flag("train.max_epochs", t.ppo_epochs)
    out.flag("actor.adam.lr", t.lr)
    out.flag("actor.adam.betas", *t.betas)
    out.flag("actor.adam.weight_decay", t.weight_decay)
    out.flag("actor.max_norm", t.grad_clip)
    out.flag("actor.lr_scheduler", "constant_with_warmup")
    out.flag("actor.lr_warmup_ratio", warmup_ratio(t.warmup_steps, optimizer_steps(cfg)))
    out.flag("train.seed", t.seed)


def _evaluation_and_checkpoints(out: OpenRLHFCommand, cfg: RunConfig) -> None:
    """Evaluation (only on an eval file), checkpoints under the run directory (a relaunch resumes), logging."""
    d, t = cfg.data, cfg.trainer
    if d.eval_path and t.eval_every > 0:
        out.flag("eval.dataset", d.eval_path)
        out.flag("eval.steps", t.eval_every)
        out.flag("eval.temperature", t.eval_temperature)
        out.flag("eval.n_samples_per_prompt", t.eval_k)
        if t.eval_top_p != 1.0:
            out.notes.append(f"trainer.eval_top_p={t.eval_top_p}: OpenRLHF evaluates with the rollout top_p "
                             f"({cfg.rollout.top_p}); run `fipo eval` on a checkpoint for the paper's top_p.")
    out.flag("ckpt.save_steps", t.save_every if t.save_every > 0 else -1)
    out.flag("ckpt.max_num", t.keep_checkpoints)
    out.flag("ckpt.path", f"{RUN_DIR_EXPR}/checkpoints")
    out.flag("ckpt.output_dir", f"{RUN_DIR_EXPR}/final")
    out.flag("ckpt.load_enable")
    out.flag("logger.logging_steps", 1)


def openrlhf_argv(cfg: RunConfig, *, reward_file: str | None = None) -> list[str]:
    """``["python3", "-m", "openrlhf.cli.train_ppo_ray", "--actor.model_name_or_path", ...]``."""
    return ["python3", "-m", ENTRY_MODULE, *build(cfg, reward_file=reward_file).args]


def _quote(token: str) -> str:
    # Shell expressions (reward file, run directory): double quotes keep them one word but let them expand.
    return f'"{token}"' if token.startswith("$") else shlex.quote(token)


def openrlhf_command(cfg: RunConfig, *, reward_file: str | None = None, multiline: bool = False) -> str:
    """The shell command line; the ``ray`` launcher submits exactly this (single-line form)."""
    argv = openrlhf_argv(cfg, reward_file=reward_file)
    if not multiline:
        return " ".join(_quote(t) for t in argv)
    lines, current = [], [_quote(t) for t in argv[:3]]
    for token in argv[3:]:
        if token.startswith("--"):
            lines.append(" ".join(current))
            current = [token]
        else:
            current.append(_quote(token))
    lines.append(" ".join(current))
    return " \\\n    ".join(lines)


def command_notes(cfg: RunConfig) -> list[str]:
    """Values of this config that OpenRLHF cannot express, each with what we do instead."""
    notes = build(cfg).notes
    t, loss = cfg.trainer, cfg.algorithm.loss
    if cfg.algorithm.policy_loss == "fipo":
        notes.insert(0, f"policy_loss=fipo (decay_rate={loss.decay_rate:g}, future_kl_clip_ratio="
                        f"{loss.future_kl_clip_ratio:g}, high_only={loss.future_kl_clip_high_only}, safety_thresh="
                        f"{loss.safety_thresh}): no OpenRLHF flag; the setup hook {SETUP_HOOK} swaps in the FIPO "
                        "PolicyLoss, configured from $FIPO_CONFIG_JSON.")
    elif cfg.algorithm.policy_loss != "ppo":
        notes.insert(0, f"policy_loss={cfg.algorithm.policy_loss}: computed by our loss through the same hook.")
    if t.dynamic_sampling:
        notes.append(f"trainer.gen_batch_size={t.gen_batch_size}, max_num_gen_batches={t.max_num_gen_batches}: "
                     "OpenRLHF has no over-generation; dynamic filtering dispatches replacement prompts until "
                     f"{t.train_batch_size} groups survive.")
    notes.append(f"trainer.total_steps={t.total_steps}: OpenRLHF counts passes over the data; we read "
                 f"total_steps x train_batch_size = {t.total_steps * t.train_batch_size} prompts once "
                 "(dynamic filtering consumes extra prompts, so it can end earlier).")
    return notes


def runtime_env(cfg: RunConfig) -> dict[str, object]:
    """The Ray runtime env an OpenRLHF FIPO job needs (what the launcher sends, minus run token/URL)."""
    return {"env_vars": {"FIPO_CONFIG_JSON": json.dumps(cfg.model_dump(mode="json"), separators=(",", ":"))},
            "worker_process_setup_hook": SETUP_HOOK}


def ray_submit_line(address: str, runtime_env_json: str, command: str) -> str:
    """``ray job submit ... -- sh -c '<command>'``.

    Ray's CLI joins the words after ``--`` into one entrypoint string (``shlex.join`` in Ray 2.60,
    ``subprocess.list2cmdline`` in older releases) that ``/bin/sh`` runs on the head. Passing the
    command as one quoted word made sh look for a program named ``python3 -m openrlhf...`` (exit 127);
    passing its words would let the local shell or Ray's quoting decide when ``$(...)``/``${...}``
    expand. ``sh -c`` gives the node's shell exactly the line the ``ray`` launcher submits.
    """
    return (f"ray job submit --address {shlex.quote(address)} --runtime-env-json {shlex.quote(runtime_env_json)}"
            f" -- sh -c {shlex.quote(command)}")


# ---- the `fipo openrlhf-command` sub-command ----------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="preset name or path to a JSON config")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--reward-file", default=None,
                        help="path of fipo's reward_func.py on the nodes (default: resolved by python3 at launch)")
    parser.add_argument("--ray-submit", action="store_true",
                        help="print a `ray job submit` line with the runtime env (hook + FIPO config) instead")
    parser.add_argument("--notes", action="store_true",
                        help="also print (to stderr) the values OpenRLHF cannot express and what we do instead")


def run(args: argparse.Namespace) -> int:
    from fipo_engine.config import ConfigError, load_config

    try:
        cfg = load_config(args.config, args.overrides)
        command = openrlhf_command(cfg, reward_file=args.reward_file, multiline=not args.ray_submit)
    except (ConfigError, ValueError) as exc:
        print(f"fipo: {exc}", file=sys.stderr)
        return 2
    if args.ray_submit:
        env = json.dumps(runtime_env(cfg), separators=(",", ":"))
        address = cfg.launcher.ray.address
        print(ray_submit_line(address, env, command))
    else:
        print(command)
    if args.notes:
        print(f"# OpenRLHF {OPENRLHF_VERSION} cannot express:", file=sys.stderr)
        for note in command_notes(cfg):
            print(f"#  - {note}", file=sys.stderr)
    return 0
