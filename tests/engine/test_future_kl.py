"""future_kl (docs/spec.md §3 steps 1-5, §4): the blocked scan against loops and the O(L²) definition."""

from __future__ import annotations

import math
import random

import pytest
import torch

from fipo_engine.algorithms import future_kl
from fipo_engine.algorithms.future_kl import (
    discounted_future_sum,
    discounted_suffix_sum,
    gamma_from_decay_rate,
)
from tests.engine.test_losses_reference import ref_future_kl


def loop_suffix_sum(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """F_t = x_t + γ·F_{t+1} in float64 with Python floats (the O(L) recurrence of §3 step 5)."""
    out = []
    for row in x.double().tolist():
        acc, rev = 0.0, []
        for v in reversed(row):
            acc = v + gamma * acc
            rev.append(acc)
        out.append(rev[::-1])
    return torch.tensor(out, dtype=torch.float64).reshape(x.shape)


def official_chunked(kl: torch.Tensor, gamma: float, chunk: int = 128) -> torch.Tensor:
    """The official formulation: O(L²) decay matrix applied in column chunks (written from the spec)."""
    _, length = kl.shape
    out = torch.zeros_like(kl)
    rows = torch.arange(length)[:, None]
    for start in range(0, length, chunk):
        cols = torch.arange(start, min(length, start + chunk))[None, :]
        dist = cols - rows
        decay = torch.pow(torch.tensor(gamma, dtype=kl.dtype), dist.clamp(min=0)) * (dist >= 0).to(kl.dtype)
        out += kl[:, start:start + chunk] @ decay.t()
    return out


@pytest.mark.parametrize("length", [0, 1, 2, 63, 64, 65, 127, 128, 129, 500, 4097])
@pytest.mark.parametrize("decay_rate", [1.0, 2.5, 32.0, 1e9])
def test_blocked_scan_matches_the_recurrence(length: int, decay_rate: float) -> None:
    gen = torch.Generator().manual_seed(length)
    x = torch.randn(3, length, generator=gen, dtype=torch.float64)
    gamma = gamma_from_decay_rate(decay_rate)
    want = loop_suffix_sum(x, gamma)
    for block in (8, 64, 128):
        torch.testing.assert_close(discounted_suffix_sum(x, gamma, block=block), want, rtol=1e-12, atol=1e-11)
    torch.testing.assert_close(discounted_suffix_sum(x.float(), gamma).double(), want, rtol=1e-5, atol=1e-5)


def test_float32_matches_the_official_chunked_matmul_and_is_at_least_as_accurate() -> None:
    gen = torch.Generator().manual_seed(5)
    x = 0.3 * torch.randn(2, 1000, generator=gen)
    for decay_rate in (1.0, 32.0, 1e9):
        gamma = gamma_from_decay_rate(decay_rate)
        ours, official = discounted_suffix_sum(x, gamma), official_chunked(x, gamma)
        assert ours.dtype == torch.float32
        exact = loop_suffix_sum(x, gamma)
        # the official float32 sums drift as |F| grows (γ ≈ 1); ours rounds about once per value
        assert (ours.double() - exact).abs().max() <= (official.double() - exact).abs().max() + 1e-6
        if decay_rate <= 32.0:
            torch.testing.assert_close(ours, official, rtol=0, atol=1e-5)


@pytest.mark.parametrize("decay_rate", [1.0, 32.0, 1e9])
def test_float32_is_stable_for_l_32768(decay_rate: float) -> None:
    """§11.4: L up to 32k and any τ ≥ 1, within 1e-5 of a float64 loop (|F| stays below 2^6 here)."""
    gen = torch.Generator().manual_seed(32768)
    delta = 0.2 * torch.randn(2, 32768, generator=gen)
    mask = torch.ones_like(delta, dtype=torch.bool)
    mask[1, 30000:] = False
    got = future_kl(delta, torch.zeros_like(delta), mask, decay_rate=decay_rate, clip_ratio_c=10.0)
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    want = loop_suffix_sum(torch.where(mask, delta, 0.0), gamma_from_decay_rate(decay_rate))
    assert (got.double() - want).abs().max().item() <= 1e-5


def random_case(seed: int):
    rng = random.Random(seed)
    n_rows, length = rng.randint(1, 4), rng.randint(1, 70)
    log_prob = torch.tensor([[rng.gauss(-1, 1) for _ in range(length)] for _ in range(n_rows)], dtype=torch.float64)
    delta = torch.tensor([[rng.choice([rng.gauss(0, 0.7), 3.0, 25.0, -25.0]) if rng.random() < 0.1
                           else rng.gauss(0, 0.7) for _ in range(length)] for _ in range(n_rows)], dtype=torch.float64)
    lengths = [rng.randint(0, length) for _ in range(n_rows)]
    mask = torch.tensor([[t < n and rng.random() > 0.15 for t in range(length)] for n in lengths])
    garbage = torch.where(mask, log_prob + delta, torch.tensor(float("nan"), dtype=torch.float64))
    adv = torch.tensor([[rng.choice([-1.0, 1.0])] * length for _ in range(n_rows)], dtype=torch.float64)
    return garbage, log_prob, mask, adv


def reference(log_prob, old, mask, adv, *, filter_mode: str, **kw) -> list[list[float]]:
    x = []
    for b in range(log_prob.shape[0]):
        row = []
        for t in range(log_prob.shape[1]):
            if not mask[b, t]:
                row.append(0.0)
                continue
            d = max(-20.0, min(20.0, float(log_prob[b, t] - old[b, t])))
            high = d > math.log(10.0)
            drop = {"all_tokens": high, "negative_advantage_only": high and adv[b, t] < 0, "none": False}[filter_mode]
            row.append(0.0 if drop else d)
        x.append(row)
    return ref_future_kl(x, mask.tolist(), **kw)


@pytest.mark.parametrize("start", ["include_current", "exclude_current"])
@pytest.mark.parametrize("window", [-1, 0, 1, 5, 200])
@pytest.mark.parametrize("average", [False, True])
def test_extensions_match_the_quadratic_definition(start: str, window: int, average: bool) -> None:
    """§4: start × window × average, with holes, right padding, NaN in padding, and filtered tokens."""
    for seed in range(6):
        log_prob, old, mask, adv = random_case(seed)
        decay_rate = [1.0, 7.0, 32.0, 1e9][seed % 4]
        filter_mode = ["all_tokens", "negative_advantage_only", "none"][seed % 3]
        got = future_kl(log_prob, old, mask, decay_rate=decay_rate, clip_ratio_c=10.0, start=start, window=window,
                        average=average, participation_filter=filter_mode, advantages=adv)
        want = reference(log_prob, old, mask, adv, filter_mode=filter_mode, decay_rate=decay_rate, start=start,
                         window=window, average=average)
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-11, atol=1e-11)


