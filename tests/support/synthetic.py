"""Synthetic but realistic-looking samples and metric streams for the browser tests and benches.

A chain of thought of ``n`` tokens with every per-token channel of the catalog
(``fipo_engine.token_channels``, in its order), computed the way
the trainer computes them (ratio = exp(logprob - old_logprob); future-KL = discounted suffix sum of
the log-ratio with half-life tau; influence = exp(F) clipped to [1, 1.2]; weighted advantage =
advantage x influence), so the heatmap shows the structure real runs have: long smooth stretches,
a few hot spots. Nothing here touches Django; it only builds tracking-protocol events.
"""

from __future__ import annotations

import math
import random
from typing import Any

from fipo_engine import token_channels

_WORDS = ("the", "so", "we", "get", "let", "x", "=", "+", "-", "*", "2", "3", "7", "10", "sum", "of", "is",
          "then", "check", "wait", "answer", "square", "root", "factor", "\\frac{1}{2}", "(", ")", ",", ".",
          "therefore", "prime", "mod", "case", "if", "not", "hmm", "again", "boxed")


def synthetic_sample(n_tokens: int, *, seed: int = 0, tau: float = 32.0) -> dict[str, Any]:
    """``{"tokens": [...], "<channel>": [...]}`` for one response of ``n_tokens`` tokens."""
    rng = random.Random(seed)
    tokens: list[str] = []
    for i in range(n_tokens):
        word = rng.choice(_WORDS)
        tokens.append(("\n" if i and rng.random() < 0.04 else " ") + word if i else word)
    old_lp = [-abs(rng.gauss(0.6, 0.7)) for _ in range(n_tokens)]
    drift = [0.0] * n_tokens
    for _ in range(max(1, n_tokens // 1500)):  # a few regions where the policy moved
        centre, width, amp = rng.randrange(n_tokens), rng.randint(20, 400), rng.uniform(-0.25, 0.35)
        for j in range(max(0, centre - width), min(n_tokens, centre + width)):
            drift[j] += amp * math.exp(-((j - centre) / width) ** 2)
    logprob = [o + d + rng.gauss(0, 0.02) for o, d in zip(old_lp, drift, strict=True)]
    log_ratio = [lp - o for lp, o in zip(logprob, old_lp, strict=True)]
    gamma = 2.0 ** (-1.0 / tau)
    future_kl = [0.0] * n_tokens
    acc = 0.0
    for j in range(n_tokens - 1, -1, -1):  # F_t = sum_{k >= t} gamma^(k-t) * log_ratio_k
        acc = log_ratio[j] + gamma * acc
        future_kl[j] = acc
    advantage = 1.0 if seed % 2 == 0 else -1.0
    influence = [min(1.2, max(1.0, math.exp(f))) for f in future_kl]
    computed: dict[str, list[float | None]] = {
        "logprob": logprob,
        "old_logprob": old_lp,
        "log_ratio": log_ratio,
        "ratio": [math.exp(r) for r in log_ratio],
        "future_kl": future_kl,
        "influence": influence,
        "advantage": [advantage] * n_tokens,
        "weighted_advantage": [advantage * w for w in influence],
        "entropy": [abs(rng.gauss(0.8, 0.5)) for _ in range(n_tokens)],
    }
    # the last position carries no old log-prob (e.g. an EOS the sampler did not score)
    computed["old_logprob"][-1] = None
    missing = set(token_channels.NAMES) - computed.keys()
    if missing:  # a channel added to the catalog needs a synthetic version here too
        raise KeyError(f"no synthetic values for catalog channels {sorted(missing)}")
    return {"tokens": tokens, **{name: computed[name] for name in token_channels.NAMES}}


def sample_event(seq: int, *, step: int, index: int, n_tokens: int, seed: int = 0) -> dict[str, Any]:
    """A tracking-protocol ``sample`` event (docs/api-contract.md)."""
    body = synthetic_sample(n_tokens, seed=seed)
    reward = 1.0 if seed % 2 == 0 else -1.0
    return {"seq": seq, "type": "sample", "step": step, "index": index,
            "prompt": f"Problem {index}: compute the sum of the first {n_tokens} primes modulo 7.",
            "response": "".join(body["tokens"]), "reward": reward, "correct": reward > 0, **body}


def metric_values(step: int, keys: list[str], *, seed: int = 0, scale: float = 40.0) -> dict[str, float]:
    """Plausible values of catalog keys at a step: a saturating trend with noise, sized by unit
    (lengths in the thousands of tokens, fractions in [0, 1], rewards in [-1, 1], ...)."""
    from fipo_engine.metrics_catalog import get

    rng = random.Random(seed * 1_000_003 + step)
    trend = 1 - math.exp(-step / scale)
    out = {}
    for key in keys:
        metric = get(key)
        unit = metric.unit if metric else ""
        noise = rng.gauss(0, 1)
        if unit == "tokens":
            value = 900 + 2600 * trend * (1 + 0.1 * seed) + 60 * noise
        elif unit == "fraction":
            value = min(1.0, max(0.0, 0.25 + 0.4 * trend - 0.05 * seed + 0.03 * noise))
        elif unit == "score":
            value = -0.5 + 1.1 * trend - 0.1 * seed + 0.06 * noise
        elif unit == "nats":
            value = 0.9 - 0.35 * trend + 0.04 * noise
        else:
            value = trend + 0.05 * noise
        out[key] = round(value, 6)
    return out
