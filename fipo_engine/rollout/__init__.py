"""Rollout backends: sample responses for token prompts (transformers now; vLLM on one GPU later)."""

from fipo_engine.rollout.base import Generation, RolloutBackend, SamplingParams
from fipo_engine.rollout.hf import HFRollout

__all__ = ["Generation", "HFRollout", "RolloutBackend", "SamplingParams", "make_rollout"]


def make_rollout(backend: str, policy, generation_batch_size: int) -> RolloutBackend:
    """The backend named by ``rollout.backend``; ``vllm`` lives in ``rollout/vllm.py`` when installed."""
    if backend == "hf":
        return HFRollout(policy, generation_batch_size)
    if backend == "vllm":
        from fipo_engine.rollout.vllm import VLLMRollout  # type: ignore[import-not-found]

        return VLLMRollout(policy, generation_batch_size)
    raise ValueError(f"unknown rollout backend {backend!r}; valid: hf, vllm")
