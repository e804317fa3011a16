"""The lean Llama forward (models/fast.py) against the Hugging Face model it replaces on the hot paths."""

from __future__ import annotations

import pytest
import torch
from transformers import GenerationConfig
from transformers.generation.logits_process import (
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from fipo_engine.config import ModelConfig, TinyModelConfig
from fipo_engine.models import fast, load_policy
from fipo_engine.rollout import HFRollout, SamplingParams
from fipo_engine.trainer.batch import pack, response_logprobs

TINY = ModelConfig(tiny=TinyModelConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=64, max_position_embeddings=96))


@pytest.fixture(scope="module")
def policy():
    policy = load_policy(TINY, corpus=["Calculate 12 - 3.\nAnswer: 9", "abcdefghijklmnopqrstuvwxyz"], seed=3)
    with torch.no_grad():  # sharper logits than the default init, so greedy decoding varies its tokens
        for p in policy.model.parameters():
            if p.dim() == 2:
                p.mul_(8.0)
    return policy


def _grouped_batch(policy, g: int = 3):
    tok = policy.tokenizer
    prompts = [tok(s)["input_ids"] for s in ["1+1=", "Calculate 12 - 3.", "xyz"]]  # different lengths
    gen = torch.Generator().manual_seed(0)
    responses = [torch.randint(5, 40, (int(torch.randint(1, 9, (), generator=gen)),), generator=gen).tolist()
                 for _ in range(len(prompts) * g)]
    return pack([p for p in prompts for _ in range(g)], responses, tok.pad_token_id)


def _hf_logits(model, packed):
    position_ids = (packed.attention_mask.cumsum(-1) - 1).clamp(min=0)
    p, length = packed.prompt_len, packed.response_len
    return model(input_ids=packed.input_ids, attention_mask=packed.attention_mask, position_ids=position_ids,
                 use_cache=False).logits[:, p - 1: p - 1 + length]


def test_tiny_llama_uses_the_fast_path(policy) -> None:
    assert fast.supported(policy.model) and not fast.checkpointed(policy.model)


def test_shared_prompt_forward_equals_the_full_forward_values_and_gradients(policy) -> None:
    model, packed = policy.model, _grouped_batch(policy)
    mask = packed.response_mask.bool()
    ref = _hf_logits(model, packed)
    got = fast.response_logits(model, packed.input_ids, packed.attention_mask, packed.prompt_len)
    torch.testing.assert_close(got[mask], ref[mask], rtol=1e-5, atol=1e-5)

    def hf_logprobs() -> torch.Tensor:
        targets = packed.input_ids[:, packed.prompt_len:]
        return _hf_logits(model, packed).log_softmax(-1).gather(-1, targets[..., None]).squeeze(-1)

    grads = []
    for logprobs in (hf_logprobs, lambda: response_logprobs(model, packed)[0]):  # the trainer's entry point
        model.zero_grad(set_to_none=True)
        (logprobs() * packed.response_mask).sum().backward()
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()})
    model.zero_grad(set_to_none=True)
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-4, msg=name)


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(1.0, 0, 1.0), (0.7, 0, 0.9), (1.3, 5, 0.5),
                                                             (1.0, 3, 1.0), (1.0, 0, 0.0)])
def test_warpers_match_transformers(temperature: float, top_k: int, top_p: float) -> None:
    logits = torch.randn(6, 40, generator=torch.Generator().manual_seed(1)) * 3
    logits[0, :4] = 2.0  # ties at the cut
    hf = LogitsProcessorList()
    if temperature != 1.0:
        hf.append(TemperatureLogitsWarper(temperature))
    if top_k:
        hf.append(TopKLogitsWarper(top_k))
    if top_p < 1.0:
        hf.append(TopPLogitsWarper(top_p))
    expected = hf(torch.zeros(6, 1, dtype=torch.long), logits.clone())
    torch.testing.assert_close(fast.warp_logits(logits, temperature, top_k, top_p), expected)


def test_greedy_sampling_matches_transformers_generate_with_eos_cut(policy) -> None:
    model, tok = policy.model, policy.tokenizer
    prompts = [tok(s)["input_ids"] for s in ["1+1=", "Calculate 12 - 3.", "xyz"]]
    rows = [0, 0, 1, 2, 2]
    batch = tok.pad({"input_ids": [prompts[i] for i in rows]}, return_tensors="pt")
    hf = model.generate(**batch, generation_config=GenerationConfig(
        do_sample=False, max_new_tokens=10, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))
    hf = hf[:, batch["input_ids"].shape[1]:].tolist()
    assert len({tuple(r) for r in hf}) > 1 and any(len(set(r)) > 1 for r in hf)  # a real test, not one token
    eos = hf[1][3]  # pretend a token the model emits mid-sequence is EOS: rows must stop right after it
    got = fast.sample(model, prompts, rows, temperature=0.0, top_k=0, top_p=1.0, max_new_tokens=10, eos_ids={eos})
    for (ids, truncated), ref in zip(got, hf, strict=True):
        cut = ref[: ref.index(eos) + 1] if eos in ref else ref
        assert ids == cut and truncated == (eos not in ref)
    # top_k = 1 sampling is greedy too
    sampled = fast.sample(model, prompts, rows, temperature=1.0, top_k=1, top_p=1.0, max_new_tokens=10,
                          eos_ids={eos})
    assert sampled == got


def test_rollout_fast_path_is_seeded_grouped_and_bounded(policy) -> None:
    tok = policy.tokenizer
    prompts = [tok("1+1=")["input_ids"], tok("Calculate 12 - 3.")["input_ids"]]
    rollout = HFRollout(policy, generation_batch_size=3)  # batches straddle groups
    params = SamplingParams(n=4, temperature=1.0, top_p=0.9, max_new_tokens=7)
    torch.manual_seed(5)
    first = rollout.generate(prompts, params)
    torch.manual_seed(5)
    assert rollout.generate(prompts, params) == first
    assert [g.prompt_index for g in first] == [0, 0, 0, 0, 1, 1, 1, 1]
    eos = tok.eos_token_id
    for g in first:
        assert 1 <= len(g.response_ids) <= 7
        assert g.truncated == (eos not in g.response_ids)
        assert eos not in g.response_ids[:-1]
    assert len({tuple(g.response_ids) for g in first}) > 1


def test_generation_can_be_interrupted(policy) -> None:
    rollout = HFRollout(policy, generation_batch_size=8)
    calls = []
    rollout.should_stop = lambda: calls.append(1) or len(calls) > 3
    with pytest.raises(fast.GenerationInterrupted):
        rollout.generate([policy.tokenizer("1+1=")["input_ids"]], SamplingParams(n=2, max_new_tokens=20))
