"""The FIPO ``PolicyLoss`` subclass driven through OpenRLHF 0.11.2's own class (from its wheel)."""

from __future__ import annotations

import pytest
import torch

from fipo_engine.algorithms import PolicyLossConfig, policy_loss
from fipo_engine.config import preset
from fipo_engine.integrations.openrlhf.loss import build_fipo_policy_loss, loss_settings_from_env
from tests.engine.test_openrlhf_wheel import openrlhf_loss, openrlhf_root  # noqa: F401  (fixtures)

CFG = PolicyLossConfig()  # the 32B recipe


def batch(seed: int, b: int = 6, length: int = 40, spread: float = 0.6):
    """Random off-policy inputs: right-padded masks, mixed-sign advantages, some large ratios."""
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(b, length, generator=g) * 3
    new = (old + spread * torch.randn(b, length, generator=g)).requires_grad_(True)
    adv = torch.randn(b, generator=g)[:, None].expand(b, length).contiguous()
    lengths = torch.randint(length // 4, length + 1, (b,), generator=g)
    mask = torch.arange(length)[None, :] < lengths[:, None]
    return new, old, adv, mask


def openrlhf_kwargs(cfg: PolicyLossConfig, token_level: bool = True) -> dict:
    """The constructor arguments ``ActorPPOTrainer.__init__`` passes for our generated command."""
    return {"clip_eps_low": cfg.clip_ratio_low, "clip_eps_high": cfg.clip_ratio_high, "dual_clip": cfg.clip_ratio_c,
            "token_level_loss": token_level, "policy_loss_type": "ppo"}


@pytest.mark.parametrize("name", ["fipo", "dapo"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_same_loss_and_gradients_as_ours(openrlhf_loss, name: str, seed: int) -> None:  # noqa: F811
    cls = build_fipo_policy_loss(openrlhf_loss.PolicyLoss)
    assert issubclass(cls, openrlhf_loss.PolicyLoss) and isinstance(cls(**openrlhf_kwargs(CFG), loss_name=name,
                                                                        loss_config=CFG), torch.nn.Module)
    new, old, adv, mask = batch(seed)
    loss_fn = cls(**openrlhf_kwargs(CFG), loss_name=name, loss_config=CFG)
    loss, clip_ratio, ppo_kl, vllm_kl, is_filter = loss_fn(new, old, adv, action_mask=mask)
    (grad_theirs,) = torch.autograd.grad(loss, new)

    new2 = new.detach().clone().requires_grad_(True)
    ours = policy_loss(name, new2, old, adv, mask, CFG)
    (grad_ours,) = torch.autograd.grad(ours.loss, new2)
    assert torch.equal(loss.detach(), ours.loss.detach())
    assert torch.equal(grad_theirs, grad_ours)
    assert clip_ratio.item() == pytest.approx(ours.metrics["actor/pg_clipfrac"])
    assert ppo_kl.item() == pytest.approx(ours.metrics["actor/ppo_kl"])
    assert vllm_kl is None and is_filter is None
    assert loss_fn.last_output.metrics == ours.metrics
    if name == "fipo":
        assert ours.influence_weights[mask].max() > 1.0  # the inputs really are off-policy: FIPO acts


def test_global_token_normalisation_follows_openrlhf(openrlhf_loss) -> None:  # noqa: F811
    """On OpenRLHF's path (global token count N, DP size) a micro-batch contributes its final-mask token
    mean weighted by its share of N: (Σ final·ℓ / Σ final) × (Σ action_mask / N) × dp_size."""
    cls = build_fipo_policy_loss(openrlhf_loss.PolicyLoss)
    new, old, adv, mask = batch(5)
    ours = policy_loss("fipo", new, old, adv, mask, CFG)
    total = float(mask.sum()) * 3  # as if two more micro-batches/ranks held twice as many tokens
    loss, *_ = cls(**openrlhf_kwargs(CFG), loss_config=CFG)(new, old, adv, action_mask=mask, dp_size=2,
                                                            batch_num_tokens=total)
    expected = ours.loss * float(mask.sum()) / total * 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # with N = this micro-batch's own token count it is exactly our token-mean
    own, *_ = cls(**openrlhf_kwargs(CFG), loss_config=CFG)(new, old, adv, action_mask=mask,
                                                           batch_num_tokens=float(mask.sum()))
    assert own.item() == pytest.approx(ours.loss.item(), rel=1e-6)


def invalidating_batch():
    """A batch in which FIPO invalidates row 0 (two tokens dual-clipped: A < 0 and ratio > c = 10)."""
    new, old, adv, mask = batch(11, spread=0.3)
    new = new.detach().clone()
    adv = adv.clone()
    adv[0] = -1.0
    new[0, 1] = old[0, 1] + 3.0  # ratio e^3 ≈ 20 > 10
    new[0, 2] = old[0, 2] + 3.0
    mask[0, :4] = True
    return new.requires_grad_(True), old, adv, mask


@pytest.mark.parametrize("token_level", [True, False])
def test_openrlhf_and_native_paths_agree_when_fipo_invalidates_a_sequence(openrlhf_loss, token_level) -> None:  # noqa: F811
    """One micro-batch = one optimizer step, fed to both paths: OpenRLHF's global counts (taken from
    action_mask before the forward) include the invalidated row; the loss and its gradients must
    still equal the native trainer's, which aggregates over the final mask."""
    cfg = CFG if token_level else PolicyLossConfig(loss_agg_mode="seq-mean-token-mean")
    new, old, adv, mask = invalidating_batch()
    native = policy_loss("fipo", new, old, adv, mask, cfg)
    assert bool(mask[0].any()) and not bool(native.final_mask[0].any())  # row 0 really is invalidated
    (grad_native,) = torch.autograd.grad(native.loss, new)
    # what OpenRLHF 0.11.2 passes for a single-micro-batch step on one rank
    counts = ({"batch_num_tokens": float(mask.sum())} if token_level
              else {"global_batch_size": float(mask.any(-1).sum())})
    fn = build_fipo_policy_loss(openrlhf_loss.PolicyLoss)(**openrlhf_kwargs(cfg, token_level=token_level),
                                                          loss_config=cfg)
    new2 = new.detach().clone().requires_grad_(True)
    loss, *_ = fn(new2, old, adv, action_mask=mask, dp_size=1, **counts)
    (grad_openrlhf,) = torch.autograd.grad(loss, new2)
    assert loss.item() == pytest.approx(native.loss.item(), rel=1e-6)
    assert torch.allclose(grad_openrlhf, grad_native, rtol=1e-5, atol=1e-9)
    # the forwarded actor/pg_loss is the token mean (the native metric), not a per-sequence token sum
    assert fn.last_output.metrics["actor/pg_loss"] == pytest.approx(native.metrics["actor/pg_loss"], rel=1e-6)


def test_sequence_mode_uses_global_sequence_count(openrlhf_loss) -> None:  # noqa: F811
    cfg = PolicyLossConfig(loss_agg_mode="seq-mean-token-mean")
    cls = build_fipo_policy_loss(openrlhf_loss.PolicyLoss)
    new, old, adv, mask = batch(7)
    fn = cls(**openrlhf_kwargs(cfg, token_level=False), loss_config=cfg)
    ours = policy_loss("fipo", new, old, adv, mask, cfg)
    rows = int(ours.final_mask.any(-1).sum())
    loss, *_ = fn(new, old, adv, action_mask=mask, global_batch_size=float(rows))
    assert loss.item() == pytest.approx(ours.loss.item(), rel=1e-6)
    plain, *_ = fn(new, old, adv, action_mask=mask)
    assert plain.item() == pytest.approx(ours.loss.item(), rel=1e-6)


def test_dapo_through_the_subclass_matches_openrlhfs_own_dual_clip_ppo(openrlhf_loss) -> None:  # noqa: F811
    """With mild off-policyness (no sequence dropped), our DAPO equals OpenRLHF's PPO + dual clip."""
    new, old, adv, mask = batch(3, spread=0.3)
    theirs = openrlhf_loss.PolicyLoss(**openrlhf_kwargs(CFG))(new, old, adv, action_mask=mask)
    ours = build_fipo_policy_loss(openrlhf_loss.PolicyLoss)(**openrlhf_kwargs(CFG), loss_name="dapo",
                                                            loss_config=CFG)(new, old, adv, action_mask=mask)
    assert ours[0].item() == pytest.approx(theirs[0].item(), rel=1e-5, abs=1e-7)
    assert ours[1].item() == pytest.approx(theirs[1].item(), abs=1e-6)  # clip ratio
    assert ours[2].item() == pytest.approx(theirs[2].item(), abs=1e-6)  # ppo_kl


def test_disagreeing_clip_flags_are_refused(openrlhf_loss) -> None:  # noqa: F811
    cls = build_fipo_policy_loss(openrlhf_loss.PolicyLoss)
    with pytest.raises(ValueError, match="disagree"):
        cls(clip_eps_low=0.2, clip_eps_high=0.2, dual_clip=10.0, loss_config=CFG)
    with pytest.raises(ValueError, match="IS correction"):
        cls(**openrlhf_kwargs(CFG), is_correction_level="token", loss_config=CFG)


def test_loss_settings_come_from_the_run_config_env() -> None:
    cfg = preset("fipo-7b")
    name, loss_cfg = loss_settings_from_env({"FIPO_CONFIG_JSON": cfg.model_dump_json()})
    assert (name, loss_cfg) == ("fipo", cfg.algorithm.loss)
    assert loss_cfg.safety_thresh == 3.0 and loss_cfg.future_kl_clip_high_only is False
    assert loss_settings_from_env({}) == ("fipo", PolicyLossConfig())
