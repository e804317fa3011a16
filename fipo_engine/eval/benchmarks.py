"""Benchmarks by name, or any problem file: the problems, the grader and the prompt suffix.

Built in (offline, nothing downloaded):

* ``champ``: the numeric-answer subset of CHAMP (champ-dataset ``v0``, 270 competition problems,
  ids like ``P_Combinatorics_1``). CHAMP answers are free text ("No", "[-1, 1]", "0 is the only
  possible value"); only those that are a plain number (integer, decimal or a/b) can be graded
  automatically without false verdicts, so this subset is the default.
* ``champ-all``: all 270 problems, graded by the same math grader (many free-text answers will be
  judged wrong even when a human would accept them: use for plumbing, not for claims).

* task benchmarks (``TASK_BENCHMARKS``): held-out problems of a CPU task family, generated offline
  from a training preset's own ``data`` settings and graded by that preset's grader, so a
  ``cpu-demo`` checkpoint can be put on a board in seconds. Adding one is one line in that dict.

Any other name is read as a path with ``fipo_engine.data.files.read_problems`` (JSONL / JSON /
Parquet in the DAPO, problem/answer, question/answer or problem/solution layouts); the
benchmark's name is then the file's stem (``aime-2024.parquet`` -> ``aime-2024``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from fipo_engine.data.problem import Problem
from fipo_engine.registry import Registry

BOXED_SUFFIX = "\n\nPut your final answer within \\boxed{}."


@dataclass(frozen=True)
class Benchmark:
    """A resolved benchmark: its name, problems in a stable order, grader and prompt suffix."""

    name: str
    problems: list[Problem]
    grader: str = "math"
    prompt_suffix: str = ""   # appended to plain-text prompts when sampling (chat prompts are used as is)
    description: str = ""


BENCHMARKS: Registry[Callable[[], Benchmark]] = Registry("benchmark")

_NUMERIC = re.compile(r"^[+-]?\d+(\.\d+)?(/\d+)?$")


def _champ_problems(numeric_only: bool) -> list[Problem]:
    import champ_dataset
    from natsort import natsorted

    problems = champ_dataset.load("v0").problems
    out = []
    for pid in natsorted(problems):  # P_Combinatorics_2 before P_Combinatorics_10
        item = problems[pid]
        answer = item.answer.strip()
        if numeric_only and not _NUMERIC.match(answer):
            continue
        out.append(Problem(id=item.identifier, prompt=item.text, answer=answer, source="champ",
                           metadata={"category": item.category}))
    return out


@BENCHMARKS.register("champ")
def champ() -> Benchmark:
    return Benchmark("champ", _champ_problems(numeric_only=True), "math", BOXED_SUFFIX,
                     "CHAMP competition problems with a plain numeric answer (offline)")


@BENCHMARKS.register("champ-all")
def champ_all() -> Benchmark:
    return Benchmark("champ-all", _champ_problems(numeric_only=False), "math", BOXED_SUFFIX,
                     "all 270 CHAMP problems; free-text answers make automatic grading strict")


# Built-in task benchmarks: name -> (training preset whose data settings generate the problems,
# number of problems, generator seed). One line per task family; the web app lists every registered
# benchmark as a built-in, so a line here is all a new family needs.
TASK_BENCHMARKS: dict[str, tuple[str, int, int]] = {
    "cpu-arithmetic": ("cpu-demo", 100, 20_260_301),
    "chain-sum": ("cot-demo", 100, 20_261_205),
}


def _task_benchmark(name: str, preset_name: str, size: int, seed: int) -> Callable[[], Benchmark]:
    def load() -> Benchmark:
        from fipo_engine.config import preset
        from fipo_engine.data.sources import load_problems

        cfg = preset(preset_name)
        data = cfg.data.model_copy(update={"train_size": size, "eval_size": 0})
        problems, _ = load_problems(data, seed)
        return Benchmark(name, problems, cfg.reward.name, "",
                         f"{size} problems of the {preset_name} task ({data.task}), graded by {cfg.reward.name}")

    return load


for _name, (_preset, _size, _seed) in TASK_BENCHMARKS.items():
    BENCHMARKS.register(_name)(_task_benchmark(_name, _preset, _size, _seed))


def canonical_problems(problems: Sequence[Problem]) -> list[dict[str, object]]:
    """The part of a problem list that decides a score: id, prompt and answer, in order."""
    return [{"id": p.id, "prompt": p.prompt, "answer": p.answer} for p in problems]


def problems_sha256(problems: Sequence[Problem]) -> str:
    """SHA-256 of the canonical problem list (sorted keys, compact separators, UTF-8): two benchmarks
    with the same hash score the same problems, whatever file layout they came from."""
    text = json.dumps(canonical_problems(problems), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def benchmark_names() -> list[str]:
    return BENCHMARKS.names()


def load_benchmark(name_or_path: str, *, layout: str | None = None, grader: str | None = None,
                   prompt_suffix: str | None = None) -> Benchmark:
    """A registered benchmark by name, else a problem file by path; options override its defaults."""
    if name_or_path in BENCHMARKS:
        bench = BENCHMARKS[name_or_path]()
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise FileNotFoundError(
                f"{name_or_path!r} is neither a benchmark ({', '.join(benchmark_names())}) nor an existing file"
            )
        from fipo_engine.data.files import read_problems

        bench = Benchmark(path.stem if path.is_file() else path.name, read_problems(path, layout=layout),
                          "math", BOXED_SUFFIX, f"problems read from {path}")
    if grader is not None or prompt_suffix is not None:
        bench = Benchmark(bench.name, bench.problems, grader or bench.grader,
                          bench.prompt_suffix if prompt_suffix is None else prompt_suffix, bench.description)
    return bench
