"""Hand-built edge cases of docs/spec.md §3 (one per named case), gradients, and the output contract."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from fipo_engine.algorithms import PolicyLossConfig, PolicyLossOutput, aggregate_loss, policy_loss
from fipo_engine.metrics_catalog import is_known

LN10 = math.log(10.0)
AGG_MODES = ["token-mean", "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm"]

# Every §6 metric name (the official list) plus ours; fipo must emit exactly these.
SPEC_METRICS = {
    "actor/pg_loss", "actor/pg_clipfrac", "actor/ppo_kl", "actor/pg_clipfrac_lower",
    "actor/influence_weights_mean", "actor/influence_weights_min", "actor/influence_weights_max",
    "actor/IW_upper_clip_ratio", "actor/IW_lower_clip_ratio", "actor/IW_overall_clip_ratio",
    "actor/influence_weights_mean_raw", "actor/raw_influence_weights_min", "actor/raw_influence_weights_max",
    "actor/neg_ratio_2_3", "actor/neg_ratio_3_4", "actor/neg_ratio_4_10",
    "actor/neg_is_max", "actor/neg_is_p995", "actor/neg_is_p999", "actor/neg_is_p75",
    "actor/pos_is_max", "actor/pos_is_median", "actor/pos_is_p75", "actor/pos_is_p995", "actor/pos_is_p999",
    "actor/pos_is_p25", "actor/pos_is_min", "actor/pos_mini_frac", "actor/invalidated_seq_frac",
}


def batch(deltas: list[list[float]], advs: list[float], lengths: list[int] | None = None, *, requires_grad: bool = True):
    """log_prob = old + δ (float64), one advantage per row, right padding to ``lengths``."""
    delta = torch.tensor(deltas, dtype=torch.float64)
    old = torch.linspace(-3.0, -0.5, delta.numel(), dtype=torch.float64).reshape(delta.shape)
    log_prob = (old + delta).requires_grad_(requires_grad)
    n_rows, length = delta.shape
    lengths = lengths if lengths is not None else [length] * n_rows
    mask = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
    adv = torch.tensor(advs, dtype=torch.float64)[:, None].expand(n_rows, length).clone()
    return log_prob, old, adv, mask


def fipo(log_prob, old, adv, mask, **cfg) -> PolicyLossOutput:
    return policy_loss("fipo", log_prob, old, adv, mask, PolicyLossConfig(**cfg))


# ---------------------------------------------------------------------------------------- filter
def test_a_token_with_ratio_above_c_is_removed_from_every_future_kl_sum_including_its_own() -> None:
    lp, old, adv, mask = batch([[0.1, -0.2, 3.0, 0.3]], [1.0])
    out = fipo(lp, old, adv, mask, decay_rate=1e9)  # γ ≈ 1: F_t is the plain suffix sum
    # the 3.0 at t=2 (> ln 10) is filtered whatever the advantage sign (official all_tokens)
    torch.testing.assert_close(out.future_kl[0], torch.tensor([0.2, 0.1, 0.3, 0.3], dtype=torch.float64))
    kept = fipo(lp, old, adv, mask, decay_rate=1e9, participation_filter="negative_advantage_only")
    torch.testing.assert_close(kept.future_kl[0], torch.tensor([3.2, 3.1, 3.3, 0.3], dtype=torch.float64))
    neg = fipo(lp, old, -adv, mask, decay_rate=1e9, participation_filter="negative_advantage_only")
    torch.testing.assert_close(neg.future_kl[0], out.future_kl[0])


def test_the_filter_is_strict_a_ratio_of_exactly_c_participates() -> None:
    lp, old, adv, mask = batch([[LN10, 0.0]], [1.0])
    old = lp.detach() - torch.tensor([[LN10, 0.0]], dtype=torch.float64)  # δ is exactly ln c
    out = fipo(lp, old, adv, mask, decay_rate=1e9)
    assert out.log_ratio[0, 0].item() == LN10
    assert out.future_kl[0, 0].item() == pytest.approx(LN10)


def test_the_vanilla_future_kl_option_keeps_every_token() -> None:
    lp, old, adv, mask = batch([[0.1, 3.0]], [-1.0])
    out = fipo(lp, old, adv, mask, decay_rate=1e9, participation_filter="none")
    assert out.future_kl[0, 0].item() == pytest.approx(3.1)


# ---------------------------------------------------------------------------------------- safety
def test_safety_rule_in_high_only_mode_resets_the_weight_to_exactly_one() -> None:
    # token 0: A < 0, ratio e^2.4 ≈ 11 > s = 10, and a large future KL (raw weight ≫ 1.2)
    lp, old, adv, mask = batch([[2.4, 1.5, 1.5, 1.5]], [-1.0])
    out = fipo(lp, old, adv, mask)  # 32B: high-only [1, 1.2], s = 10, filter removes 2.4 > ln 10
    assert out.future_kl[0, 0].item() > 1.0
    assert out.influence_weights[0].tolist() == [1.0, 1.2, 1.2, 1.2]
    assert out.weighted_advantages[0, 0].item() == -1.0
    # the reset weight counts as "lower clipped" (official quirk), the others as upper
    assert out.metrics["actor/IW_lower_clip_ratio"] == pytest.approx(0.25)
    assert out.metrics["actor/IW_upper_clip_ratio"] == pytest.approx(0.75)
    no_safety = fipo(lp, old, adv, mask, safety_thresh=None)
    assert no_safety.influence_weights[0, 0].item() == pytest.approx(1.2)


def test_safety_rule_in_symmetric_mode_caps_at_one_and_keeps_weights_below_one() -> None:
    # row 0: big positive future KL -> raw weight 1.2 -> capped to 1.0
    # row 1: negative future KL -> weight in [0.8, 1) stays as it is
    lp, old, adv, mask = batch([[1.2, 1.0, 1.0], [1.2, -0.7, -0.6]], [-1.0, -1.0])
    cfg = {"future_kl_clip_high_only": False, "safety_thresh": 3.0}  # 7B: e^1.2 ≈ 3.3 > 3
    out = fipo(lp, old, adv, mask, **cfg)
    assert out.influence_weights[0, 0].item() == 1.0
    w = out.influence_weights[1, 0].item()
    assert w == pytest.approx(math.exp(1.2 - 0.7 * 2 ** (-1 / 32) - 0.6 * 2 ** (-2 / 32)))
    assert 0.8 <= w < 1.0
    # tokens with ratio ≤ s are untouched: e^1.0 < 3 keeps 1.2
    assert out.influence_weights[0, 1].item() == pytest.approx(1.2)


def test_safety_rule_is_strict_and_ignores_positive_advantages() -> None:
    lp, old, adv, mask = batch([[math.log(3.0), 1.0]], [-1.0])
    old = lp.detach() - torch.tensor([[math.log(3.0), 1.0]], dtype=torch.float64)
    out = fipo(lp, old, adv, mask, safety_thresh=float(torch.exp(torch.tensor(math.log(3.0), dtype=torch.float64))))
    assert out.influence_weights[0, 0].item() == pytest.approx(1.2)  # ratio == s: not "> s"
    pos = fipo(lp, old, -adv, mask, safety_thresh=2.0)
    assert pos.influence_weights[0, 0].item() == pytest.approx(1.2)


# ---------------------------------------------------------------------------------- invalidation
def test_one_dual_clipped_token_keeps_the_sequence_two_drop_it() -> None:
    one = [0.1, 3.0, 0.1, 0.1]  # ratio e^3 ≈ 20 > c once
    two = [0.1, 3.0, 2.5, 0.1]  # twice
    lp, old, adv, mask = batch([one, two, two], [-1.0, -1.0, 1.0])
    out = fipo(lp, old, adv, mask)
    assert out.final_mask.tolist() == [[True] * 4, [False] * 4, [True] * 4]  # positive rows never dropped
    assert out.metrics["actor/invalidated_seq_frac"] == pytest.approx(1 / 3)
    assert out.metrics["actor/pg_clipfrac_lower"] == pytest.approx(3 / 12)
    # the loss is the loss of the batch without row 1; metrics still include it
    kept = fipo(lp.detach()[[0, 2]], old[[0, 2]], adv[[0, 2]], mask[[0, 2]])
    assert out.loss.item() == pytest.approx(kept.loss.item())
    assert out.metrics["actor/ppo_kl"] != pytest.approx(kept.metrics["actor/ppo_kl"])
    out.loss.backward()
    assert lp.grad[1].abs().sum().item() == 0.0
    # dapo has the same dual clip but never drops a sequence
    assert policy_loss("dapo", lp, old, adv, mask).final_mask.all()


def test_dual_clipped_tokens_in_padding_do_not_count() -> None:
    lp, old, adv, mask = batch([[0.1, 3.0, 3.0, 3.0]], [-1.0], lengths=[2])
    out = fipo(lp, old, adv, mask)
    assert out.final_mask.tolist() == [[True, True, False, False]]


# ------------------------------------------------------------------------------- empty and garbage
def test_an_all_masked_row_changes_nothing_but_its_own_row() -> None:
    lp, old, adv, mask = batch([[0.3, -0.2, 0.5], [0.1, 0.2, 0.3]], [1.0, -1.0], lengths=[3, 0])
    for mode in AGG_MODES:
        out = fipo(lp, old, adv, mask, loss_agg_mode=mode)
        alone = fipo(lp.detach()[:1], old[:1], adv[:1], mask[:1], loss_agg_mode=mode)
        scale = 0.5 if mode == "seq-mean-token-sum" else 1.0  # the empty row still counts in that mean
        assert out.loss.item() == pytest.approx(scale * alone.loss.item()), mode
        assert math.isfinite(out.loss.item())
    assert out.final_mask[1].sum() == 0
    assert out.metrics["actor/invalidated_seq_frac"] == 0.0


@pytest.mark.parametrize("name", ["ppo", "dapo", "fipo"])
@pytest.mark.parametrize("mode", AGG_MODES)
def test_an_all_masked_batch_gives_loss_zero_with_a_working_backward(name: str, mode: str) -> None:
    lp, old, adv, mask = batch([[0.3, float("nan")], [float("inf"), 0.2]], [1.0, -1.0], lengths=[0, 0])
    out = policy_loss(name, lp, old, adv, mask, PolicyLossConfig(loss_agg_mode=mode))
    assert out.loss.dim() == 0 and out.loss.item() == 0.0
    out.loss.backward()
    assert lp.grad is not None and lp.grad.abs().sum().item() == 0.0
    assert out.metrics["actor/pg_loss"] == 0.0
    assert all(v is None for k, v in out.metrics.items() if k != "actor/pg_loss")


def test_a_zero_row_batch_works_too() -> None:
    lp = torch.zeros(0, 5, dtype=torch.float64, requires_grad=True)
    out = policy_loss("fipo", lp, lp.detach(), lp.detach(), torch.zeros(0, 5, dtype=torch.bool))
    out.loss.backward()
    assert out.loss.item() == 0.0 and out.future_kl.shape == (0, 5)


def test_garbage_in_padded_positions_does_not_leak() -> None:
    lp, old, adv, mask = batch([[0.3, -0.2, 3.0, 0.5, 0.0, 0.0], [0.1, 2.5, 0.4, 0.0, 0.0, 0.0]], [-1.0, 0.5],
                               lengths=[4, 3])
    clean = fipo(lp.detach(), old, adv, mask, future_kl_clip_ratio=0.0)
    dirty_lp = lp.detach().clone()
    dirty_old, dirty_adv = old.clone(), adv.clone()
    dirty_lp[0, 4:] = torch.tensor([float("nan"), float("inf")])
    dirty_lp[1, 3:] = torch.tensor([50.0, -float("inf"), 1e30])
    dirty_old[1, 3:] = float("nan")
    dirty_adv[0, 4:] = float("-inf")
    dirty_adv[1, 3:] = 1e30
    dirty_lp.requires_grad_(True)
    dirty = fipo(dirty_lp, dirty_old, dirty_adv, mask, future_kl_clip_ratio=0.0)
    assert dirty.loss.item() == clean.loss.item()
    assert dirty.metrics == clean.metrics
    for field in ("future_kl", "influence_weights", "weighted_advantages", "per_token_loss", "ratio", "log_ratio"):
        assert torch.equal(getattr(dirty, field), getattr(clean, field)), field
    dirty.loss.backward()
    assert torch.isfinite(dirty_lp.grad).all() and dirty_lp.grad[~mask].abs().sum() == 0


# ------------------------------------------------------------------------------ decay and clipping
@pytest.mark.parametrize("decay_rate", [1.0, 1e9])
def test_extreme_decay_rates(decay_rate: float) -> None:
    deltas = [[0.2, -0.1, 0.4, 0.3]]
    lp, old, adv, mask = batch(deltas, [1.0])
    out = fipo(lp, old, adv, mask, decay_rate=decay_rate)
    gamma = 2 ** (-1 / decay_rate)
    want = [sum(gamma ** (k - t) * deltas[0][k] for k in range(t, 4)) for t in range(4)]
    assert out.future_kl[0].tolist() == pytest.approx(want, abs=1e-12)
    if decay_rate == 1e9:
        assert out.future_kl[0].tolist() == pytest.approx([0.8, 0.6, 0.7, 0.3], abs=1e-8)


def test_future_kl_clip_ratio_zero_caps_at_ten_with_no_lower_bound() -> None:
    lp, old, adv, mask = batch([[2.0, 2.0, 0.1], [-1.5, -1.0, 0.1]], [1.0, 1.0])
    out = fipo(lp, old, adv, mask, future_kl_clip_ratio=0.0)
    assert out.influence_weights[0, 0].item() == 10.0  # exp(4.1) capped
    assert out.influence_weights[1, 0].item() == pytest.approx(math.exp(-1.5 - 1.0 * 2 ** (-1 / 32) + 0.1 * 2 ** (-2 / 32)))
    assert out.influence_weights[1, 0].item() < 0.8
    # IW bounds in this mode are lower 0 and upper 10
    assert out.metrics["actor/IW_upper_clip_ratio"] == pytest.approx(1 / 6)
    assert out.metrics["actor/IW_lower_clip_ratio"] == 0.0


def test_symmetric_clip_bounds_are_08_and_12() -> None:
    lp, old, adv, mask = batch([[1.0, 1.0], [-1.0, -1.0], [0.05, 0.0]], [1.0, 1.0, 1.0])
    out = fipo(lp, old, adv, mask, future_kl_clip_high_only=False, safety_thresh=3.0)
    w = out.influence_weights
    assert w[0].tolist() == pytest.approx([1.2, 1.2]) and w[1].tolist() == pytest.approx([0.8, 0.8])
    assert w[2, 0].item() == pytest.approx(math.exp(0.05))
    assert out.metrics["actor/IW_upper_clip_ratio"] == pytest.approx(2 / 6)
    assert out.metrics["actor/IW_lower_clip_ratio"] == pytest.approx(2 / 6)
    assert out.metrics["actor/IW_overall_clip_ratio"] == pytest.approx(4 / 6)


# ------------------------------------------------------------------------------------- on-policy
@pytest.mark.parametrize("preset", ["fipo-32b", "fipo-7b"])
@pytest.mark.parametrize("mode", AGG_MODES)
def test_on_policy_input_gives_weights_exactly_one_and_the_dapo_loss(preset: str, mode: str) -> None:
    gen = torch.Generator().manual_seed(3)
    lp = (torch.randn(4, 50, generator=gen) - 2.0).requires_grad_(True)
    adv = torch.randn(4, 1, generator=gen).expand(4, 50)
    mask = torch.rand(4, 50, generator=gen) > 0.2
    cfg = PolicyLossConfig.preset(preset, loss_agg_mode=mode)
    out = policy_loss("fipo", lp, lp.detach(), adv, mask, cfg)
    ref = policy_loss("dapo", lp, lp.detach(), adv, mask, cfg)
    assert torch.equal(out.future_kl, torch.zeros_like(out.future_kl))
    assert torch.equal(out.influence_weights, torch.ones_like(out.influence_weights))
    assert out.loss.item() == ref.loss.item()
    assert all(out.metrics[k] == v for k, v in ref.metrics.items())
    (g_fipo,) = torch.autograd.grad(out.loss, lp)
    (g_dapo,) = torch.autograd.grad(ref.loss, lp)
    assert torch.equal(g_fipo, g_dapo)


# -------------------------------------------------------------------------------------- gradient
def test_gradient_flows_only_through_the_ratio_weights_are_constants() -> None:
    gen = torch.Generator().manual_seed(7)
    old = torch.randn(3, 40, generator=gen, dtype=torch.float64) - 2.0
    old.requires_grad_(True)
    lp = (old.detach() + 0.4 * torch.randn(3, 40, generator=gen, dtype=torch.float64)).requires_grad_(True)
    adv = torch.tensor([[1.0], [-0.7], [0.4]], dtype=torch.float64).expand(3, 40).clone().requires_grad_(True)
    mask = torch.ones(3, 40, dtype=torch.bool)
    mask[2, 30:] = False
    out = fipo(lp, old, adv, mask)
    out.loss.backward()
    assert old.grad is None and adv.grad is None
    for field in dataclasses.fields(PolicyLossOutput):
        value = getattr(out, field.name)
        if isinstance(value, torch.Tensor) and field.name != "loss":
            assert not value.requires_grad, field.name
    # same loss with the weighted advantages as plain constants: identical gradient
    lp2 = lp.detach().clone().requires_grad_(True)
    ratio = torch.exp(torch.clamp(lp2 - old.detach(), -20, 20))
    a_w = out.weighted_advantages
    l_clip = torch.maximum(-a_w * ratio, -a_w * torch.clamp(ratio, 0.8, 1.28))
    per_token = torch.where(a_w < 0, torch.minimum(-a_w * 10.0, l_clip), l_clip)
    aggregate_loss(per_token, out.final_mask, "token-mean").backward()
    torch.testing.assert_close(lp.grad, lp2.grad, rtol=1e-12, atol=1e-15)
    # closed forms (§3 step 10): a token in the live branch gets −Ã·r / N, every other token 0
    n = out.final_mask.sum().item()
    r, a_w = out.ratio, out.weighted_advantages
    live = torch.where(a_w > 0, r < 1.28, (r > 0.8) & (r < 10.0)) & out.final_mask
    want = torch.where(live, -a_w * r / (n + 1e-8), 0.0)
    assert 0 < live.sum() < mask.sum()  # both branches are exercised
    torch.testing.assert_close(lp.grad, want, rtol=1e-10, atol=1e-15)


def test_tokens_beyond_the_clamp_get_no_gradient() -> None:
    lp, old, adv, mask = batch([[25.0, -25.0, 0.1]], [1.0])
    out = fipo(lp, old, adv, mask)
    assert out.log_ratio[0].tolist()[:2] == [20.0, -20.0]
    out.loss.backward()
    assert lp.grad[0, :2].tolist() == [0.0, 0.0] and lp.grad[0, 2].item() != 0.0


# --------------------------------------------------------------------------------- ppo and dapo
def test_ppo_is_symmetric_and_reads_neither_clip_high_nor_c() -> None:
    lp, old, adv, mask = batch([[0.25, -0.3, 3.0, 0.1]], [1.0])
    a = policy_loss("ppo", lp, old, adv, mask, PolicyLossConfig(clip_ratio_high=0.28, clip_ratio_c=10.0))
    b = policy_loss("ppo", lp, old, adv, mask, PolicyLossConfig(clip_ratio_high=5.0, clip_ratio_c=100.0))
    assert a.loss.item() == b.loss.item()
    # ratio e^0.25 = 1.284 > 1.2 is clipped at 1.2 for A > 0 (dapo's clip-higher would not clip it)
    assert a.per_token_loss[0, 0].item() == pytest.approx(-1.2)
    dapo = policy_loss("dapo", lp, old, adv, mask)
    assert dapo.per_token_loss[0, 0].item() == pytest.approx(-math.exp(0.25) if math.exp(0.25) < 1.28 else -1.28)


def test_dual_clip_bounds_negative_advantage_losses_at_c() -> None:
    lp, old, adv, mask = batch([[3.0, 0.0]], [-2.0])
    out = policy_loss("dapo", lp, old, adv, mask)
    assert out.per_token_loss[0, 0].item() == pytest.approx(2.0 * 10.0)
    ppo = policy_loss("ppo", lp, old, adv, mask)
    assert ppo.per_token_loss[0, 0].item() == pytest.approx(2.0 * math.exp(3.0))
    assert ppo.metrics["actor/pg_clipfrac_lower"] == 0.0 and out.metrics["actor/pg_clipfrac_lower"] == 0.5
    assert out.metrics["actor/neg_is_max"] == pytest.approx(math.exp(3.0))


@pytest.mark.parametrize("name", ["ppo", "dapo"])
def test_ppo_and_dapo_report_weights_of_exactly_one_and_zero_future_kl(name: str) -> None:
    lp, old, adv, mask = batch([[0.5, 0.5, 0.5]], [1.0])
    out = policy_loss(name, lp, old, adv, mask)
    assert torch.equal(out.influence_weights, torch.ones_like(out.influence_weights))
    assert torch.equal(out.future_kl, torch.zeros_like(out.future_kl))
    for key in ("actor/influence_weights_mean", "actor/influence_weights_min", "actor/influence_weights_max"):
        assert out.metrics[key] == 1.0


# ----------------------------------------------------------------------------------- the contract
def test_fipo_emits_every_spec_metric_and_all_names_are_in_the_catalog() -> None:
    lp, old, adv, mask = batch([[0.5, -0.5, 3.0], [0.1, 0.2, 0.3]], [1.0, -1.0])
    out = fipo(lp, old, adv, mask)
    assert set(out.metrics) == SPEC_METRICS
    for name in ("ppo", "dapo"):
        metrics = policy_loss(name, lp, old, adv, mask).metrics
        assert set(metrics) <= SPEC_METRICS and "actor/pg_clipfrac_lower" in metrics
    assert all(is_known(k) for k in SPEC_METRICS)
    assert all(isinstance(v, float) for v in out.metrics.values())
    assert out.metrics["actor/pg_loss"] == out.loss.item()


def test_output_fields_shapes_and_frozenness() -> None:
    lp, old, adv, mask = batch([[0.5, -0.5, 3.0], [0.1, 0.2, 0.3]], [1.0, -1.0], lengths=[3, 2])
    out = fipo(lp, old, adv, mask)
    for name in ("future_kl", "influence_weights", "weighted_advantages", "final_mask", "ratio", "log_ratio",
                 "per_token_loss"):
        assert getattr(out, name).shape == (2, 3), name
    assert out.final_mask.dtype == torch.bool and out.loss.dim() == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        out.loss = torch.tensor(0.0)  # type: ignore[misc]


def test_per_sequence_advantages_broadcast_like_per_token_ones() -> None:
    lp, old, adv, mask = batch([[0.5, -0.5, 0.2], [0.1, 0.2, 0.3]], [1.0, -1.0])
    a = fipo(lp, old, adv, mask)
    b = fipo(lp, old, adv[:, 0], mask)
    assert a.loss.item() == b.loss.item() and a.metrics == b.metrics


def test_bf16_inputs_are_computed_in_float32_and_gradients_reach_bf16() -> None:
    gen = torch.Generator().manual_seed(11)
    lp32 = torch.randn(2, 64, generator=gen) * 0.3 - 1.0
    old32 = lp32 + 0.2 * torch.randn(2, 64, generator=gen)
    lp = lp32.bfloat16().requires_grad_(True)
    adv = torch.tensor([[1.0], [-1.0]]).expand(2, 64)
    mask = torch.ones(2, 64, dtype=torch.bool)
    out = fipo(lp, old32.bfloat16(), adv, mask)
    ref = fipo(lp.detach().float(), old32.bfloat16().float(), adv, mask)
    assert out.future_kl.dtype == torch.float32 and out.loss.dtype == torch.float32
    assert out.loss.item() == ref.loss.item()
    out.loss.backward()
    assert lp.grad.dtype == torch.bfloat16 and torch.isfinite(lp.grad.float()).all()


def test_bad_shapes_are_rejected_with_the_shapes_in_the_message() -> None:
    x = torch.zeros(2, 3)
    mask = torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        policy_loss("fipo", x, torch.zeros(2, 4), x, mask)
    with pytest.raises(ValueError, match="advantages"):
        policy_loss("fipo", x, x, torch.zeros(3), mask)
    with pytest.raises(ValueError, match=r"\[B, L\]"):
        policy_loss("fipo", torch.zeros(3), torch.zeros(3), torch.zeros(3), torch.ones(3, dtype=torch.bool))


def test_default_config_is_the_32b_recipe() -> None:
    lp, old, adv, mask = batch([[0.5, -0.5, 3.0], [0.1, 0.2, 0.3]], [1.0, -1.0])
    assert policy_loss("fipo", lp, old, adv, mask).metrics == fipo(lp, old, adv, mask).metrics


@pytest.mark.parametrize("n", [1, 2, 3, 10, 1001])
def test_metric_quantiles_match_torch_quantile(n: int) -> None:
    from fipo_engine.algorithms.metrics import quantiles

    values = torch.randn(n, generator=torch.Generator().manual_seed(n), dtype=torch.float64).round(decimals=1)  # ties
    qs = (0.0, 0.25, 0.5, 0.75, 0.995, 0.999, 1.0)
    got = quantiles(values, qs)
    want = torch.quantile(values, torch.tensor(qs, dtype=torch.float64))
    torch.testing.assert_close(torch.stack(got), want, rtol=1e-12, atol=1e-12)
    assert quantiles(values[:0], qs) == [None] * len(qs)
