"""A lean forward pass for Llama-family decoders (Llama, Qwen2): the trainer's two hot paths.

Both compute exactly what the Hugging Face model computes (same modules, same weights, same rotary
embedding, real-token position ids under left padding); they only skip work the HF call cannot know
is redundant, and its per-call framework overhead, which dominates at small sizes:

1. ``response_logits`` (old and current log-probs): the G responses of a GRPO group share their
   prompt. The prompt goes through the network once per *distinct* prompt; each response row
   attends to its prompt's keys/values (indexed, so gradients from all G rows add up in the one
   prompt forward) and to its own causal prefix. Only the L response positions reach ``lm_head``.
   With prompts as long as the responses this removes almost half of the forward/backward work.
2. ``sample`` (rollout): a sampling loop with a preallocated KV cache (no per-token concatenation),
   one prefill per distinct prompt (copied to its n rows), rows that reached EOS dropped from the
   batch (the cache is compacted once a quarter of the rows have finished), and an early exit when
   every row is done. Temperature, top-k and top-p are applied in the order and with the
   tie/keep-one rules of transformers' warpers.

``supported(model)`` says whether a model can use this path; everything else falls back to the
plain Hugging Face calls (``trainer/batch.py``, ``rollout/hf.py``), as do models with gradient
checkpointing in the training forward.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

_ARCHITECTURES = {"LlamaForCausalLM", "Qwen2ForCausalLM"}


class GenerationInterrupted(Exception):
    """``sample`` was asked to stop (the trainer got SIGTERM); nothing it sampled is returned."""


def supported(model: torch.nn.Module) -> bool:
    """A Llama/Qwen2 causal LM with plain full attention and no attention dropout."""
    cfg = getattr(model, "config", None)
    return (type(model).__name__ in _ARCHITECTURES and cfg is not None
            and not getattr(cfg, "use_sliding_window", False)
            and float(getattr(cfg, "attention_dropout", 0.0) or 0.0) == 0.0
            and hasattr(getattr(model, "model", None), "rotary_emb"))


def checkpointed(model: torch.nn.Module) -> bool:
    """Gradient checkpointing is on (the training forward then keeps the HF path, which implements it)."""
    return bool(getattr(getattr(model, "model", None), "gradient_checkpointing", False))


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _qkv(layer: torch.nn.Module, h: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Queries, keys, values ``[B, heads, S, head_dim]`` of one decoder layer, rotary applied."""
    attn = layer.self_attn
    b, s, _ = h.shape
    x = layer.input_layernorm(h)
    q = attn.q_proj(x).view(b, s, -1, attn.head_dim).transpose(1, 2)
    k = attn.k_proj(x).view(b, s, -1, attn.head_dim).transpose(1, 2)
    v = attn.v_proj(x).view(b, s, -1, attn.head_dim).transpose(1, 2)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin, v


def _finish(layer: torch.nn.Module, h: Tensor, q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """Attention (boolean ``mask``: True = attend), output projection, residual, MLP, residual."""
    attn = layer.self_attn
    gqa = k.shape[1] != q.shape[1]
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=attn.scaling, enable_gqa=gqa)
    h = h + attn.o_proj(o.transpose(1, 2).reshape(h.shape[0], h.shape[1], -1))
    return h + layer.mlp(layer.post_attention_layernorm(h))


def _prompt_mask(valid: Tensor) -> Tensor:
    """``[U, 1, P, P]``: causal over real tokens; a padding query sees only itself (no empty rows, no NaN)."""
    p = valid.shape[1]
    causal = torch.ones(p, p, dtype=torch.bool, device=valid.device).tril()
    eye = torch.eye(p, dtype=torch.bool, device=valid.device)
    return (causal & (valid[:, None, :] | eye))[:, None]


