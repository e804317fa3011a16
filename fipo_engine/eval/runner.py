"""Grade k samples per problem and summarise them as the paper does (spec §9).

Two ways in, one way out:
* ``read_responses(path)``: responses a user already has (JSONL, one line per problem,
  ``{"id": ..., "responses": [...]}``, optional ``"lengths"`` (tokens) and ``"truncated"``);
* ``generate_samples(...)`` in ``fipo_engine.eval.generate``: sample k responses from a model;
then ``evaluate(benchmark, samples)`` grades every sample with the benchmark's grader (the same
graders as the training rewards) and returns an ``EvalResult`` (``to_dict()`` is the JSON that
``fipo eval --json`` prints and the ``eval`` tracking event carries).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fipo_engine.data.problem import Problem
from fipo_engine.eval.stats import avg_at_k, bootstrap_ci, length_summary, pass_at_k
from fipo_engine.eval.voting import consensus
from fipo_engine.rewards import get_grader


@dataclass(frozen=True)
class Sample:
    """One response; ``n_tokens``/``truncated`` are known when we generated it (or the file says)."""

    text: str
    n_tokens: int | None = None
    truncated: bool | None = None


@dataclass(frozen=True)
class ProblemResult:
    id: str
    gold: str
    n: int                         # samples graded
    correct: int                   # how many were correct
    pass_at_1: float               # correct / n
    cons_correct: bool             # majority answer correct
    majority: str | None           # the normalised majority answer
    answers: list[str | None]      # extracted answer of each sample (None: nothing extractable)
    correct_mask: list[bool]


@dataclass(frozen=True)
class EvalResult:
    benchmark: str
    grader: str
    n_problems: int
    k: int
    n_samples: int
    pass_at_1: float
    pass_at_1_ci: tuple[float, float]
    cons_at_k: float
    pass_at_k: float
    truncation_rate: float | None
    response_length_mean: float | None
    response_length_p75: float | None
    settings: dict[str, Any] = field(default_factory=dict)  # model, temperature, top_p, max_new_tokens...
    problems: list[ProblemResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pass_at_1_ci"] = list(self.pass_at_1_ci)
        return data

    def summary(self) -> dict[str, Any]:
        """Everything but the per-problem rows."""
        data = self.to_dict()
        data.pop("problems")
        return data

    def event_payload(self, step: int | None) -> dict[str, Any]:
        """The ``eval`` tracking event (docs/api-contract.md): ``tracker.eval(**result.event_payload(step))``."""
        return {**self.summary(), "step": step}


class ResponsesError(ValueError):
    """A responses file that does not match the benchmark."""


def read_responses(path: str | Path) -> dict[str, list[Sample]]:
    """``{"id": ..., "responses": [...], "lengths"?: [...], "truncated"?: [...]}`` per line -> samples by id."""
    path = Path(path)
    out: dict[str, list[Sample]] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ResponsesError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(row, dict) or "id" not in row or not isinstance(row.get("responses"), list):
            raise ResponsesError(f'{path}:{lineno}: expected {{"id": ..., "responses": [...]}}')
        pid, texts = str(row["id"]), row["responses"]
        lengths, truncated = row.get("lengths"), row.get("truncated")
        for name, extra in (("lengths", lengths), ("truncated", truncated)):
            if extra is not None and (not isinstance(extra, list) or len(extra) != len(texts)):
                raise ResponsesError(f"{path}:{lineno}: {name!r} must be a list as long as 'responses'")
        if pid in out:
            raise ResponsesError(f"{path}:{lineno}: problem id {pid!r} appears twice")
        out[pid] = [
            Sample(str(text), None if lengths is None else int(lengths[i]),
                   None if truncated is None else bool(truncated[i]))
            for i, text in enumerate(texts)
        ]
    return out


def match_samples(problems: Sequence[Problem], samples: Mapping[str, Sequence[Sample]], *,
                  partial: bool = False) -> list[Problem]:
    """The problems that have samples; unknown ids always fail, missing ones unless ``partial``."""
    known = {p.id for p in problems}
    unknown = [pid for pid in samples if pid not in known]
    if unknown:
        raise ResponsesError(f"{len(unknown)} response id(s) are not in the benchmark, e.g. {unknown[:3]}")
    missing = [p.id for p in problems if p.id not in samples]
    if missing and not partial:
        raise ResponsesError(f"{len(missing)} benchmark problem(s) have no responses, e.g. {missing[:3]} "
                             "(use --partial to grade only the problems present)")
    chosen = [p for p in problems if p.id in samples]
    if not chosen:
        raise ResponsesError("no problem has responses")
    return chosen


def grade_problem(problem: Problem, samples: Sequence[Sample], grader: str) -> ProblemResult:
    """Grade every sample of one problem; majority vote over equivalence classes of the extracted
    answers (``voting.consensus``: ``1/3`` and ``\\frac{1}{3}`` are one vote)."""
    if not samples:
        raise ResponsesError(f"problem {problem.id!r} has no responses")
    fn = get_grader(grader)
    verdicts = [fn(s.text, problem) for s in samples]
    answers = [v.extracted for v in verdicts]
    mask = [v.correct for v in verdicts]
    majority, voted_right, _ = consensus(answers, mask, grader)
    n, c = len(samples), sum(mask)
    return ProblemResult(problem.id, problem.answer, n, c, avg_at_k(n, c), voted_right, majority, answers, mask)


def summarize(benchmark: str, grader: str, results: Sequence[ProblemResult], samples: Sequence[Sequence[Sample]],
              *, k: int | None = None, seed: int = 0, settings: Mapping[str, Any] | None = None) -> EvalResult:
    """Aggregate per-problem results: avg@k, its bootstrap CI, cons@k, pass@k, lengths, truncation."""
    if not results:
        raise ValueError("nothing to summarise")
    min_n = min(r.n for r in results)
    k = min_n if k is None else k
    if k > min_n:
        raise ResponsesError(f"pass@{k} needs at least {k} samples per problem; the fewest is {min_n}")
    per_problem = [r.pass_at_1 for r in results]
    flat = [s for group in samples for s in group]
    lengths = [s.n_tokens for s in flat if s.n_tokens is not None]
    flags = [s.truncated for s in flat if s.truncated is not None]
    mean_len, p75_len = length_summary(lengths) if len(lengths) == len(flat) else (None, None)
    return EvalResult(
        benchmark=benchmark,
        grader=grader,
        n_problems=len(results),
        k=k,
        n_samples=len(flat),
        pass_at_1=sum(per_problem) / len(per_problem),
        pass_at_1_ci=bootstrap_ci(per_problem, seed=seed),
        cons_at_k=sum(r.cons_correct for r in results) / len(results),
        pass_at_k=sum(pass_at_k(r.n, r.correct, k) for r in results) / len(results),
        truncation_rate=(sum(flags) / len(flags)) if flags and len(flags) == len(flat) else None,
        response_length_mean=mean_len,
        response_length_p75=p75_len,
        settings=dict(settings or {}),
        problems=list(results),
    )


def evaluate(benchmark: str, problems: Sequence[Problem], samples: Mapping[str, Sequence[Sample]], *,
             grader: str = "math", k: int | None = None, partial: bool = False, seed: int = 0,
             settings: Mapping[str, Any] | None = None, progress: bool = False) -> EvalResult:
    """Grade ``samples`` (by problem id) against ``problems`` and summarise (see module docstring)."""
    chosen = match_samples(problems, samples, partial=partial)
    iterator: Any = chosen
    if progress:
        from tqdm import tqdm

        iterator = tqdm(chosen, desc="grading", unit="problem", disable=None)
    results = [grade_problem(p, samples[p.id], grader) for p in iterator]
    return summarize(benchmark, grader, results, [samples[p.id] for p in chosen], k=k, seed=seed,
                     settings=settings)


def format_table(result: EvalResult, *, per_problem: bool = True, max_rows: int = 50) -> str:
    """A readable report: headline numbers, then one row per problem."""
    def pct(x: float | None) -> str:
        return "-" if x is None else f"{100 * x:.1f}%"

    low, high = result.pass_at_1_ci
    rows = [
        (f"Pass@1 (avg@{result.k})", f"{pct(result.pass_at_1):>7}   95% CI [{pct(low)}, {pct(high)}]"),
        (f"cons@{result.k}", f"{pct(result.cons_at_k):>7}"),
        (f"pass@{result.k}", f"{pct(result.pass_at_k):>7}"),
        ("truncation rate", f"{pct(result.truncation_rate):>7}"),
    ]
    if result.response_length_mean is not None:
        rows.append(("response length", f"mean {result.response_length_mean:.0f}, "
                                        f"p75 {result.response_length_p75:.0f} tokens"))
    lines = [f"benchmark {result.benchmark}  ({result.n_problems} problems, k={result.k}, "
             f"{result.n_samples} samples, grader {result.grader})", ""]
    lines += [f"  {label:<20}  {value}" for label, value in rows]
    settings = ", ".join(f"{k}={v}" for k, v in result.settings.items() if v is not None)
    if settings:
        lines.append(f"  {'settings':<20}  {settings}")
    if per_problem:
        width = max(8, *(len(r.id) for r in result.problems[:max_rows]))
        lines += ["", f"  {'problem':<{width}}  {'correct':>9}  {'acc':>6}  cons  {'gold':<12}  majority"]
        for r in result.problems[:max_rows]:
            majority = "-" if r.majority is None else r.majority
            lines.append(f"  {r.id:<{width}}  {r.correct:>4}/{r.n:<4}  {pct(r.pass_at_1):>6}  "
                         f"{'yes' if r.cons_correct else 'no ':<4}  {r.gold[:12]:<12}  {majority[:24]}")
        if len(result.problems) > max_rows:
            lines.append(f"  ... {len(result.problems) - max_rows} more (use --json for all)")
    return "\n".join(lines)
