"""Rollout with vLLM's offline engine on the training GPU (``rollout.backend: vllm``, one-GPU native training).

How it fits the native trainer (docs/spec.md §8):
1. At start the policy (weights + tokenizer) is written once to a temporary Hugging Face directory,
   and an in-process ``vllm.LLM`` is built from it on the same GPU as the trainer
   (``gpu_memory_utilization`` caps vLLM's share; the rest is the trainer's).
2. ``generate`` sends token prompts (no re-tokenisation) and returns, per prompt, its ``n`` samples
   in order (the GRPO group), with EOS kept and ``truncated`` when vLLM stopped on length.
   vLLM's log-probs are never used: the trainer recomputes old log-probs itself.
3. ``sync_weights`` (called by the trainer after each optimizer phase) streams the trainer's
   ``state_dict`` into vLLM's model with ``load_weights`` (vLLM maps HF names, fuses q/k/v) and
   drops the prefix cache, so the next rollout samples from the updated policy.

We run vLLM's engine core in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``): the weight
transfer is then a device-to-device copy with no pickling. Everything up to the vLLM call is pure
and tested on CPU with a stand-in engine; ``bench/vllm_rollout.py`` runs the real thing on a GPU.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fipo_engine.rollout.base import Generation, SamplingParams


def sampling_kwargs(params: SamplingParams, eos_ids: set[int]) -> dict[str, Any]:
    """Keyword arguments of ``vllm.SamplingParams`` equivalent to our ``SamplingParams``."""
    return {
        "n": params.n,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "top_k": params.top_k if params.top_k > 0 else -1,  # vLLM: -1 = all tokens
        "max_tokens": params.max_new_tokens,
        "stop_token_ids": sorted(eos_ids),
        "detokenize": False,  # the trainer works on ids; text is decoded once, later, for logging
        "skip_special_tokens": False,
    }


def to_generation(prompt_index: int, token_ids: list[int], finish_reason: str | None, stop_reason: Any,
                  eos_ids: set[int]) -> Generation:
    """One vLLM completion -> our ``Generation``: EOS kept (as the HF backend does), length = truncated."""
    ids = list(token_ids)
    if finish_reason == "stop" and isinstance(stop_reason, int) and (not ids or ids[-1] != stop_reason):
        ids.append(stop_reason)  # a stop token id that vLLM did not echo: keep it, the loss trains on it
    return Generation(prompt_index, ids, truncated=finish_reason == "length")


def named_weights(model: Any) -> Iterator[tuple[str, Any]]:
    """The trainer's weights as ``(hf_name, tensor)`` pairs, detached, in ``state_dict`` order."""
    for name, tensor in model.state_dict().items():
        yield name, tensor.detach()


def export_policy(policy: Any, directory: Path) -> Path:
    """Write the policy as an ordinary HF directory vLLM can load (config, safetensors, tokenizer)."""
    directory.mkdir(parents=True, exist_ok=True)
    policy.model.save_pretrained(directory)
    policy.tokenizer.save_pretrained(directory)
    return directory


def _default_engine(model_dir: Path, *, dtype: str, gpu_memory_utilization: float, max_model_len: int | None,
                    seed: int, tensor_parallel_size: int) -> Any:
    """A real in-process ``vllm.LLM`` (GPU only; imported here so CPU installs never need vLLM)."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from vllm import LLM

    return LLM(model=str(model_dir), tokenizer=str(model_dir), dtype=dtype, seed=seed,
               gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
               tensor_parallel_size=tensor_parallel_size, enable_prefix_caching=True)


def _default_sampling_cls() -> Callable[..., Any]:
    from vllm import SamplingParams as VSamplingParams

    return VSamplingParams


class VLLMRollout:
    """``RolloutBackend`` on vLLM (see module docstring). ``engine``/``sampling_cls`` replace vLLM in tests."""

    def __init__(self, policy: Any, generation_batch_size: int = 64, *, gpu_memory_utilization: float = 0.5,
                 max_model_len: int | None = None, seed: int = 0, tensor_parallel_size: int = 1,
                 engine: Any = None, sampling_cls: Callable[..., Any] | None = None) -> None:
        self.policy = policy
        self.batch_size = generation_batch_size  # vLLM schedules its own batches; kept for the interface
        eos = policy.model.generation_config.eos_token_id or policy.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.eos_ids.add(policy.tokenizer.eos_token_id)
        self.syncs = 0
        self._tmp = tempfile.TemporaryDirectory(prefix="fipo-vllm-")
        self.model_dir = export_policy(policy, Path(self._tmp.name))
        if engine is None:
            dtype = str(next(policy.model.parameters()).dtype).removeprefix("torch.")
            engine = _default_engine(self.model_dir, dtype=dtype, gpu_memory_utilization=gpu_memory_utilization,
                                     max_model_len=max_model_len, seed=seed,
                                     tensor_parallel_size=tensor_parallel_size)
        self.engine = engine
        self.sampling_cls = sampling_cls or _default_sampling_cls()

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        sampling = self.sampling_cls(**sampling_kwargs(params, self.eos_ids))
        requests = [{"prompt_token_ids": list(p)} for p in prompts]
        outputs = self.engine.generate(requests, sampling, use_tqdm=False)
        out: list[Generation] = []
        for prompt_index, request in enumerate(outputs):  # vLLM returns requests in input order
            for completion in request.outputs:
                out.append(to_generation(prompt_index, completion.token_ids, completion.finish_reason,
                                         getattr(completion, "stop_reason", None), self.eos_ids))
        return out

    def sync_weights(self) -> None:
        """Copy the trainer's current weights into vLLM's model and forget cached prefixes."""
        model = self.policy.model

        def load(vllm_model: Any) -> None:
            vllm_model.load_weights(named_weights(model))

        self.engine.apply_model(load)
        reset = getattr(self.engine, "reset_prefix_cache", None)
        if reset is not None:
            reset()
        self.syncs += 1

    def close(self) -> None:
        self._tmp.cleanup()
