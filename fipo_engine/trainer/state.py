"""The objects the training loop hands from phase to phase (``loop.py`` reads them top to bottom).

``Run`` holds what lives as long as one ``train`` call: the config, model, optimizer, data, tracker,
and the little that changes between steps (``TrainerState``, the newest checkpoint). The others live
for one step: ``GenerationBatch`` (one draw of prompts and their responses), ``Group`` (a prompt and
its scored responses), ``RolloutBatch`` (the groups a step trains on), ``PolicyBatch`` (the same as
tensors, with advantages), ``SampleView`` (the sequences logged token by token) and ``StepMetrics``.
``StopRequested`` is raised wherever a stop is noticed and caught in one place, ``loop.train``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from fipo_engine.data import Problem, render_prompt
from fipo_engine.trainer.checkpoint import TrainerState

if TYPE_CHECKING:
    from fipo_engine.config import RunConfig
    from fipo_engine.data import PromptStream
    from fipo_engine.models.loader import Policy
    from fipo_engine.rollout import SamplingParams
    from fipo_engine.rollout.base import Generation, RolloutBackend
    from fipo_engine.tracking import Tracker
    from fipo_engine.trainer.batch import Packed
    from fipo_engine.trainer.stop import StopRequest


class StopRequested(Exception):
    """A stop (``trainer/stop.py``) was noticed at a safe point; ``loop.train`` catches it, once.

    ``rng``: the RNG state the checkpoint of the last finished step must hold when the current step
    has already drawn from the RNG (a stop during generation abandons the step, and a resume must
    redraw exactly what it drew); ``None`` saves the state as it is. ``during_warm_start``: the
    supervised warm start was cut short, so nothing is written (a resume starts it over).
    """

    def __init__(self, rng: dict[str, Any] | None = None, *, during_warm_start: bool = False) -> None:
        super().__init__("stop requested")
        self.rng = rng
        self.during_warm_start = during_warm_start


@dataclass
class TrainResult:
    """What a run produced: per-step metrics (as logged), the last checkpoint, the last eval."""

    history: list[dict[str, Any]] = field(default_factory=list)
    last_checkpoint: Path | None = None
    last_eval: dict[str, float] | None = None
    final_step: int = 0
    stopped: str | None = None  # the signal that stopped the run early (a checkpoint was written)


def encode_prompts(cfg: RunConfig, policy: Policy, problems: list[Problem]) -> list[list[int]]:
    """Prompt token ids as the policy reads them (chat template or plain, cut at ``data.max_prompt_length``)."""
    tok: Any = policy.tokenizer
    texts = [render_prompt(p, cfg.data, tok, policy.chat) for p in problems]
    enc = tok(texts, add_special_tokens=not policy.chat, truncation=True, max_length=cfg.data.max_prompt_length)
    return enc["input_ids"]


@dataclass
class Run:
    """One ``train`` call: what every phase reads, and the trainer state the steps advance."""

    cfg: RunConfig
    out: Path
    tracker: Tracker
    own_tracker: bool  # opened by ``train`` (so closed by it too)
    stop: StopRequest | None
    progress: bool  # terminal progress bars
    device: torch.device
    policy: Policy
    optimizer: torch.optim.Optimizer
    rollout: RolloutBackend
    params: SamplingParams
    stream: PromptStream
    train_problems: list[Problem]
    eval_problems: list[Problem]
    state: TrainerState
    saved_step: int  # the step of the newest checkpoint written or resumed from (-1: none)
    eval_prompts: list[list[int]] = field(default_factory=list)
    result: TrainResult = field(default_factory=TrainResult)
    bar: Any = None  # the RL steps' tqdm bar, once they start
    last_underfill_log: int | None = None  # the step of the last "batch not filled" line

    @property
    def model(self) -> torch.nn.Module:
        return self.policy.model

    @property
    def tok(self) -> Any:
        return self.policy.tokenizer

    @property
    def ckpt_root(self) -> Path:
        return self.out / "checkpoints"

    @property
    def stop_name(self) -> str:
        """What the stop is reported as: the signal's name, or ``stop`` when asked without one."""
        return (self.stop.signal_name if self.stop is not None else None) or "stop"

    def stopping(self) -> bool:
        """Whether a stop was requested (polled at safe points, and by the rollout once per token)."""
        return self.stop is not None and self.stop.requested()

    def encode(self, problems: list[Problem]) -> list[list[int]]:
        return encode_prompts(self.cfg, self.policy, problems)


