"""Rollout on the training model itself, batched, sampled, on CPU or one GPU.

Llama-family models (``models.fast.supported``) sample with our own loop: a preallocated KV
cache, one prefill per distinct prompt, finished rows dropped, early exit when all rows hit EOS.
Other models use transformers ``generate``. Both honour temperature, top-k, top-p, max_new_tokens
and EOS, and draw from the global torch RNG (seeded runs are reproducible).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from transformers import GenerationConfig

from fipo_engine.models import fast
from fipo_engine.models.loader import Policy
from fipo_engine.rollout.base import Generation, SamplingParams


def _cut_at_eos(ids: list[int], eos_ids: set[int]) -> tuple[list[int], bool]:
    """Keep tokens up to and including the first EOS; ``truncated`` when there is none."""
    for i, tok in enumerate(ids):
        if tok in eos_ids:
            return ids[: i + 1], False
    return ids, True


class HFRollout:
    """Samples with the training model itself (no weight copy, so ``sync_weights`` is a no-op).

    ``should_stop`` (set by the trainer) is polled once per generated token on the fast path and
    once per batch otherwise; when it returns True, ``generate`` raises ``GenerationInterrupted``.
    ``use_fast = False`` forces transformers ``generate``.
    """

    def __init__(self, policy: Policy, generation_batch_size: int = 64) -> None:
        self.policy = policy
        self.batch_size = generation_batch_size
        eos = policy.model.generation_config.eos_token_id or policy.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.eos_ids.add(policy.tokenizer.eos_token_id)
        self.should_stop: Callable[[], bool] | None = None
        self.use_fast = True

    def sync_weights(self) -> None:
        return None

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        # Grouped order: prompt i's n samples are contiguous (the GRPO group).
        flat = [i for i in range(len(prompts)) for _ in range(params.n)]
        model = self.policy.model
        out: list[Generation] = []
        for start in range(0, len(flat), self.batch_size):
            if self.should_stop is not None and self.should_stop():
                raise fast.GenerationInterrupted
            chunk = flat[start: start + self.batch_size]
            if self.use_fast and fast.supported(model):
                sampled = fast.sample(model, prompts, chunk, temperature=params.temperature, top_k=params.top_k,
                                      top_p=params.top_p, max_new_tokens=params.max_new_tokens,
                                      eos_ids=self.eos_ids, should_stop=self.should_stop)
            else:
                sampled = self._hf_generate(prompts, chunk, params)
            out += [Generation(i, ids, truncated) for i, (ids, truncated) in zip(chunk, sampled, strict=True)]
        return out

    @torch.no_grad()
    def _hf_generate(self, prompts: list[list[int]], chunk: list[int],
                     params: SamplingParams) -> list[tuple[list[int], bool]]:
        model, tok = self.policy.model, self.policy.tokenizer
        config = GenerationConfig(
            do_sample=True, temperature=params.temperature, top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else 0, max_new_tokens=params.max_new_tokens,
            pad_token_id=tok.pad_token_id, eos_token_id=sorted(self.eos_ids), use_cache=True,
        )
        was_training = model.training
        model.eval()
        batch = tok.pad({"input_ids": [prompts[i] for i in chunk]}, return_tensors="pt")
        input_ids = batch["input_ids"].to(self.policy.device)
        mask = batch["attention_mask"].to(self.policy.device)
        seqs = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)
        model.train(was_training)
        return [_cut_at_eos(seqs[row, input_ids.shape[1]:].tolist(), self.eos_ids) for row in range(len(chunk))]
