"""Turn sampled responses into padded tensors and compute per-token log-probs and entropy.

Layout of a packed batch (N sequences): ``input_ids[N, P + L]`` with prompts left-padded to P and
responses right-padded to L, so response token t of every row sits at column P + t and its
log-prob comes from the logits at column P + t - 1. ``response_mask[N, L]`` is 1 on real response
tokens (EOS included). Position ids count real tokens only, so left padding changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fipo_engine.models import fast


@dataclass
class Packed:
    input_ids: Tensor       # [N, P+L]
    attention_mask: Tensor  # [N, P+L]
    response_mask: Tensor   # [N, L] float
    prompt_len: int         # P

    @property
    def response_len(self) -> int:
        return self.response_mask.shape[1]


def pack(prompts: list[list[int]], responses: list[list[int]], pad_id: int) -> Packed:
    n = len(prompts)
    p_len = max(len(p) for p in prompts)
    r_len = max(1, max(len(r) for r in responses))
    input_ids = torch.full((n, p_len + r_len), pad_id, dtype=torch.long)
    attention = torch.zeros((n, p_len + r_len), dtype=torch.long)
    response_mask = torch.zeros((n, r_len), dtype=torch.float32)
    for i, (p, r) in enumerate(zip(prompts, responses, strict=True)):
        input_ids[i, p_len - len(p): p_len] = torch.tensor(p, dtype=torch.long)
        attention[i, p_len - len(p): p_len] = 1
        if r:
            input_ids[i, p_len: p_len + len(r)] = torch.tensor(r, dtype=torch.long)
            attention[i, p_len: p_len + len(r)] = 1
            response_mask[i, : len(r)] = 1.0
    return Packed(input_ids, attention, response_mask, p_len)


def select(packed: Packed, rows: Tensor) -> Packed:
    """Rows of a packed batch, trimmed to the columns they use (less compute for short micro-batches)."""
    attention = packed.attention_mask[rows]
    response_mask = packed.response_mask[rows]
    used = attention[:, : packed.prompt_len].any(0).nonzero()
    left = int(used[0]) if len(used) else packed.prompt_len - 1
    r_len = max(1, int(response_mask.sum(1).max().item()))
    right = packed.prompt_len + r_len
    return Packed(packed.input_ids[rows, left:right], attention[:, left:right], response_mask[:, :r_len],
                  packed.prompt_len - left)


def response_logprobs(model: torch.nn.Module, packed: Packed, *, with_entropy: bool = False,
                      entropy_grad: bool = False) -> tuple[Tensor, Tensor | None]:
    """``log_prob[N, L]`` of the response tokens (with grad if enabled) and ``entropy[N, L]``.

    The entropy is detached unless ``entropy_grad`` (an entropy bonus in the loss needs its gradient).
    """
    device = next(model.parameters()).device
    input_ids = packed.input_ids.to(device)
    attention = packed.attention_mask.to(device)
    p, length = packed.prompt_len, packed.response_len
    if fast.supported(model) and not (torch.is_grad_enabled() and fast.checkpointed(model)):
        # one prompt forward per distinct prompt, logits only at response positions (models/fast.py)
        logits = fast.response_logits(model, input_ids, attention, p).float()  # [N, L, V]
    else:
        position_ids = (attention.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=input_ids, attention_mask=attention, position_ids=position_ids,
                       use_cache=False).logits[:, p - 1: p - 1 + length].float()  # [N, L, V]
    logp_all = torch.log_softmax(logits, dim=-1)
    targets = input_ids[:, p: p + length]
    log_prob = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # [N, L]
    entropy = None
    if with_entropy:
        with torch.set_grad_enabled(entropy_grad and torch.is_grad_enabled()):
            entropy = -(logp_all.exp() * logp_all).sum(-1)
    return log_prob, entropy