@dataclass
class GenerationBatch:
    """One draw from the prompt stream and the ``rollout.n`` responses sampled for each prompt, grouped."""

    problems: list[Problem]
    prompt_ids: list[list[int]]
    outputs: list[Generation]  # prompt 0's n responses first


@dataclass
class Group:
    """One prompt and its ``rollout.n`` scored responses: what dynamic sampling keeps or drops."""

    problem: Problem
    prompt_ids: list[int]
    texts: list[str]
    response_ids: list[list[int]]
    truncated: list[bool]
    scores: list[float]  # the sequence rewards (overlong penalty included)
    correct: list[bool]  # the unpenalised correctness dynamic sampling filters on


@dataclass
class RolloutBatch:
    """The groups a step trains on, and what every generation batch drawn for them showed."""

    start_rng: dict[str, Any]  # the RNG state before the step drew anything (what a stop now saves)
    groups: list[Group] = field(default_factory=list)  # kept groups, in the order they were drawn
    scores: list[float] = field(default_factory=list)  # every generated response, kept or not
    correct: list[bool] = field(default_factory=list)
    num_gen_batches: int = 0
    generated: int = 0  # responses generated
    groups_seen: int = 0  # under dynamic sampling: groups filtered, and why the dropped ones were
    all_correct: int = 0
    all_wrong: int = 0
    stop_reason: str | None = None  # why drawing stopped (``sampling.stop_drawing``); None: draw more

    def sequences(self) -> tuple[list[list[int]], list[list[int]]]:
        """Prompt and response ids, one row per response, group after group."""
        return ([g.prompt_ids for g in self.groups for _ in g.response_ids],
                [r for g in self.groups for r in g.response_ids])

    def score_tensor(self) -> torch.Tensor:
        """The kept responses' scores as float32, the precision the advantage (and its metrics) see."""
        return torch.tensor([s for g in self.groups for s in g.scores], dtype=torch.float32)


@dataclass
class PolicyBatch:
    """The kept groups as the update reads them: packed sequences, per-token advantages, old log-probs."""

    packed: Packed
    advantages: torch.Tensor  # [N, L]: every token carries its sequence's advantage
    num_groups: int
    group_size: int
    orders: list[torch.Tensor]  # the group order of each PPO epoch
    old_log_prob: torch.Tensor | None = None  # [N, L], filled by recompute_old_log_probs and the first mini-batch

    @property
    def num_seqs(self) -> int:
        return self.num_groups * self.group_size


@dataclass
class SampleView:
    """The sequences a step logs token by token, where they were trained, and their per-token channels."""

    rows: list[int]  # sequence rows (``metrics.sample_indices``)
    minibatch_of: list[int]  # the mini-batch position of every group in the last pass
    num_minibatches: int
    channels: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)  # row -> channel -> [L]


def _phase_times() -> dict[str, float]:
    return {"timing/generate_s": 0.0, "timing/reward_s": 0.0}


@dataclass
class StepMetrics:
    """What one step logs, in the order it is logged: ``values`` as the phases add them, then the timings.

    The order is part of the output (the event's keys, the history rows), so phases only append.
    """

    values: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=_phase_times)  # seconds per phase
    trained_tokens: int = 0

    def emitted(self, step_s: float, generated: int, generated_tokens: int) -> dict[str, Any]:
        """The metric event's values: the phases' metrics, their timings, then throughput over ``step_s``."""
        return {**self.values, **self.timing, "timing/step_s": step_s,
                "perf/samples_per_second": generated / step_s,
                "perf/tokens_per_second": (generated_tokens + self.trained_tokens) / step_s}
