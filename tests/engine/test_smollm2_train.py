"""One real training step of SmolLM2-135M-Instruct (the ``smollm2-arith`` preset, shrunk to one step).

Slow (loads the GGUF twice and generates with a 135M model on the CPU: about a minute on an idle
2-core machine), so it runs only with ``FIPO_SLOW_TESTS=1``, like the loader test in test_models.py.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fipo_engine.config import ModelConfig, apply_overrides, preset
from fipo_engine.models import load_policy
from fipo_engine.tracking import Spool
from fipo_engine.trainer.loop import train

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(os.environ.get("FIPO_SLOW_TESTS") != "1",
                       reason="trains SmolLM2 for a step (minutes on a busy CPU); set FIPO_SLOW_TESTS=1"),
]


def test_one_real_smollm2_step_moves_the_weights_and_logs_a_readable_sample(tmp_path: Path) -> None:
    cfg = apply_overrides(preset("smollm2-arith"), {
        "trainer.total_steps": 1, "trainer.train_batch_size": 2, "trainer.gen_batch_size": 2,
        "trainer.ppo_mini_batch_size": 1, "trainer.eval_every": 0, "trainer.save_every": 1,
        "trainer.log_samples": 2, "trainer.device": "cpu",
        # Only the gradient may move the weights (AdamW's decay would move them even with zero advantages),
        # and the overlong penalty spreads the scores of a group even when its answers agree.
        "trainer.weight_decay": 0.0, "trainer.dynamic_sampling": False,
        "rollout.n": 4, "rollout.max_new_tokens": 48, "reward.overlong_buffer": {"enable": True, "length": 40}})
    result = train(cfg, tmp_path, progress=False)

    (step,) = result.history
    assert step["actor/grad_norm"] > 0 and math.isfinite(step["actor/pg_loss"])
    before = load_policy(ModelConfig(source="smollm2")).model.state_dict()
    after = load_file(result.last_checkpoint / "model" / "model.safetensors")
    changed = [k for k in after if not torch.equal(after[k], before[k])]
    assert len(changed) > len(after) // 2, f"only {len(changed)} of {len(after)} tensors changed"

    samples = [e for e in Spool(tmp_path).events() if e["type"] == "sample"]
    assert len(samples) == 2
    for sample in samples:
        assert "<|im_start|>user" in sample["prompt"] and "\\boxed{number}" in sample["prompt"]  # the chat template
        response, tokens = sample["response"], sample["tokens"]
        assert sum(ch.isalnum() for ch in response) >= 3  # words or numbers, not byte soup
        assert "".join(tokens).replace("<|im_end|>", "").strip() == response.strip()  # tokens spell the text
        for channel in ("logprob", "old_logprob", "ratio", "future_kl", "influence", "advantage", "entropy"):
            assert len(sample[channel]) == len(tokens), channel
        assert all(v <= 0 for v in sample["logprob"]) and any(v < 0 for v in sample["logprob"])
