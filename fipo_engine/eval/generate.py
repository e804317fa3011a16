"""Sample k responses per problem from a model, with the trainer's own loading and rollout code.

``--model`` accepts a Hugging Face model directory, a checkpoint written by ``fipo train``
(``checkpoints/step_N/`` with ``model/`` and the run's ``config.json``, whose prompt settings are
then reused so the model is asked the way it was trained), a ``fipo train`` output directory (its
newest checkpoint), or ``smollm2`` (the offline SmolLM2-135M-Instruct).
Prompts are rendered by ``fipo_engine.data.sources.render_prompt`` and sampled by
``fipo_engine.rollout.HFRollout``: the exact code paths of training, so an eval number and a
training curve measure the same thing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fipo_engine.data.problem import Problem
from fipo_engine.eval.runner import Sample


@dataclass(frozen=True)
class SamplingSettings:
    k: int = 32
    temperature: float = 1.0
    top_p: float = 0.7
    max_new_tokens: int = 20480
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    backend: str = "hf"  # hf (transformers generate) or vllm (one GPU, the node install of docs/ray-cluster.md)


def _run_config_at(path: Path) -> dict[str, Any] | None:
    """A ``fipo train`` run config (it has ``schema_version``; a model's config.json does not)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and "schema_version" in data else None


def resolve_checkpoint(model: str | Path) -> tuple[Path, dict[str, Any] | None]:
    """(model directory, run config or None) for what ``--model`` names.

    Accepts a Hugging Face model directory; a ``fipo train`` checkpoint ``step_000010/`` (the model
    is in ``model/``, the run config in ``config.json``); that checkpoint's ``model/`` directory;
    or a run output directory (its newest complete checkpoint under ``checkpoints/``).
    """
    path = Path(model)
    ckpt_root = path / "checkpoints"
    if ckpt_root.is_dir():
        steps = sorted(p for p in ckpt_root.iterdir()
                       if p.is_dir() and p.name.startswith("step_") and (p / "model" / "config.json").is_file())
        if not steps:
            raise FileNotFoundError(f"{path}: no complete checkpoint under checkpoints/")
        path = steps[-1]
    if (path / "model" / "config.json").is_file():
        return path / "model", _run_config_at(path / "config.json")
    if (path / "config.json").is_file() and _run_config_at(path / "config.json") is None:
        return path, _run_config_at(path.parent / "config.json")
    raise FileNotFoundError(f"{model!r}: not a model directory, a fipo checkpoint or run directory, nor 'smollm2'")


def load_for_eval(model: str, device: str = "auto"):  # -> (Policy, DataConfig | None)
    """The policy for ``model`` and, for our checkpoints, the run's data config (prompt format)."""
    from fipo_engine.config import ModelConfig, validate_config
    from fipo_engine.models.loader import load_hf_dir, load_policy, resolve_device

    target = resolve_device(device)
    if model == "smollm2":
        return load_policy(ModelConfig(source="smollm2"), device=target), None
    model_dir, run_config = resolve_checkpoint(model)
    policy = load_hf_dir(model_dir)
    policy.model.to(target)
    policy.model.generation_config.pad_token_id = policy.tokenizer.pad_token_id
    data_cfg = None
    if run_config:
        try:
            data_cfg = validate_config(run_config).data
        except ValueError as exc:  # a config from another schema: fall back to the default prompt
            print(f"fipo eval: ignoring the checkpoint's run config ({exc})", file=sys.stderr)
    return policy, data_cfg


def generate_samples(
    model: str,
    problems: Sequence[Problem],
    settings: SamplingSettings,
    *,
    prompt_suffix: str = "",
    on_progress: Callable[[int], None] | None = None,
    on_samples: Callable[[dict[str, list[Sample]]], None] | None = None,
) -> dict[str, list[Sample]]:
    """``settings.k`` sampled responses for every problem, keyed by problem id.

    ``on_progress(n)`` after each chunk of n problems; ``on_samples(chunk)`` with that chunk's
    samples (the eval job's running Pass@1 grades them)."""
    import torch

    from fipo_engine.config import DataConfig
    from fipo_engine.data.sources import render_prompt
    from fipo_engine.rollout import SamplingParams, make_rollout

    torch.manual_seed(settings.seed)
    policy, data_cfg = load_for_eval(model, settings.device)
    if data_cfg is None:
        data_cfg = DataConfig(prompt_suffix=prompt_suffix)
    tokenizer = policy.tokenizer
    texts = [render_prompt(p, data_cfg, tokenizer, policy.chat) for p in problems]
    prompt_ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    longest = max((len(ids) for ids in prompt_ids), default=0)
    rollout = make_rollout(settings.backend, policy, settings.batch_size, seed=settings.seed,
                           max_model_len=longest + settings.max_new_tokens)
    params = SamplingParams(n=settings.k, temperature=settings.temperature, top_p=settings.top_p,
                            max_new_tokens=settings.max_new_tokens)
    # hf: about one generation batch of sequences per call, so progress moves steadily;
    # vllm: everything in one call (the engine schedules its own batches).
    per_chunk = len(problems) if settings.backend == "vllm" else max(1, settings.batch_size // settings.k)
    out: dict[str, list[Sample]] = {}
    for start in range(0, len(problems), per_chunk):
        stop = min(start + per_chunk, len(problems))
        for gen in rollout.generate(prompt_ids[start:stop], params):
            index = start + gen.prompt_index
            text = tokenizer.decode(gen.response_ids, skip_special_tokens=True)
            # A plain-text prompt ends with "Answer: " (render_prompt): the response completes that
            # line, so grade the completed line (the graders read "Answer: X" when there is no box).
            last_line = texts[index].rsplit("\n", 1)[-1]
            if not policy.chat and last_line.strip().lower().startswith("answer:"):
                text = last_line + text
            out.setdefault(problems[index].id, []).append(Sample(text, len(gen.response_ids), gen.truncated))
        if on_progress is not None:
            on_progress(stop - start)
        if on_samples is not None:
            on_samples({p.id: out[p.id] for p in problems[start:stop] if p.id in out})
    return out
