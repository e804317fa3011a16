"""Read problems from JSONL, JSON and Parquet files, whatever common layout they use.

Why layouts are detected rather than configured: the same benchmark circulates as a DAPO/verl
parquet (chat-message prompts, ``reward_model.ground_truth``, each problem repeated many times),
as a Hugging Face ``datasets`` export (``problem``/``answer`` columns, sometimes capitalised, a
``unique_id`` or ``ID`` column) or as a hand-written JSONL. Each layout below names the columns it
requires; the first that fits wins, or ``layout=`` forces one. A file that fits none fails with
the columns found and the layouts known.

    read_problems("aime-2024.parquet")            # DAPO layout, 32 repeats each -> 30 problems
    read_problems("math500.jsonl", layout="problem_answer")
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fipo_engine.data.problem import Problem

Row = dict[str, Any]

# Columns that may carry a problem id, in order of preference (matched case-insensitively).
ID_COLUMNS = ("id", "unique_id", "problem_id", "idx", "index", "uid")
SUFFIXES = (".jsonl", ".json", ".parquet")


class LayoutError(ValueError):
    """A file whose columns fit no known layout (the message lists both)."""


@dataclass(frozen=True)
class Layout:
    """A file layout: the columns it requires and how a row becomes (prompt, answer)."""

    name: str
    required: tuple[str, ...]
    description: str
    convert: Callable[[Mapping[str, Any]], tuple[str | list[dict[str, str]], str]]
    groups_repeats: bool = False

    def fits(self, columns: Mapping[str, str]) -> bool:
        return all(col in columns for col in self.required)


# ------------------------------------------------------------------------------------------ helpers
def _text(value: Any) -> str:
    if value is None:
        raise ValueError("missing value")
    return str(value).strip()


def _dapo(row: Mapping[str, Any]) -> tuple[list[dict[str, str]] | str, str]:
    prompt = row["prompt"]
    if isinstance(prompt, str):
        try:
            prompt = json.loads(prompt)
        except json.JSONDecodeError:
            return prompt, _text(_ground_truth(row["reward_model"]))
    messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in prompt]
    return messages, _text(_ground_truth(row["reward_model"]))


def _ground_truth(reward_model: Any) -> Any:
    if isinstance(reward_model, str):
        reward_model = json.loads(reward_model)
    if not isinstance(reward_model, Mapping) or "ground_truth" not in reward_model:
        raise ValueError("reward_model has no ground_truth")
    return reward_model["ground_truth"]


def _final_answer_of_gsm8k(answer: str) -> str:
    """GSM8K answers end with ``#### 72``; keep the number."""
    return answer.rsplit("####", 1)[1].strip().replace(",", "") if "####" in answer else answer


def _problem_answer(row: Mapping[str, Any]) -> tuple[str, str]:
    return _text(row["problem"]), _text(row["answer"])


def _question_answer(row: Mapping[str, Any]) -> tuple[str, str]:
    return _text(row["question"]), _final_answer_of_gsm8k(_text(row["answer"]))


def _problem_solution(row: Mapping[str, Any]) -> tuple[str, str]:
    from fipo_engine.rewards.extract import last_boxed

    answer = last_boxed(_text(row["solution"]))
    if answer is None:
        raise ValueError("solution has no \\boxed{} answer")
    return _text(row["problem"]), answer


# Order matters: the first layout that fits a file is used.
LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("dapo", ("prompt", "reward_model"),
               "verl/DAPO parquet: prompt = chat messages, reward_model.ground_truth; repeated prompts are grouped",
               _dapo, groups_repeats=True),
        Layout("problem_answer", ("problem", "answer"),
               "problem/answer columns (MATH-500, AIMO, AIME exports; id optional)", _problem_answer),
        Layout("question_answer", ("question", "answer"),
               "question/answer columns (GSM8K-style '#### n' answers are cut to n; id optional)", _question_answer),
        Layout("problem_solution", ("problem", "solution"),
               "problem/solution columns, the answer is the solution's last \\boxed{} (MATH)", _problem_solution),
    )
}


def layouts_help() -> str:
    """One line per layout: name, required columns, description (used in errors and --help)."""
    return "\n".join(f"  {lay.name}: needs {', '.join(lay.required)} ({lay.description})" for lay in LAYOUTS.values())


# -------------------------------------------------------------------------------------- file reading
def _files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
        if not files:
            raise FileNotFoundError(f"{path}: no {', '.join(SUFFIXES)} files in this directory")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix not in SUFFIXES:
        raise ValueError(f"{path}: unsupported file type {path.suffix!r}; expected one of {', '.join(SUFFIXES)}")
    return [path]


