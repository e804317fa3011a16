"""Rollout backends: sample responses for token prompts (transformers; vLLM on one GPU)."""

from __future__ import annotations

from typing import Any

from fipo_engine.models.fast import GenerationInterrupted
from fipo_engine.rollout.base import Generation, RolloutBackend, SamplingParams
from fipo_engine.rollout.hf import HFRollout

__all__ = ["Generation", "GenerationInterrupted", "HFRollout", "RolloutBackend", "SamplingParams", "make_rollout"]


def make_rollout(cfg: Any, policy: Any, generation_batch_size: int | None = None, *, seed: int = 0,
                 max_model_len: int | None = None) -> RolloutBackend:
    """The backend selected by a ``RolloutConfig`` (or a backend name plus a batch size).

    ``hf``: transformers ``generate`` with the training model; ``vllm``: ``rollout/vllm.py``.
    """
    if isinstance(cfg, str):
        backend, batch, extra = cfg, generation_batch_size or 64, {}
    else:
        backend, batch = cfg.backend, cfg.generation_batch_size
        extra = {"gpu_memory_utilization": cfg.gpu_memory_utilization,
                 "tensor_parallel_size": cfg.tensor_parallel_size}
    if backend == "hf":
        return HFRollout(policy, batch)
    if backend == "vllm":
        from fipo_engine.rollout.vllm import VLLMRollout

        return VLLMRollout(policy, batch, max_model_len=max_model_len, seed=seed, **extra)
    raise ValueError(f"unknown rollout backend {backend!r}; valid: hf, vllm")
