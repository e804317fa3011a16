"""The setup hook and the metrics/sample forwarding, in this process (the Ray-worker run is in
tests/worker/test_ray_launcher.py). OpenRLHF's real loss.py sits under test stand-ins for the
package files that need a GPU stack (see ``standin_site``)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch

from fipo_engine.algorithms import PolicyLossConfig, policy_loss
from fipo_engine.integrations.openrlhf import forwarding, hook
from fipo_engine.metrics_catalog import is_known
from tests.engine.test_openrlhf_wheel import openrlhf_root, standin_site  # noqa: F401


@pytest.fixture
def standin(openrlhf_root: Path, tmp_path: Path):  # noqa: F811
    """The stand-in OpenRLHF importable for one test, then gone (modules, path entry and finder)."""
    site = standin_site(openrlhf_root, tmp_path / "site")
    before = set(sys.modules)
    sys.path.insert(0, str(site))
    meta_before = list(sys.meta_path)
    yield site
    sys.path.remove(str(site))
    sys.meta_path[:] = meta_before
    for name in set(sys.modules) - before:
        if name.split(".")[0] in {"openrlhf", "deepspeed"}:
            del sys.modules[name]


def test_without_the_hook_openrlhf_keeps_its_own_loss(standin) -> None:
    models = importlib.import_module("openrlhf.models")
    assert models.PolicyLoss.__name__ == "PolicyLoss"


def test_hook_swaps_policy_loss_on_import_and_adds_metrics(standin) -> None:
    hook.setup()
    hook.setup()  # idempotent: one finder
    assert sum(isinstance(f, hook.PatchingFinder) for f in sys.meta_path) == 1
    models = importlib.import_module("openrlhf.models")
    loss_module = importlib.import_module("openrlhf.models.loss")
    ppo_actor = importlib.import_module("openrlhf.trainer.ray.ppo_actor")
    assert models.PolicyLoss is loss_module.PolicyLoss is ppo_actor.PolicyLoss
    assert models.PolicyLoss.__name__ == "FipoPolicyLoss"
    assert models.PolicyLoss.__mro__[1].__module__ == "openrlhf.models.loss"  # subclass of OpenRLHF's class

    g = torch.Generator().manual_seed(0)
    old = -torch.rand(4, 16, generator=g) * 2
    new = old + 0.5 * torch.randn(4, 16, generator=g)
    adv = torch.randn(4, 1, generator=g).expand(4, 16)
    mask = torch.ones(4, 16, dtype=torch.bool)
    trainer = ppo_actor.ActorPPOTrainer()
    status = trainer.training_step((new, old, adv, mask), 0.0, 0)
    ours = policy_loss("fipo", new, old, adv, mask, PolicyLossConfig())
    assert torch.equal(status["metrics"]["policy_loss"], ours.loss)
    for name, value in ours.metrics.items():
        key = forwarding.LOSS_METRIC_PREFIX + name
        assert status["weights"][key] == "token"
        assert status["metrics"][key].item() == pytest.approx(0.0 if value is None else value)


def test_hook_patches_modules_imported_before_it_ran(standin) -> None:
    ppo_actor = importlib.import_module("openrlhf.trainer.ray.ppo_actor")
    assert ppo_actor.PolicyLoss.__name__ == "PolicyLoss"
    hook.setup()
    assert ppo_actor.PolicyLoss.__name__ == "FipoPolicyLoss"
    assert sys.modules["openrlhf.models"].PolicyLoss is ppo_actor.PolicyLoss


def test_openrlhf_status_maps_to_catalog_names() -> None:
    status = {"reward": torch.tensor(0.1), "rollout/reward_mean": 0.25, "rollout/reward_std": 0.5,
              "accuracy": 0.625, "response_length": 100.0, "rollout/truncated_rate": 0.0,
              "dynamic_filtering_pass_rate": 0.4, "policy_loss": -0.01, "ppo_clip_ratio": 0.3,
              "actor_grad_norm": 1.5, "actor_lr": 1e-6, "timing/generation": 12.0, "generated_samples": ["x", 1],
              "fipo:actor/influence_weights_max": 1.2, "fipo:actor/pg_clipfrac": 0.05, "fipo:not/a_metric": 1.0,
              "kl": float("nan")}
    values = forwarding.map_openrlhf_status(status)
    assert values == {"reward/mean": 0.25, "reward/std": 0.5, "accuracy/mean": 0.625, "response_length/mean": 100.0,
                      "response_length/clip_ratio": 0.0, "sampling/kept_group_fraction": 0.4,
                      "actor/pg_loss": -0.01, "actor/pg_clipfrac": 0.05, "actor/grad_norm": 1.5, "actor/lr": 1e-6,
                      "timing/generate_s": 12.0, "actor/influence_weights_max": 1.2}
    assert all(is_known(name) for name in values)
    assert all(is_known(name) for name in forwarding.OPENRLHF_METRICS)


def test_samples_carry_prompt_response_and_per_token_channels() -> None:
    g = torch.Generator().manual_seed(1)
    # two rows: left-padded prompt of 4 positions, response of 5 positions right-padded
    sequences = torch.tensor([[0, 0, 7, 8, 11, 12, 13, 2, 0], [0, 9, 9, 9, 21, 22, 0, 0, 0]])
    attention = (sequences != 0).long()
    action_mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]], dtype=torch.bool)
    old = -torch.rand(2, 5, generator=g)
    new = old + 0.3 * torch.randn(2, 5, generator=g)
    adv = torch.tensor([[1.0] * 5, [-1.0] * 5])
    out = policy_loss("fipo", new, old, adv, action_mask, PolicyLossConfig())
    samples = forwarding.collect_samples(
        sequences=sequences, action_mask=action_mask, attention_mask=attention, output=out, log_probs=new,
        old_log_probs=old, advantages=adv, rewards=torch.tensor([1.0, -1.0]),
        decode=lambda ids: " ".join(map(str, ids)), tokens=lambda ids: [f"t{i}" for i in ids], k=4)
    assert len(samples) == 2
    first, second = samples
    assert (first["prompt"], first["response"], first["tokens"]) == ("7 8", "11 12 13 2", ["t11", "t12", "t13", "t2"])
    assert (second["prompt"], second["response"], second["correct"], second["reward"]) == ("9 9 9", "21 22", False, -1.0)
    for channel in forwarding.SAMPLE_CHANNELS:
        assert len(first[channel]) == 4 and len(second[channel]) == 2
    assert first["logprob"] == pytest.approx(new[0, :4].tolist(), abs=1e-5)
    assert first["influence"] == pytest.approx(out.influence_weights[0, :4].tolist(), abs=1e-5)
    assert forwarding.samples_to_keep({"FIPO_CONFIG_JSON": '{"trainer": {"log_samples": 2}}'}) == 2


def test_tracker_writes_metrics_then_that_steps_samples(tmp_path: Path) -> None:
    tracker = forwarding.FipoTracker(str(tmp_path), None, "7", None)
    tracker.add_samples([{"prompt": "p", "response": "r", "tokens": ["r"], "logprob": [-0.1]}])
    tracker.step(3, {"reward/mean": 0.5})
    tracker.step(4, {"reward/mean": 0.6})
    tracker.close()
    events = tracker.tracker.spool.events()
    assert [(e["seq"], e["type"], e["step"]) for e in events] == [(1, "metric", 3), (2, "sample", 3), (3, "metric", 4)]
    assert events[1]["index"] == 0 and events[1]["logprob"] == [-0.1]
