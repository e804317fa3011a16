"""`fipo eval`: Pass@1 (avg@k), cons@k, pass@k and a bootstrap CI on a benchmark (spec §9).

    fipo eval --model CHECKPOINT_DIR --benchmark champ --k 32 --temperature 1.0 --top-p 0.7
    fipo eval --responses answers.jsonl --benchmark aime-2024.parquet --json

With ``--model``, k responses per problem are sampled with the trainer's own rollout code; with
``--responses``, a JSONL file of existing responses is graded (``{"id", "responses": [...]}`` per
line): the way to put an external model on a leaderboard. Grading uses the same graders as the
training rewards. ``--out FILE`` writes the JSON result (what the control plane's eval job reads).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fipo_engine.fsutil import atomic_write_text

# The paper's evaluation sampling (docs/spec.md §9), used by --model unless overridden.
PAPER_PROTOCOL = {"temperature": 1.0, "top_p": 0.7, "max_new_tokens": 20480}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="model or `fipo train` checkpoint directory, or 'smollm2'")
    source.add_argument("--responses", help='JSONL of {"id": ..., "responses": [...]} to grade (no model)')
    parser.add_argument("--benchmark", required=True,
                        help="benchmark name (champ, champ-all) or a JSONL/JSON/Parquet problem file")
    parser.add_argument("--layout", default=None, help="force a file layout (dapo, problem_answer, ...)")
    parser.add_argument("--grader", default=None, help="override the benchmark's grader (math, exact, ...)")
    parser.add_argument("--prompt-suffix", default=None,
                        help="appended to plain-text prompts (default: ask for a \\boxed{} answer)")
    parser.add_argument("--k", type=int, default=None,
                        help="samples per problem (default 32 with --model; with --responses, the fewest given)")
    # None = not given: --model then uses the paper's values; --responses records only what is given
    parser.add_argument("--temperature", type=float, default=None, help="sampling temperature (paper 1.0)")
    parser.add_argument("--top-p", type=float, default=None, help="nucleus mass (paper 0.7)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="response length limit (paper 20480)")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per generate() call (memory only)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--backend", default="hf", choices=("hf", "vllm"),
                        help="sampler: hf (transformers generate) or vllm (one GPU; not installed by default)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N problems (in benchmark order)")
    parser.add_argument("--partial", action="store_true",
                        help="with --responses: grade only the problems that have responses")
    parser.add_argument("--seed", type=int, default=0, help="seeds sampling and the bootstrap")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--out", default=None, help="also write the JSON result to this file")
    parser.add_argument("--save-responses", default=None,
                        help="with --model: write the sampled responses as a --responses JSONL file")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step, recorded in the JSON result")
    parser.add_argument("--report-lines", action="store_true",
                        help="with --model: print progress, every problem's responses and the result as "
                             "'fipo-eval <kind> <json>' lines (what an eval job on Ray reports through its log)")
    parser.add_argument("--benchmark-env", default=None, metavar="VAR",
                        help="read the benchmark file from this environment variable (gzip + base64 of the "
                             "file, how an eval job on Ray carries a stored benchmark); --benchmark is then its name")
    parser.add_argument("--server", default=None, metavar="URL",
                        help="take --benchmark (an id or name) from this control plane's stored benchmarks; "
                             "the API token is read from $FIPO_API_TOKEN")
    parser.add_argument("--submit", default=None, metavar="MODEL_NAME",
                        help="with --server: put the result on the benchmark's board under this model name")
    parser.add_argument("--team", type=int, default=None,
                        help="with --submit: the team whose board gets the entry (default: the benchmark's team)")
    parser.add_argument("--progress-file", default=None,
                        help='with --model: rewrite this JSON file after each batch: {"done", "total", '
                             '"samples", "correct", "pass_at_1"} (what the control plane\'s eval job shows live)')


class ProgressFile:
    """Running progress of a sampling eval, graded batch by batch, written atomically to a JSON file
    (``path``) and/or printed as a report line (``report_lines``, see ``fipo_engine.eval.report``).

    Grading a batch as it arrives costs ~0.5 ms per response (docs/evaluation.md), so the running
    Pass@1 is the real one so far, not an estimate; the final result grades everything again."""

    def __init__(self, path: str | None, total: int, bench: object, *, report_lines: bool = False) -> None:
        from fipo_engine.data.problem import Problem

        self.path, self.total, self.bench = Path(path) if path else None, total, bench
        self.report_lines = report_lines
        self.by_id: dict[str, Problem] = {p.id: p for p in bench.problems}  # type: ignore[attr-defined]
        self.done = self.samples = 0
        self.acc_sum = 0.0
        self.correct = 0
        self.write()

    def add(self, batch: dict) -> None:
        from fipo_engine.eval.runner import grade_problem

        for pid, group in batch.items():
            result = grade_problem(self.by_id[pid], group, self.bench.grader)  # type: ignore[attr-defined]
            self.done += 1
            self.samples += result.n
            self.correct += result.correct
            self.acc_sum += result.pass_at_1
        self.write()

    def write(self) -> None:
        data = {"done": self.done, "total": self.total, "samples": self.samples, "correct": self.correct,
                "pass_at_1": self.acc_sum / self.done if self.done else None}
        if self.report_lines:
            from fipo_engine.eval.report import emit

            emit("progress", data)
        if self.path is None:
            return
        atomic_write_text(self.path, json.dumps(data))


class _Stop(Exception):
    """Leave ``fipo eval`` with ``message`` on stderr and exit ``code`` (2: bad input; 1: after the result)."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def run(args: argparse.Namespace) -> int:
    """Resolve the benchmark, get responses (given or sampled), grade them, report, maybe submit."""
    from fipo_engine.eval.runner import ResponsesError, evaluate, format_table

    try:
        bench, remote, client = _resolve_benchmark(args)
        problems = bench.problems[: args.limit] if args.limit else bench.problems
        given = {"temperature": args.temperature, "top_p": args.top_p, "max_new_tokens": args.max_new_tokens}
        if args.responses:
            samples, settings, partial = _given_responses(args, problems, given)
        else:
            samples, settings, partial = _sampled_responses(args, bench, problems, given)
        try:
            result = evaluate(bench.name, problems, samples, grader=bench.grader, k=args.k, partial=partial,
                              seed=args.seed, settings=settings, progress=not (args.json or args.report_lines))
        except (ResponsesError, ValueError) as exc:
            raise _Stop(str(exc)) from None
        data = result.to_dict()
        data["step"] = args.step
        _report(args, data, format_table(result))
        if args.submit and remote is not None and client is not None:
            _submit(args, data, remote, client)
    except _Stop as stop:
        print(f"fipo eval: {stop}", file=sys.stderr)
        return stop.code
    return 0


