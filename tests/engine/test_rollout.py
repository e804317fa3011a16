"""The transformers rollout backend: grouped samples, EOS handling, seeded sampling."""

from __future__ import annotations

import torch

from fipo_engine.config import ModelConfig, TinyModelConfig
from fipo_engine.models import load_policy
from fipo_engine.rollout import HFRollout, SamplingParams
from fipo_engine.rollout.hf import _cut_at_eos

TINY = ModelConfig(tiny=TinyModelConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=32, max_position_embeddings=64))


def test_cut_at_first_eos_keeps_the_eos() -> None:
    assert _cut_at_eos([5, 6, 2, 7, 2], {2}) == ([5, 6, 2], False)
    assert _cut_at_eos([5, 6, 7], {2}) == ([5, 6, 7], True)


def test_generate_returns_n_grouped_samples_per_prompt_reproducibly() -> None:
    policy = load_policy(TINY, seed=0)
    tok = policy.tokenizer
    prompts = [tok("1+1=")["input_ids"], tok("Calculate 12 - 3.")["input_ids"]]  # different lengths
    rollout = HFRollout(policy, generation_batch_size=3)  # batches straddle groups
    params = SamplingParams(n=4, temperature=1.0, max_new_tokens=6)
    torch.manual_seed(1)
    first = rollout.generate(prompts, params)
    torch.manual_seed(1)
    second = rollout.generate(prompts, params)
    assert [g.prompt_index for g in first] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert first == second
    for g in first:
        assert 1 <= len(g.response_ids) <= 6
        assert g.truncated == (tok.eos_token_id not in g.response_ids)
    assert len({tuple(g.response_ids) for g in first}) > 1  # it samples
