"""Ray ``worker_process_setup_hook`` that puts FIPO inside OpenRLHF, in every worker of the job.

OpenRLHF has no loss registry: ``ActorPPOTrainer.__init__`` builds ``PolicyLoss(...)``, a name that
``openrlhf/trainer/ray/ppo_actor.py`` imports from ``openrlhf.models``, which imports it from
``openrlhf.models.loss``. The launcher submits the job with
``runtime_env={"worker_process_setup_hook": "fipo_engine.integrations.openrlhf.hook.setup", ...}``;
Ray runs ``setup()`` in every worker process (vLLM engines included) before any task.

``setup()`` imports nothing heavy (a worker without torch or OpenRLHF must still start). It
installs an import hook that patches three OpenRLHF modules right after they execute:

- ``openrlhf.models.loss``: ``PolicyLoss`` becomes the FIPO subclass. Because the rebinding happens
  before ``openrlhf.models`` and ``ppo_actor`` run ``from ... import PolicyLoss``, they get it too.
- ``openrlhf.trainer.ray.ppo_actor``: ``ActorPPOTrainer.training_step`` adds our loss metrics to
  its status (token-weighted, reduced across ranks by OpenRLHF) and, on rank 0, keeps K samples with
  per-token arrays; ``ppo_train`` hands them to the run's tracker actor.
- ``openrlhf.trainer.ppo_trainer``: ``BasePPOTrainer.__init__`` creates the run's tracker actor (which
  reports ``running`` and heartbeats from then on); ``save_logs_and_checkpoints`` (called once per
  global step) sends the step's metrics to the tracker under our catalog names;
  ``save_best_checkpoint`` (called right after each evaluation with its logs) forwards the
  evaluation; and ``balance_experiences`` is followed by a shuffle of each rank's experiences.

Why the shuffle: with ``--train.dynamic_batch_enable`` OpenRLHF sorts the rollout by length,
interleaves long and short chunks across ranks, turns DataLoader shuffling off and cuts optimizer
steps from consecutive items. The first mini-batch (trained on the policy that sampled it: ratio 1,
future-KL 0, FIPO weight 1) would always get the longest responses, so FIPO would never reweight the
responses it exists for. Shuffling inside each rank keeps the per-rank token balance (a rank's total
is unchanged) and gives every mini-batch position a random mix of lengths.

These are patched on classes and functions that Ray imports by reference in the ``PPOTrainer`` actor
(``BasePPOTrainer`` and module globals); ``PPOTrainer``'s own methods (``fit``, ``evaluate``) travel
pickled by value from the driver, where the hook does not run, so they are not patched.

Modules already imported when ``setup()`` runs are patched at once.
"""

from __future__ import annotations

import functools
import importlib.abc
import importlib.machinery
import itertools
import logging
import random
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

LOSS_MODULE = "openrlhf.models.loss"
ACTOR_MODULE = "openrlhf.trainer.ray.ppo_actor"
TRAINER_MODULE = "openrlhf.trainer.ppo_trainer"
_PATCHED = "__fipo_patched__"


# ------------------------------------------------------------------------------ the patches
def patch_loss_module(module: ModuleType) -> None:
    """Rebind ``PolicyLoss`` to the FIPO subclass here and wherever it was already imported."""
    original = module.PolicyLoss
    if getattr(original, _PATCHED, False):
        return
    from fipo_engine.integrations.openrlhf.loss import build_fipo_policy_loss

    fipo = build_fipo_policy_loss(original)
    setattr(fipo, _PATCHED, True)
    module.PolicyLoss = fipo
    for name in ("openrlhf.models", ACTOR_MODULE):
        other = sys.modules.get(name)
        if other is not None and getattr(other, "PolicyLoss", None) is original:
            other.PolicyLoss = fipo


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def patch_actor_module(module: ModuleType) -> None:
    """Wrap ``ActorPPOTrainer.training_step``/``ppo_train`` for FIPO metrics and samples."""
    trainer_cls = module.ActorPPOTrainer
    if getattr(trainer_cls, _PATCHED, False):
        return
    loss_module = sys.modules.get(LOSS_MODULE)
    if loss_module is not None and not getattr(getattr(module, "PolicyLoss", None), _PATCHED, True):
        patch_loss_module(loss_module)  # imported before the hook ran: rebind here too
        module.PolicyLoss = loss_module.PolicyLoss
    import torch

    from fipo_engine.integrations.openrlhf import forwarding

    keep = forwarding.samples_to_keep()
    step_fn, train_fn = trainer_cls.training_step, trainer_cls.ppo_train

    @functools.wraps(step_fn)
    def training_step(self: Any, experience: Any, *args: Any, **kwargs: Any) -> dict:
        status = step_fn(self, experience, *args, **kwargs)
        out = getattr(self.actor_loss_fn, "last_output", None)
        if out is None:
            return status
        forwarding.add_loss_metrics(status, out.metrics, lambda v: torch.tensor(v))
        if keep and _rank() == 0 and self.tokenizer is not None:
            tok = self.tokenizer
            self._fipo_samples = forwarding.collect_samples(
                sequences=experience.sequences.cpu(), action_mask=experience.action_mask.cpu(),
                attention_mask=experience.attention_mask.cpu(), output=out,
                log_probs=out.log_ratio.cpu() + experience.action_log_probs.float().cpu(),
                old_log_probs=experience.action_log_probs.float().cpu(), advantages=experience.advantages.float().cpu(),
                rewards=experience.info.get("reward"), decode=lambda ids: tok.decode(ids, skip_special_tokens=False),
                tokens=tok.convert_ids_to_tokens, k=keep)
        return status

    @functools.wraps(train_fn)
    def ppo_train(self: Any, *args: Any, **kwargs: Any) -> dict:
        self._fipo_samples = []
        result = train_fn(self, *args, **kwargs)
        if self._fipo_samples:
            forwarding.tracker_handle().add_samples.remote(self._fipo_samples)
        return result

    trainer_cls.training_step, trainer_cls.ppo_train = training_step, ppo_train
    setattr(trainer_cls, _PATCHED, True)


