"""The reward-function file, loaded by path and called the way OpenRLHF 0.11.2 does (one-element lists)."""

from __future__ import annotations

import importlib.util
import json

import torch

import fipo_engine.integrations.openrlhf.reward_func as shipped
from fipo_engine.config import apply_overrides, preset


def load_like_openrlhf():
    """``SingleTurnAgentExecutor``: spec_from_file_location("reward_func", path) + exec_module."""
    spec = importlib.util.spec_from_file_location("reward_func", shipped.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reward_func


PROMPT = "<|im_start|>user\nWhat is 3/6?<|im_end|>\n<|im_start|>assistant\n"


def test_math_answers_from_dapo_labels(monkeypatch) -> None:
    monkeypatch.delenv("FIPO_CONFIG_JSON", raising=False)
    reward_func = load_like_openrlhf()
    right = reward_func([PROMPT + "Half of it: \\boxed{\\frac{1}{2}}<|im_end|>"], [PROMPT],
                        [{"ground_truth": "0.5", "style": "rule"}])
    wrong = reward_func([PROMPT + "\\boxed{2}<|im_end|>"], [PROMPT], ['{"ground_truth": "1/2"}'])
    missing = reward_func([PROMPT + "no box here"], [PROMPT], ["1/2"])
    assert torch.equal(right["rewards"], torch.tensor([1.0])) and torch.equal(right["scores"], torch.tensor([1.0]))
    assert torch.equal(wrong["rewards"], torch.tensor([-1.0])) and torch.equal(wrong["scores"], torch.tensor([0.0]))
    assert missing["rewards"].item() == -1.0 and missing["extra_logs"]["accuracy"].item() == 0.0


def test_grader_and_scores_come_from_the_run_config(monkeypatch) -> None:
    cfg = apply_overrides(preset("fipo-32b"), {"reward.name": "exact", "reward.incorrect_score": 0.0})
    monkeypatch.setenv("FIPO_CONFIG_JSON", json.dumps(cfg.model_dump(mode="json")))
    reward_func = load_like_openrlhf()  # a fresh module, as in each vLLM engine: reads the env once
    out = reward_func(["Q: say ok\nAnswer: ok", "Q: say ok\nAnswer: no"], ["Q: say ok\n", "Q: say ok\n"],
                      ["ok", "ok"])
    assert out["rewards"].tolist() == [1.0, 0.0] and out["scores"].tolist() == [1.0, 0.0]
