"""The vLLM rollout backend up to the vLLM call, on CPU.

vLLM needs a GPU, so the engine is replaced at exactly the vLLM boundary by a stand-in with vLLM's
offline-API shape (``generate(requests, sampling, use_tqdm)`` returning request outputs in input
order, ``apply_model(fn)``, ``reset_prefix_cache()``, a model with ``load_weights(iterable)``).
The stand-in loads the directory our backend exports with transformers, so the export is real, and
it samples with that model, so the token plumbing is exercised end to end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, GenerationConfig

from fipo_engine.config import ModelConfig
from fipo_engine.models.loader import build_tiny
from fipo_engine.rollout import SamplingParams, make_rollout
from fipo_engine.rollout.vllm import VLLMRollout, sampling_kwargs, to_generation


class _VLLMModel(torch.nn.Module):
    """vLLM's model surface that our sync uses: ``load_weights(iterable of (hf_name, tensor))``."""

    def __init__(self, hf: torch.nn.Module) -> None:
        super().__init__()
        self.hf = hf
        self.loaded: list[str] = []

    def load_weights(self, weights) -> None:
        named = dict(weights)
        self.loaded = list(named)
        self.hf.load_state_dict(named, strict=True)


@dataclass
class StandInLLM:
    """The offline ``vllm.LLM`` surface, backed by a transformers model read from the exported dir."""

    model_dir: str
    calls: list[tuple] = field(default_factory=list)
    prefix_resets: int = 0

    def __post_init__(self) -> None:
        self.model = _VLLMModel(AutoModelForCausalLM.from_pretrained(self.model_dir))

    def apply_model(self, fn):
        return [fn(self.model)]

    def reset_prefix_cache(self) -> None:
        self.prefix_resets += 1

    @torch.no_grad()
    def generate(self, requests, sampling, use_tqdm=True):
        self.calls.append((requests, sampling))
        kw = sampling.kwargs
        outputs = []
        for req in requests:
            ids = torch.tensor([req["prompt_token_ids"]])
            config = GenerationConfig(do_sample=True, temperature=kw["temperature"], top_p=kw["top_p"],
                                      max_new_tokens=kw["max_tokens"], eos_token_id=kw["stop_token_ids"],
                                      num_return_sequences=kw["n"], pad_token_id=kw["stop_token_ids"][0])
            seqs = self.model.hf.generate(input_ids=ids, generation_config=config)[:, ids.shape[1]:]
            completions = []
            for row in seqs.tolist():
                stop = next((i for i, t in enumerate(row) if t in kw["stop_token_ids"]), None)
                if stop is None:
                    completions.append(SimpleNamespace(token_ids=row, finish_reason="length", stop_reason=None))
                else:  # vLLM reports the stop token in stop_reason and does not echo it
                    completions.append(SimpleNamespace(token_ids=row[:stop], finish_reason="stop",
                                                       stop_reason=row[stop]))
            outputs.append(SimpleNamespace(outputs=completions))
        return outputs


class StandInSamplingParams:
    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs


@pytest.fixture
def policy():
    cfg = ModelConfig(tiny={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                            "intermediate_size": 64, "max_position_embeddings": 64})
    return build_tiny(cfg, ["1+2=3", "4+5=9"], seed=0)


@pytest.fixture
def rollout(policy, monkeypatch):
    holder = {}

    def engine_from_dir(model_dir, **_):
        holder["engine"] = StandInLLM(str(model_dir))
        return holder["engine"]

    monkeypatch.setattr("fipo_engine.rollout.vllm._default_engine", engine_from_dir)
    backend = VLLMRollout(policy, 8, sampling_cls=StandInSamplingParams)
    yield backend
    backend.close()


def test_sampling_params_map_to_vllm() -> None:
    params = SamplingParams(n=16, temperature=1.0, top_p=0.7, top_k=-1, max_new_tokens=20480)
    kw = sampling_kwargs(params, {2, 7})
    assert kw == {"n": 16, "temperature": 1.0, "top_p": 0.7, "top_k": -1, "max_tokens": 20480,
                  "stop_token_ids": [2, 7], "detokenize": False, "skip_special_tokens": False}
    assert sampling_kwargs(SamplingParams(top_k=5), {2})["top_k"] == 5
    assert sampling_kwargs(SamplingParams(top_k=0), {2})["top_k"] == -1


def test_completion_to_generation_keeps_eos_and_flags_truncation() -> None:
    assert to_generation(3, [5, 6], "stop", 2, {2}).response_ids == [5, 6, 2]  # stop token not echoed
    assert to_generation(3, [5, 6, 2], "stop", 2, {2}).response_ids == [5, 6, 2]  # echoed: not doubled
    cut = to_generation(1, [5, 6, 7], "length", None, {2})
    assert (cut.prompt_index, cut.response_ids, cut.truncated) == (1, [5, 6, 7], True)
    assert to_generation(0, [5], "stop", "</s>", {2}).response_ids == [5]  # a stop *string*: nothing to add


def test_export_is_a_loadable_hf_model_with_the_policy_weights(rollout, policy) -> None:
    engine = rollout.engine
    theirs = engine.model.hf.state_dict()
    for name, tensor in policy.model.state_dict().items():
        assert torch.equal(theirs[name], tensor), name


def test_generate_groups_n_samples_per_prompt_in_order(rollout, policy) -> None:
    prompts = [policy.tokenizer("1+2=")["input_ids"], policy.tokenizer("4+5=")["input_ids"]]
    params = SamplingParams(n=3, temperature=1.0, top_p=1.0, max_new_tokens=5)
    gens = rollout.generate(prompts, params)
    assert [g.prompt_index for g in gens] == [0, 0, 0, 1, 1, 1]
    requests, sampling = rollout.engine.calls[-1]
    assert requests == [{"prompt_token_ids": p} for p in prompts]  # token ids go in as they are
    assert sampling.kwargs == sampling_kwargs(params, rollout.eos_ids)
    eos = rollout.eos_ids
    for g in gens:
        assert 1 <= len(g.response_ids) <= 5 + 1
        assert g.truncated == (g.response_ids[-1] not in eos)
        assert all(t not in eos for t in g.response_ids[:-1])


def test_sync_weights_after_an_update_makes_vllm_sample_from_the_new_policy(rollout, policy) -> None:
    engine = rollout.engine
    with torch.no_grad():  # an optimizer step, in effect
        for p in policy.model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    name, tensor = next(iter(policy.model.state_dict().items()))
    assert not torch.equal(engine.model.hf.state_dict()[name], tensor)  # vLLM still has the old weights
    rollout.sync_weights()
    synced = engine.model.hf.state_dict()
    for key, value in policy.model.state_dict().items():
        assert torch.equal(synced[key], value), key
    assert engine.model.loaded == list(policy.model.state_dict())  # HF names, all of them, once
    assert (rollout.syncs, engine.prefix_resets) == (1, 1)


def test_make_rollout_selects_vllm(policy, monkeypatch) -> None:
    monkeypatch.setattr("fipo_engine.rollout.vllm._default_engine", lambda d, **_: StandInLLM(str(d)))
    monkeypatch.setattr("fipo_engine.rollout.vllm._default_sampling_cls", lambda: StandInSamplingParams)
    backend = make_rollout("vllm", policy, 4)
    try:
        assert isinstance(backend, VLLMRollout)
    finally:
        backend.close()