def _unique_prompts(prompt_ids: Tensor, prompt_valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Distinct left-padded prompts: ``ids[U, P]``, ``valid[U, P]`` and each row's index into them ``[N]``."""
    keyed = torch.where(prompt_valid, prompt_ids, torch.full_like(prompt_ids, -1))
    uniq, inverse = torch.unique(keyed, dim=0, return_inverse=True)
    valid = uniq >= 0
    return uniq.clamp(min=0), valid, inverse


def response_logits(model: torch.nn.Module, input_ids: Tensor, attention_mask: Tensor, prompt_len: int) -> Tensor:
    """Logits ``[N, L, V]`` predicting response token t (column ``prompt_len + t``) of a packed batch.

    Layout as ``trainer/batch.py``: prompts left-padded to ``P = prompt_len``, responses right-padded.
    Equal to ``model(input_ids, attention_mask, position_ids).logits[:, P-1:P-1+L]`` up to float
    rounding; gradients flow to the weights the same way (the prompt pass is shared by its rows).
    """
    core = model.model
    p = prompt_len
    prompt_ids, prompt_valid = input_ids[:, :p], attention_mask[:, :p].bool()
    response = input_ids[:, p:]
    n, length = response.shape
    uniq, valid, inverse = _unique_prompts(prompt_ids, prompt_valid)
    prompt_pos = (valid.long().cumsum(-1) - 1).clamp(min=0)
    response_pos = valid.sum(-1)[inverse][:, None] + torch.arange(length, device=input_ids.device)

    hp = core.embed_tokens(uniq)                  # [U, P, H]
    hr = core.embed_tokens(response)              # [N, L, H]
    cos_p, sin_p = core.rotary_emb(hp, prompt_pos)
    cos_r, sin_r = core.rotary_emb(hr, response_pos)
    mask_p = _prompt_mask(valid)
    causal = torch.ones(length, length, dtype=torch.bool, device=input_ids.device).tril()
    mask_r = torch.cat([valid[inverse][:, None, :].expand(n, length, p), causal.expand(n, length, length)],
                       dim=-1)[:, None]           # [N, 1, L, P+L]
    for layer in core.layers[: model.config.num_hidden_layers]:
        q, k, v = _qkv(layer, hp, cos_p, sin_p)
        hp_next = _finish(layer, hp, q, k, v, mask_p)
        qr, kr, vr = _qkv(layer, hr, cos_r, sin_r)
        hr = _finish(layer, hr, qr, torch.cat([k[inverse], kr], dim=2), torch.cat([v[inverse], vr], dim=2), mask_r)
        hp = hp_next
    before = torch.cat([hp[:, -1:][inverse], hr[:, :-1]], dim=1)  # the hidden state that predicts token t
    return model.lm_head(core.norm(before))


def warp_logits(logits: Tensor, temperature: float, top_k: int, top_p: float) -> Tensor:
    """transformers' sampling warpers, same order and rules: temperature, top-k, top-p (keep >= 1 token)."""
    if temperature != 1.0:
        logits = logits / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False)
        remove = sorted_logits.softmax(-1).cumsum(-1) <= (1 - top_p)
        remove[..., -1] = False
        logits = logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    return logits


def _next_tokens(logits: Tensor, temperature: float, top_k: int, top_p: float) -> Tensor:
    if temperature <= 0:
        return logits.argmax(-1)
    probs = warp_logits(logits.float(), temperature, top_k, top_p).softmax(-1)
    return torch.multinomial(probs, 1).squeeze(1)


