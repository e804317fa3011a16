"""The rollout interface: token prompts in, sampled responses out.

A backend (transformers ``generate`` here; vLLM later) only samples. Log-probs used by the loss
are always recomputed by the training engine (docs/spec.md §8), so a backend never returns them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SamplingParams:
    """How to sample: the recipe uses temperature 1.0, top_p 1.0, no top-k."""

    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_new_tokens: int = 128


@dataclass(frozen=True)
class Generation:
    """One sampled response: token ids (EOS included when produced) and whether it hit the limit."""

    prompt_index: int          # index into the prompts passed to generate()
    response_ids: list[int]
    truncated: bool            # no EOS within max_new_tokens


class RolloutBackend(Protocol):
    """``generate`` returns ``len(prompts) * params.n`` generations, grouped: prompt 0's n samples first."""

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]: ...

    def sync_weights(self) -> None:
        """Called after each optimizer phase; a backend with its own copy of the weights reloads them."""
        ...