def shuffle_within_ranks(batches: list[Any], split: Callable[[Any], list[Any]], make: Callable[[list[Any]], Any],
                         rng: random.Random) -> list[Any]:
    """Each rank's batch with its items in a random order (what ``balance_experiences`` put on each rank
    stays there, so the per-rank token balance is kept)."""
    out = []
    for batch in batches:
        items = list(split(batch))
        rng.shuffle(items)
        out.append(make(items))
    return out


def patch_balance(module: ModuleType) -> None:
    """Follow the module's ``balance_experiences`` with a seeded shuffle inside each rank."""
    balance = module.balance_experiences
    if getattr(balance, _PATCHED, False):
        return
    helpers = balance.__globals__  # openrlhf.trainer.ppo_utils.experience, where it is defined
    split, make = helpers["split_experience_batch"], helpers["make_experience_batch"]
    calls = itertools.count()

    @functools.wraps(balance)
    def balance_experiences(experiences: Any, args: Any) -> list[Any]:
        seed = getattr(getattr(args, "train", None), "seed", 0)
        rng = random.Random(f"fipo-balance:{seed}:{next(calls)}")
        return shuffle_within_ranks(balance(experiences, args), split, make, rng)

    setattr(balance_experiences, _PATCHED, True)
    module.balance_experiences = balance_experiences


def patch_trainer_module(module: ModuleType) -> None:
    """Tracker from the start, every logged step and evaluation forwarded, dynamic batches shuffled."""
    base = module.BasePPOTrainer
    if getattr(base, _PATCHED, False):
        return
    from fipo_engine.integrations.openrlhf import forwarding

    init, save, save_best = base.__init__, base.save_logs_and_checkpoints, base.save_best_checkpoint

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        try:
            forwarding.tracker_handle()  # reports `running` and starts the heartbeats before the slow model loads
        except Exception:
            log.exception("fipo: could not start the run's tracker")

    @functools.wraps(save)
    def save_logs_and_checkpoints(self: Any, global_step: int, logs_dict: dict | None = None, *args: Any,
                                  **kwargs: Any) -> Any:
        try:
            forwarding.tracker_handle().step.remote(global_step, forwarding.map_openrlhf_status(logs_dict or {}))
        except Exception:  # tracking must never stop training; the Ray job log still has every step
            log.exception("fipo: could not forward step %s to the tracker", global_step)
        return save(self, global_step, logs_dict, *args, **kwargs)

    @functools.wraps(save_best)
    def save_best_checkpoint(self: Any, eval_metrics: Any, global_step: int, *args: Any, **kwargs: Any) -> Any:
        try:
            if eval_metrics:
                k = int(self.args.eval.n_samples_per_prompt)
                forwarding.tracker_handle().eval.remote(global_step, dict(eval_metrics), k)
        except Exception:
            log.exception("fipo: could not forward the evaluation of step %s", global_step)
        return save_best(self, eval_metrics, global_step, *args, **kwargs)

    base.__init__, base.save_logs_and_checkpoints = __init__, save_logs_and_checkpoints
    base.save_best_checkpoint = save_best_checkpoint
    patch_balance(module)
    setattr(base, _PATCHED, True)


PATCHES: dict[str, Callable[[ModuleType], None]] = {
    LOSS_MODULE: patch_loss_module,
    ACTOR_MODULE: patch_actor_module,
    TRAINER_MODULE: patch_trainer_module,
}


# ------------------------------------------------------------------------------ the import hook
class _PatchAfterExec(importlib.abc.Loader):
    """Delegates to the real loader, then applies the patch to the freshly executed module."""

    def __init__(self, inner: importlib.abc.Loader, patch: Callable[[ModuleType], None]) -> None:
        self.inner, self.patch = inner, patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self.inner.exec_module(module)
        self.patch(module)


class PatchingFinder(importlib.abc.MetaPathFinder):
    """Finds the real spec of a patched module with the other finders and wraps its loader."""

    def find_spec(self, fullname: str, path: Any, target: ModuleType | None = None
                  ) -> importlib.machinery.ModuleSpec | None:
        patch = PATCHES.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchAfterExec(spec.loader, patch)
                return spec
        return None


def setup() -> None:
    """The hook Ray calls in every worker process (idempotent)."""
    if not any(isinstance(f, PatchingFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, PatchingFinder())
    for name, patch in PATCHES.items():
        module = sys.modules.get(name)
        if module is not None:
            patch(module)
