"""Offline models: the local character tokenizer and the tiny Llama round-trip through a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from fipo_engine.config import ModelConfig, TinyModelConfig
from fipo_engine.models import build_char_tokenizer, load_hf_dir, load_policy, save_policy

TINY = ModelConfig(tiny=TinyModelConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=32, max_position_embeddings=64))


def test_char_tokenizer_is_deterministic_and_lossless() -> None:
    a, b = build_char_tokenizer(["ü + 1"]), build_char_tokenizer(["ü + 1"])
    assert a.get_vocab() == b.get_vocab()
    text = "Calculate -3 + ü.\nAnswer: 7"
    ids = a(text)["input_ids"]
    assert len(ids) == len(text)  # one token per character
    assert a.decode(ids) == text
    assert a.unk_token_id not in ids


def test_tiny_policy_saves_and_reloads_identically(tmp_path: Path) -> None:
    policy = load_policy(TINY, corpus=["1+1"], seed=4)
    same_seed = load_policy(TINY, corpus=["1+1"], seed=4)
    for x, y in zip(policy.model.parameters(), same_seed.model.parameters(), strict=True):
        assert torch.equal(x, y)  # the initial weights depend on the seed only
    save_policy(policy, tmp_path)
    reloaded = load_hf_dir(tmp_path)
    assert reloaded.tokenizer.padding_side == "left"
    assert reloaded.tokenizer("2+2")["input_ids"] == policy.tokenizer("2+2")["input_ids"]
    before, after = policy.model.state_dict(), reloaded.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("FIPO_SLOW_TESTS") != "1", reason="loads SmolLM2 (15 s+); set FIPO_SLOW_TESTS=1")
def test_smollm2_loads_and_saves_without_quantization_config(tmp_path: Path) -> None:
    policy = load_policy(ModelConfig(source="smollm2"))
    assert policy.chat and sum(p.numel() for p in policy.model.parameters()) > 100_000_000
    save_policy(policy, tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    assert "quantization_config" not in (tmp_path / "config.json").read_text()
