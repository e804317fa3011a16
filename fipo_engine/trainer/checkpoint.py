"""Checkpoints that let ``--resume`` continue as if the run had never stopped.

``checkpoints/step_000010/`` holds:
- ``model/``: an ordinary Hugging Face directory (config, safetensors, tokenizer), loadable by
  ``fipo eval`` or ``model.source=hf``;
- ``optimizer.pt``: AdamW state; ``rng.pt``: Python, NumPy and torch (CPU, CUDA) RNG states;
- ``trainer_state.json``: step, optimizer steps, data position, whether the warm start ran;
- ``config.json``: the exact run config;
- ``owner.json``: a copy of the run directory's owner record (``fipo_engine.rundir``), when it has one.
A checkpoint is written to a temporary directory and renamed into place, so a crash never
leaves a half-written "newest" checkpoint. Listing, rotation and ``--resume`` see only the
checkpoints stamped with the directory's owner: a checkpoint another run left there is never
deleted as "older" nor resumed from.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fipo_engine.config import RunConfig
from fipo_engine.models.loader import Policy, save_policy
from fipo_engine.rundir import OWNER_FILE, read_owner

PREFIX = "step_"


@dataclass
class TrainerState:
    step: int = 0               # training steps completed
    optimizer_steps: int = 0    # AdamW steps (drives the warm-up schedule)
    data_position: int = 0      # problems consumed by the prompt stream
    sft_done: bool = False      # the supervised warm start has run


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(ckpt_root: Path, policy: Policy, optimizer: torch.optim.Optimizer, state: TrainerState,
                    cfg: RunConfig, keep: int, rng: dict[str, Any] | None = None) -> Path:
    """Write ``step_{state.step}``; ``rng`` replaces the current RNG states (a stop mid-step saves
    the states the step started with, so a resume redraws exactly what that step would have drawn)."""
    final = ckpt_root / f"{PREFIX}{state.step:06d}"
    tmp = ckpt_root / f".tmp-{PREFIX}{state.step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        save_policy(policy, tmp / "model")
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
        torch.save(rng if rng is not None else rng_state(), tmp / "rng.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(asdict(state), indent=2))
        (tmp / "config.json").write_text(cfg.to_json())
        owner_record = ckpt_root.parent / OWNER_FILE
        if owner_record.is_file():
            shutil.copyfile(owner_record, tmp / OWNER_FILE)
    except BaseException:
        # Disk full (or a stop) mid-write: drop the partial copy, which also gives back the space the
        # failure report needs; the newest complete checkpoint stays the newest.
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in list_checkpoints(ckpt_root)[:-keep]:  # this run's only: see list_checkpoints
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(ckpt_root: Path) -> list[Path]:
    """Complete checkpoints of the run that owns ``ckpt_root``'s directory, oldest first.

    A checkpoint counts when its ``owner.json`` names the same run as the run directory's (both
    absent for a plain ``fipo train`` directory), so another run's checkpoints are invisible here.
    """
    if not ckpt_root.is_dir():
        return []
    owner = read_owner(ckpt_root.parent)
    return sorted(p for p in ckpt_root.iterdir()
                  if p.is_dir() and p.name.startswith(PREFIX) and (p / "trainer_state.json").is_file()
                  and read_owner(p) == owner)


def latest_checkpoint(ckpt_root: Path) -> Path | None:
    found = list_checkpoints(ckpt_root)
    return found[-1] if found else None


def load_trainer_state(path: Path) -> TrainerState:
    return TrainerState(**json.loads((path / "trainer_state.json").read_text()))


def load_rng(path: Path) -> dict[str, Any]:
    return torch.load(path / "rng.pt", weights_only=False)


def load_optimizer_state(path: Path, optimizer: torch.optim.Optimizer) -> None:
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