@torch.inference_mode()
def sample(model: torch.nn.Module, prompts: Sequence[Sequence[int]], rows: Sequence[int], *, temperature: float,
           top_k: int, top_p: float, max_new_tokens: int, eos_ids: set[int],
           should_stop: Callable[[], bool] | None = None) -> list[tuple[list[int], bool]]:
    """Sample one response per entry of ``rows`` (an index into ``prompts``) with the global torch RNG.

    Returns ``(token ids up to and including the first EOS, truncated)`` per row, in order.
    """
    core = model.model
    device = next(model.parameters()).device
    order = list(dict.fromkeys(rows))                       # distinct prompts, first-seen order
    where = {prompt: i for i, prompt in enumerate(order)}
    inverse = torch.tensor([where[r] for r in rows], device=device)
    p = max(len(prompts[i]) for i in order)
    ids = torch.zeros(len(order), p, dtype=torch.long, device=device)
    valid = torch.zeros(len(order), p, dtype=torch.bool, device=device)
    for u, i in enumerate(order):
        if prompts[i]:
            ids[u, p - len(prompts[i]):] = torch.tensor(prompts[i], dtype=torch.long, device=device)
            valid[u, p - len(prompts[i]):] = True
    b, t_max = len(rows), max_new_tokens
    span = p + t_max
    layers = core.layers[: model.config.num_hidden_layers]

    # prefill: one forward per distinct prompt, keys/values copied to each of its rows
    h = core.embed_tokens(ids)
    cos, sin = core.rotary_emb(h, (valid.long().cumsum(-1) - 1).clamp(min=0))
    mask = _prompt_mask(valid)
    cache: list[tuple[Tensor, Tensor]] = []
    for layer in layers:
        q, k, v = _qkv(layer, h, cos, sin)
        kc = k.new_empty(b, k.shape[1], span, k.shape[3])
        vc = v.new_empty(b, v.shape[1], span, v.shape[3])
        kc[:, :, :p], vc[:, :, :p] = k[inverse], v[inverse]
        cache.append((kc, vc))
        h = _finish(layer, h, q, k, v, mask)
    logits = model.lm_head(core.norm(h[:, -1]))[inverse]  # [B, V]
    key_valid = torch.zeros(b, span, dtype=torch.bool, device=device)
    key_valid[:, :p] = valid[inverse]
    position = valid.sum(-1)[inverse]                       # next real position of each row
    eos = torch.tensor(sorted(eos_ids), device=device)

    out = torch.zeros(b, t_max, dtype=torch.long, device=device)
    length = torch.full((b,), t_max, dtype=torch.long, device=device)
    stopped = torch.zeros(b, dtype=torch.bool, device=device)   # output row ended with EOS
    slot = torch.arange(b, device=device)    # output row held by each batch row of the cache
    live = torch.ones(b, dtype=torch.bool, device=device)  # batch rows still generating
    for t in range(t_max):
        if should_stop is not None and should_stop():
            raise GenerationInterrupted
        tokens = _next_tokens(logits, temperature, top_k, top_p)
        out[slot[live], t] = tokens[live]
        finished = live & torch.isin(tokens, eos)
        length[slot[finished]] = t + 1
        stopped[slot[finished]] = True
        live &= ~finished
        n_live = int(live.sum())
        if n_live == 0 or t == t_max - 1:
            break
        if len(slot) - n_live >= max(1, len(slot) // 4):  # compact: drop finished rows from the batch
            keep = live.nonzero().squeeze(1)
            cache = [(kc[keep], vc[keep]) for kc, vc in cache]
            slot, tokens, position, key_valid, live = slot[keep], tokens[keep], position[keep], key_valid[keep], live[keep]
        key_valid[:, p + t] = True
        h = core.embed_tokens(tokens[:, None])
        cos, sin = core.rotary_emb(h, (position + t)[:, None])
        mask = key_valid[:, None, None, : p + t + 1]
        for layer, (kc, vc) in zip(layers, cache, strict=True):
            q, k, v = _qkv(layer, h, cos, sin)
            kc[:, :, p + t], vc[:, :, p + t] = k[:, :, 0], v[:, :, 0]
            h = _finish(layer, h, q, kc[:, :, : p + t + 1], vc[:, :, : p + t + 1], mask)
        logits = model.lm_head(core.norm(h[:, -1]))
    return [(row[:n], not s) for row, n, s in zip(out.tolist(), length.tolist(), stopped.tolist(), strict=True)]
