"""Dynamic batching vs FIPO, with OpenRLHF 0.11.2's own ``balance_experiences`` (from its wheel).

OpenRLHF sorts the rollout by length, interleaves chunks across ranks and then, per rank, cuts
optimizer steps from consecutive items with shuffling off. The first mini-batch is trained on the
policy that sampled it (ratio 1, future-KL 0, FIPO weight 1), so without our shuffle FIPO would
never reweight the longest responses. Here: 32 ranks, 2,048 samples, 8 optimizer steps, as the
PPO actors would cut them (``NaiveReplayBuffer`` keeps the order it was given).
"""

from __future__ import annotations

import random
import types
from pathlib import Path

import torch

from fipo_engine.integrations.openrlhf import hook
from tests.engine.test_openrlhf_wheel import openrlhf_experience, openrlhf_root  # noqa: F401

RANKS, SAMPLES, STEPS = 32, 2048, 8


def rollout(experience: types.ModuleType, seed: int = 0) -> list:
    """Per-prompt Experience batches (16 samples each) with long-tailed response lengths."""
    rng = random.Random(seed)
    lengths = [min(20480, int(rng.lognormvariate(7.5, 1.0))) + 256 for _ in range(SAMPLES)]
    batches = []
    for start in range(0, SAMPLES, 16):
        chunk = lengths[start:start + 16]
        batches.append(experience.Experience(
            sequences=torch.tensor([[i] for i in range(start, start + 16)]),
            total_length=torch.tensor(chunk, dtype=torch.float),
            response_length=torch.tensor([n - 256 for n in chunk], dtype=torch.float)))
    return batches


def args_for(ranks: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(actor=types.SimpleNamespace(num_nodes=ranks // 8, num_gpus_per_node=8),
                                 ds=types.SimpleNamespace(ring_attn_size=1, tensor_parallel_size=1),
                                 train=types.SimpleNamespace(seed=42))


def deciles_per_step(per_rank: list) -> list[set[int]]:
    """For each optimizer step, the set of global length deciles its samples come from."""
    all_lengths = sorted(float(x) for batch in per_rank for x in batch.total_length)
    cuts = [all_lengths[len(all_lengths) * d // 10] for d in range(1, 10)]
    per_step: list[set[int]] = [set() for _ in range(STEPS)]
    for batch in per_rank:
        local = len(batch.total_length) // STEPS
        for position, length in enumerate(batch.total_length.tolist()):
            per_step[min(position // local, STEPS - 1)].add(sum(length >= c for c in cuts))
    return per_step


def test_openrlhfs_own_balancing_gives_the_first_step_only_extreme_lengths(openrlhf_experience) -> None:  # noqa: F811
    """The problem, reproduced with the real function: step 0 never sees the middle of the distribution."""
    per_rank = openrlhf_experience.balance_experiences(rollout(openrlhf_experience), args_for(RANKS))
    assert len(per_rank) == RANKS
    first = deciles_per_step(per_rank)[0]
    assert first <= {0, 9}, first


def test_the_hook_gives_every_length_decile_to_every_optimizer_step(openrlhf_experience) -> None:  # noqa: F811
    trainer_module = types.SimpleNamespace(balance_experiences=openrlhf_experience.balance_experiences)
    hook.patch_balance(trainer_module)
    hook.patch_balance(trainer_module)  # idempotent
    experiences = rollout(openrlhf_experience)
    balanced = openrlhf_experience.balance_experiences(experiences, args_for(RANKS))
    shuffled = trainer_module.balance_experiences(rollout(openrlhf_experience), args_for(RANKS))
    assert all(step == set(range(10)) for step in deciles_per_step(shuffled)), deciles_per_step(shuffled)
    # what each rank got (its items and so its token total, OpenRLHF's balance) is unchanged
    for before, after in zip(balanced, shuffled, strict=True):
        assert sorted(before.sequences[:, 0].tolist()) == sorted(after.sequences[:, 0].tolist())
        assert float(before.total_length.sum()) == float(after.total_length.sum())


def test_the_trainer_patch_installs_the_shuffle(openrlhf_experience, tmp_path: Path) -> None:  # noqa: F811
    """``patch_trainer_module`` (run on import of ``openrlhf.trainer.ppo_trainer``) rebinds the module
    global that ``BasePPOTrainer.train_step`` calls."""

    class BasePPOTrainer:
        def __init__(self) -> None: ...
        def save_logs_and_checkpoints(self, global_step, logs_dict=None, client_states=None) -> None: ...
        def save_best_checkpoint(self, eval_metrics, global_step, client_states=None) -> None: ...

    module = types.ModuleType("openrlhf.trainer.ppo_trainer")
    module.BasePPOTrainer = BasePPOTrainer
    module.balance_experiences = openrlhf_experience.balance_experiences
    hook.patch_trainer_module(module)
    assert module.balance_experiences is not openrlhf_experience.balance_experiences
    shuffled = module.balance_experiences(rollout(openrlhf_experience), args_for(RANKS))
    assert all(step == set(range(10)) for step in deciles_per_step(shuffled))