def _iter_file(path: Path) -> Iterator[Row]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        # Record batches, not the whole table: a DAPO training file has ~1.8M rows (17k problems
        # repeated), and only one row per distinct problem needs to stay in memory.
        for batch in pq.ParquetFile(path).iter_batches(batch_size=8192):
            yield from batch.to_pylist()
    elif path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ValueError(f"{path}: a .json file must hold a list of objects")
        yield from data
    else:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{lineno}: each line must be a JSON object")
                yield row


def iter_rows(path: str | Path) -> Iterator[Row]:
    """Rows of a JSONL / JSON (list of objects) / Parquet file, or of every such file in a directory,
    streamed in file order."""
    for file in _files(Path(path)):
        yield from _iter_file(file)


def _columns(rows: list[Row]) -> dict[str, str]:
    """Lower-cased column name -> the name as written (first spelling seen)."""
    columns: dict[str, str] = {}
    for row in rows[:1000]:
        for key in row:
            columns.setdefault(str(key).lower(), key)
    return columns


def detect_layout(columns: Mapping[str, str]) -> Layout:
    """The first layout whose required columns are all present (names compared case-insensitively)."""
    for layout in LAYOUTS.values():
        if layout.fits(columns):
            return layout
    found = ", ".join(sorted(columns.values())) or "(none)"
    raise LayoutError(f"columns found: {found}; no known layout fits. Known layouts:\n{layouts_help()}")


def _row_id(row: Mapping[str, Any], columns: Mapping[str, str]) -> str | None:
    for name in ID_COLUMNS:
        if name in columns and row.get(columns[name]) is not None:
            return str(row[columns[name]])
    extra = row.get(columns.get("extra_info", ""), None)
    if isinstance(extra, Mapping):
        for name in ("id", "index"):
            if extra.get(name) is not None:
                return str(extra[name])
    return None


def _prompt_key(prompt: str | list[dict[str, str]]) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True, ensure_ascii=False)


def read_problems(path: str | Path, *, layout: str | None = None) -> list[Problem]:
    """Problems of a file in any known layout (see ``LAYOUTS``), in file order.

    Ids come from an id column (``id``, ``unique_id``, ``ID`` ...) or ``extra_info.index``, else the
    row index. In the DAPO layout, rows with the same prompt are one problem; ``metadata["repeats"]``
    says how many rows it had (the DAPO AIME-2024 parquet repeats each problem 32 times).
    """
    path = Path(path)
    stream = iter_rows(path)
    head = list(itertools.islice(stream, 1000))  # the columns are read from the first rows
    if not head:
        raise ValueError(f"{path}: the file has no rows")
    columns = _columns(head)
    if layout is None:
        chosen = detect_layout(columns)
    elif layout not in LAYOUTS:
        raise LayoutError(f"unknown layout {layout!r}. Known layouts:\n{layouts_help()}")
    else:
        chosen = LAYOUTS[layout]
        if not chosen.fits(columns):
            found = ", ".join(sorted(columns.values()))
            raise LayoutError(f"{path}: layout {layout!r} needs columns {', '.join(chosen.required)}; found {found}")

    problems: dict[str, dict[str, Any]] = {}  # prompt key (or row position) -> fields, insertion-ordered
    seen_ids: set[str] = set()
    for index, raw in enumerate(itertools.chain(head, stream)):
        row = {str(k).lower(): v for k, v in raw.items()}
        try:
            prompt, answer = chosen.convert(row)
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: row {index} does not fit layout {chosen.name!r}: {exc}") from None
        key = _prompt_key(prompt) if chosen.groups_repeats else str(index)
        if key in problems:
            group = problems[key]
            group["repeats"] += 1
            if group["answer"] != answer:
                raise ValueError(f"{path}: row {index} repeats problem {group['id']!r} with another answer "
                                 f"({answer!r} vs {group['answer']!r})")
            continue
        pid = _row_id(raw, columns) or str(index if not chosen.groups_repeats else len(problems))
        if pid in seen_ids:
            raise ValueError(f"{path}: duplicate problem id {pid!r} (row {index})")
        seen_ids.add(pid)
        metadata = {"layout": chosen.name, "row": index, "path": str(path)}
        for extra in ("data_source", "ability", "level", "type", "subject", "category"):
            if extra in row and isinstance(row[extra], str | int | float):
                metadata[extra] = row[extra]
        problems[key] = {"id": pid, "prompt": prompt, "answer": answer, "metadata": metadata, "repeats": 1}

    return [
        Problem(id=p["id"], prompt=p["prompt"], answer=p["answer"], source=f"file:{chosen.name}",
                metadata={**p["metadata"], "repeats": p["repeats"]})
        for p in problems.values()
    ]
