"""Training and evaluation problems from the configured source, and the seeded prompt stream.

Sources (``data.source``, each registered in ``fipo_engine.registry.DATA_SOURCES``): ``reasoning_gym``
(procedural, verifiable tasks generated offline), ``file`` (JSONL/Parquet read by
``data.files.read_problems``; DAPO-Math layout or problem/answer columns), ``champ`` (the 270 CHAMP
competition problems), ``chain_sum`` (built-in sums on which a longer chain of thought pays;
``data.chain_sum``). Add a source: a function ``(cfg, seed) -> (train, eval)`` registered here;
the run config accepts its name at once. The evaluation set is ``data.eval_path``
if given, else a held-out split; evaluation questions are removed from the training set so the
held-out number means something even for small procedural tasks that repeat questions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from fipo_engine.data.problem import Problem
from fipo_engine.registry import DATA_SOURCES

if TYPE_CHECKING:  # annotations only: at run time this module does not depend on them
    from fipo_engine.config import DataConfig

Split = tuple[list[Problem], list[Problem]]  # (train, eval)


def _text_of(prompt: str | list[dict[str, str]]) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(m.get("content", "") for m in prompt)


def _split(problems: list[Problem], eval_size: int, seed: int) -> Split:
    """Held-out split: a seeded random ``eval_size`` problems; their questions leave the train set."""
    if eval_size == 0:
        return problems, []
    order = np.random.default_rng(seed).permutation(len(problems))
    held = [problems[i] for i in sorted(order[:eval_size])]
    questions = {_text_of(p.prompt) for p in held}
    train = [problems[i] for i in sorted(order[eval_size:]) if _text_of(problems[i].prompt) not in questions]
    return train, held


# Each source is ``(cfg, seed) -> (train, eval)``, registered under its ``data.source`` name.
@DATA_SOURCES.register("reasoning_gym")
def _reasoning_gym(cfg: DataConfig, seed: int) -> Split:
    import reasoning_gym

    size = cfg.train_size + cfg.eval_size
    dataset = reasoning_gym.create_dataset(cfg.task, size=size, seed=seed, **cfg.task_kwargs)
    problems = []
    for i in range(size):
        entry = dataset[i]
        problems.append(Problem(
            id=f"{cfg.task}-{seed}-{i}", prompt=entry["question"], answer=str(entry["answer"]),
            source=f"reasoning_gym/{cfg.task}",
            metadata={"task": cfg.task, "task_kwargs": dict(cfg.task_kwargs), "entry": entry},
        ))
    return _split(problems, cfg.eval_size, seed)


@DATA_SOURCES.register("champ")
def _champ(cfg: DataConfig, seed: int) -> Split:
    import champ_dataset
    from natsort import natsorted

    ds = champ_dataset.load("v0")
    problems = [Problem(id=pid, prompt=ds.problems[pid].text, answer=str(ds.problems[pid].answer), source="champ")
                for pid in natsorted(ds.problems)]
    return _split(problems, cfg.eval_size, seed)


@DATA_SOURCES.register("chain_sum")
def _chain_sum(cfg: DataConfig, seed: int) -> Split:
    from fipo_engine.data.chain_sum import generate

    return _split(generate(cfg.task_kwargs, cfg.train_size + cfg.eval_size, seed), cfg.eval_size, seed)


@DATA_SOURCES.register("file")
def _file(cfg: DataConfig, seed: int) -> Split:
    from fipo_engine.data.files import read_problems

    train = read_problems(cfg.path)
    if cfg.eval_path:
        held = read_problems(cfg.eval_path)[: cfg.eval_size or None]
    else:
        train, held = _split(train, cfg.eval_size, seed)
    return train[: cfg.train_size], held


def load_problems(cfg: DataConfig, seed: int) -> Split:
    """``(train, eval)`` problems for a run; deterministic for a given config and seed."""
    train, held = DATA_SOURCES[cfg.source](cfg, seed)
    if not train:
        raise ValueError(f"data source {cfg.source!r} produced no training problems")
    return train, held


def render_prompt(problem: Problem, cfg: DataConfig, tokenizer: object, chat: bool) -> str:
    """The text the model continues: the chat template for chat models, ``Q\\nAnswer: `` otherwise."""
    if chat:
        messages = list(problem.prompt) if isinstance(problem.prompt, list) else [
            {"role": "user", "content": problem.prompt + cfg.prompt_suffix}]
        if cfg.system_prompt and messages[0].get("role") != "system":
            messages.insert(0, {"role": "system", "content": cfg.system_prompt})
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    prefix = f"{cfg.system_prompt}\n" if cfg.system_prompt else ""
    return f"{prefix}{_text_of(problem.prompt)}{cfg.prompt_suffix}\nAnswer: "


@dataclass
class PromptStream:
    """An endless, seeded stream of training problems, addressed by a position (for exact resume).

    Epoch ``e`` visits the problems in ``permutation(seed, e)`` order (or in file order when
    ``shuffle`` is off); ``position`` counts problems consumed since the start of training, so a
    checkpoint only needs that integer to continue with the very same prompts.
    """

    problems: Sequence[Problem]
    seed: int
    shuffle: bool = True
    position: int = 0

    def _order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.problems))
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.problems))

    def take(self, count: int) -> list[Problem]:
        out = []
        n = len(self.problems)
        while len(out) < count:
            epoch, offset = divmod(self.position, n)
            order = self._order(epoch)
            chunk = order[offset: offset + count - len(out)]
            out.extend(self.problems[i] for i in chunk)
            self.position += len(chunk)
        return out
