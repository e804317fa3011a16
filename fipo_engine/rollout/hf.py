"""Rollout with transformers ``generate``: batched, sampled, with the KV cache, on CPU or one GPU."""

from __future__ import annotations

import torch
from transformers import GenerationConfig

from fipo_engine.models.loader import Policy
from fipo_engine.rollout.base import Generation, SamplingParams


def _cut_at_eos(ids: list[int], eos_ids: set[int]) -> tuple[list[int], bool]:
    """Keep tokens up to and including the first EOS; ``truncated`` when there is none."""
    for i, tok in enumerate(ids):
        if tok in eos_ids:
            return ids[: i + 1], False
    return ids, True


class HFRollout:
    """Samples with the training model itself (no weight copy, so ``sync_weights`` is a no-op)."""

    def __init__(self, policy: Policy, generation_batch_size: int = 64) -> None:
        self.policy = policy
        self.batch_size = generation_batch_size
        eos = policy.model.generation_config.eos_token_id or policy.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.eos_ids.add(policy.tokenizer.eos_token_id)

    def sync_weights(self) -> None:
        return None

    @torch.no_grad()
    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        model, tok = self.policy.model, self.policy.tokenizer
        config = GenerationConfig(
            do_sample=True, temperature=params.temperature, top_p=params.top_p,
            top_k=params.top_k if params.top_k > 0 else 0, max_new_tokens=params.max_new_tokens,
            pad_token_id=tok.pad_token_id, eos_token_id=sorted(self.eos_ids), use_cache=True,
        )
        # Grouped order: prompt i's n samples are contiguous (the GRPO group).
        flat = [i for i in range(len(prompts)) for _ in range(params.n)]
        was_training = model.training
        model.eval()
        out: list[Generation] = []
        for start in range(0, len(flat), self.batch_size):
            chunk = flat[start: start + self.batch_size]
            batch = tok.pad({"input_ids": [prompts[i] for i in chunk]}, return_tensors="pt")
            input_ids = batch["input_ids"].to(self.policy.device)
            mask = batch["attention_mask"].to(self.policy.device)
            seqs = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)
            for row, prompt_index in enumerate(chunk):
                ids, truncated = _cut_at_eos(seqs[row, input_ids.shape[1]:].tolist(), self.eos_ids)
                out.append(Generation(prompt_index, ids, truncated))
        model.train(was_training)
        return out