def test_window_special_cases() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 30, generator=gen, dtype=torch.float64)
    mask = torch.ones(2, 30, dtype=torch.bool)
    gamma = 0.9
    inc0 = discounted_future_sum(x, mask, gamma=gamma, window=0)
    assert torch.equal(inc0, x)  # only the current token
    exc0 = discounted_future_sum(x, mask, gamma=gamma, start="exclude_current", window=0)
    assert torch.equal(exc0, torch.zeros_like(x))
    unbounded = discounted_future_sum(x, mask, gamma=gamma)
    torch.testing.assert_close(discounted_future_sum(x, mask, gamma=gamma, window=29), unbounded)
    torch.testing.assert_close(discounted_future_sum(x, mask, gamma=gamma, window=10_000), unbounded)
    exclude = discounted_future_sum(x, mask, gamma=gamma, start="exclude_current")
    torch.testing.assert_close(exclude, unbounded - x)


def test_average_counts_valid_positions_including_filtered_ones_and_floors_at_one() -> None:
    log_prob = torch.tensor([[0.4, 5.0, 0.2, 0.0]], dtype=torch.float64)  # 5.0 > ln 10: filtered
    mask = torch.tensor([[True, True, True, False]])
    got = future_kl(log_prob, torch.zeros_like(log_prob), mask, decay_rate=1e9, clip_ratio_c=10.0, average=True)
    torch.testing.assert_close(got[0], torch.tensor([0.6 / 3, 0.2 / 2, 0.2, 0.0], dtype=torch.float64))


def test_padding_adds_distance_but_no_contribution() -> None:
    """§3 step 5: raw padded-index distances (holes count), masked slots contribute 0."""
    log_prob = torch.tensor([[0.5, 9.9, 0.5]], dtype=torch.float64)
    mask = torch.tensor([[True, False, True]])
    got = future_kl(log_prob, torch.zeros_like(log_prob), mask, decay_rate=1.0, clip_ratio_c=10.0)
    assert got[0].tolist() == pytest.approx([0.5 + 0.25 * 0.5, 0.5 * 0.5, 0.5])


def test_low_precision_inputs_are_upcast_and_float64_is_kept() -> None:
    gen = torch.Generator().manual_seed(2)
    lp, old = torch.randn(2, 300, generator=gen), torch.randn(2, 300, generator=gen)
    mask = torch.ones(2, 300, dtype=torch.bool)
    kw = {"decay_rate": 32.0, "clip_ratio_c": 10.0}
    for dtype in (torch.bfloat16, torch.float16):
        got = future_kl(lp.to(dtype), old.to(dtype), mask, **kw)
        assert got.dtype == torch.float32
        assert torch.equal(got, future_kl(lp.to(dtype).float(), old.to(dtype).float(), mask, **kw))
    assert future_kl(lp.double(), old.double(), mask, **kw).dtype == torch.float64


def test_result_is_detached_and_inputs_are_not_modified() -> None:
    lp = torch.randn(2, 10, requires_grad=True)
    old = torch.randn(2, 10)
    before = old.clone()
    got = future_kl(lp, old, torch.ones(2, 10), decay_rate=32.0, clip_ratio_c=10.0)  # float mask accepted
    assert not got.requires_grad and torch.equal(old, before)


def test_bad_arguments_raise() -> None:
    x = torch.zeros(1, 4)
    mask = torch.ones(1, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="decay_rate"):
        future_kl(x, x, mask, decay_rate=0.5, clip_ratio_c=10.0)
    with pytest.raises(ValueError, match="future_kl_window"):
        future_kl(x, x, mask, decay_rate=32.0, clip_ratio_c=10.0, window=-2)
    with pytest.raises(ValueError, match="future_kl_start"):
        future_kl(x, x, mask, decay_rate=32.0, clip_ratio_c=10.0, start="middle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs the advantages"):
        future_kl(x, x, mask, decay_rate=32.0, clip_ratio_c=10.0, participation_filter="negative_advantage_only")
    with pytest.raises(ValueError, match="participation_filter"):
        future_kl(x, x, mask, decay_rate=32.0, clip_ratio_c=10.0, participation_filter="some")  # type: ignore[arg-type]