def _resolve_benchmark(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(benchmark, remote benchmark or None, API client or None) from --server, --benchmark-env or a name/path."""
    from fipo_engine.eval.benchmarks import load_benchmark

    if args.submit and not args.server:
        raise _Stop("--submit needs --server (the board lives on the control plane)")
    try:
        if args.server:
            from fipo_engine.eval.remote import api_client, fetch_benchmark

            client = api_client(args.server)
            remote = fetch_benchmark(client, args.benchmark, grader=args.grader, prompt_suffix=args.prompt_suffix)
            return remote.benchmark, remote, client
        if args.benchmark_env:
            return _benchmark_from_env(args), None, None
        return load_benchmark(args.benchmark, layout=args.layout, grader=args.grader,
                              prompt_suffix=args.prompt_suffix), None, None
    except (FileNotFoundError, ValueError) as exc:
        raise _Stop(str(exc)) from None


def _given_responses(args: argparse.Namespace, problems: list[Any], given: dict[str, Any]
                     ) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(samples, settings, partial) from a --responses file; the sampling settings are the user's word."""
    from fipo_engine.eval.runner import ResponsesError, read_responses

    try:
        samples = read_responses(args.responses)
    except (OSError, ResponsesError) as exc:
        raise _Stop(str(exc)) from None
    # how the external responses were sampled, when the user says so (recorded, not checked)
    settings = {"responses": str(args.responses), **{k: v for k, v in given.items() if v is not None}}
    if args.limit:
        samples = {pid: s for pid, s in samples.items() if pid in {p.id for p in problems}}
    return samples, settings, args.partial or bool(args.limit)


def _sampled_responses(args: argparse.Namespace, bench: Any, problems: list[Any], given: dict[str, Any]
                       ) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(samples, settings, partial=False): k responses per problem from --model, with the paper's
    sampling protocol unless overridden; saved and/or reported as lines when asked."""
    from tqdm import tqdm

    from fipo_engine.eval.generate import SamplingSettings, generate_samples
    from fipo_engine.eval.report import emit

    k = args.k or 32
    protocol = {**PAPER_PROTOCOL, **{k: v for k, v in given.items() if v is not None}}
    sampling = SamplingSettings(k=k, temperature=protocol["temperature"], top_p=protocol["top_p"],
                                max_new_tokens=protocol["max_new_tokens"], batch_size=args.batch_size,
                                seed=args.seed, device=args.device, backend=args.backend)
    progress = (ProgressFile(args.progress_file, len(problems), bench, report_lines=args.report_lines)
                if args.progress_file or args.report_lines else None)
    # with report lines the log is read by a program: no progress bar between them
    with tqdm(total=len(problems), desc=f"sampling k={k}", unit="problem",
              disable=True if args.report_lines else None) as bar:
        samples = generate_samples(args.model, problems, sampling, prompt_suffix=bench.prompt_suffix,
                                   on_progress=bar.update, on_samples=progress.add if progress else None)
    rows = [{"id": pid, "responses": [s.text for s in group], "lengths": [s.n_tokens for s in group],
             "truncated": [s.truncated for s in group]} for pid, group in samples.items()]
    if args.save_responses:
        with open(args.save_responses, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
    if args.report_lines:
        for row in rows:
            emit("responses", row)
    return samples, {"model": str(args.model), **protocol, "seed": args.seed}, False


def _report(args: argparse.Namespace, data: dict[str, Any], table: str) -> None:
    """Write --out, then a report line (for a launcher), JSON (--json) or the table."""
    from fipo_engine.eval.report import emit

    if args.out:
        Path(args.out).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if args.report_lines:
        emit("result", data)
    else:
        print(json.dumps(data) if args.json else table)


def _submit(args: argparse.Namespace, data: dict[str, Any], remote: Any, client: Any) -> None:
    """Post the result to the control plane's board as ``--submit NAME``; exit 1 if it refuses."""
    from fipo_engine.eval.remote import RemoteError, submit_entry

    try:
        entry = submit_entry(client, remote, team=args.team, model_name=args.submit, result=data)
    except RemoteError as exc:
        raise _Stop(str(exc), code=1) from None  # the evaluation itself succeeded and was printed
    print(f"fipo eval: submitted as entry {entry.get('id')} on the board of {remote.label} "
          f"({args.server.rstrip('/')}/leaderboards/entries/{entry.get('id')}/)", file=sys.stderr)


def _benchmark_from_env(args: argparse.Namespace) -> object:
    """The benchmark a Ray eval job carries in ``$<args.benchmark_env>`` (gzip + base64 of its file),
    named ``args.benchmark``; read through the same file readers as a path."""
    import os
    import re
    import tempfile

    from fipo_engine.eval.benchmarks import load_benchmark
    from fipo_engine.eval.report import decode_file

    encoded = os.environ.get(args.benchmark_env)
    if not encoded:
        raise ValueError(f"--benchmark-env: ${args.benchmark_env} is not set")
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,100}", args.benchmark):
        raise ValueError("--benchmark-env: --benchmark must be the benchmark's name (letters, digits, . _ -)")
    try:
        content = decode_file(encoded)
    except ValueError as exc:
        raise ValueError(f"--benchmark-env: ${args.benchmark_env} is {exc}") from None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{args.benchmark}.jsonl"
        path.write_bytes(content)
        return load_benchmark(str(path), layout=args.layout, grader=args.grader, prompt_suffix=args.prompt_suffix)
