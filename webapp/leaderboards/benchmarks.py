"""Stored benchmarks: upload (parse, validate, hash, version), built-ins, and resolving a reference.

Why stored and not read from a path: an evaluation request names a benchmark by id or name, never
by a file on the server (a path would let a user probe the worker's disk, and a file can change
under a board). The problems are parsed once at upload with ``fipo_engine.data.files`` (every
layout ``fipo eval`` reads), and their SHA-256 (``problems_sha256``: id, prompt, answer in order)
is what an entry keeps, so two numbers on one board were computed on the same problems.

* The same content uploaded again is the same benchmark (200 with it); a different file under a
  name the team already used is the next version (``aime-2024 (v2)``).
* Built-ins are the names registered in ``fipo_engine.eval.benchmarks`` (``champ``, ``champ-all``
  and the CPU task families of ``TASK_BENCHMARKS``); their rows (team null) are created the first
  time they are listed or named.
"""

from __future__ import annotations

import functools
import re
import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet

from webapp.accounts.models import Team, User
from webapp.accounts.selectors import user_can_write, user_team_ids
from webapp.common.errors import NotFound, PermissionDeniedError, ValidationFailed
from webapp.common.utils import BIGINT_MAX, parse_int
from webapp.leaderboards.models import Benchmark

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
# Names the leaderboard routes use for themselves (``/leaderboards/compare/`` ...).
RESERVED_NAMES = frozenset({"compare", "evaluate", "entries"})
UPLOAD_SUFFIXES = (".jsonl", ".json", ".parquet")
MAX_UPLOAD_BYTES = settings.FIPO_BENCHMARK_MAX_BYTES


def _bad(path: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, fields=[{"path": path, "message": message}])


def looks_like_path(value: str) -> bool:
    """A file path rather than a name: separators, a home or relative prefix, or a file suffix."""
    return ("/" in value or "\\" in value or value.startswith((".", "~"))
            or value.lower().endswith(UPLOAD_SUFFIXES) or ".." in value)


def clean_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _bad("name", "name is required")
    name = value.strip()
    if looks_like_path(name) or not NAME_RE.match(name):
        raise _bad("name", "name must be 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit")
    if name in RESERVED_NAMES or name in _builtin_names():
        raise _bad("name", f"{name!r} is reserved (a built-in benchmark or a leaderboard route)")
    return name


# --------------------------------------------------------------------------------------- built-ins
def _builtin_names() -> list[str]:
    from fipo_engine.eval.benchmarks import benchmark_names

    return benchmark_names()


@functools.lru_cache(maxsize=16)
def _builtin_content(name: str) -> tuple[str, str, list[dict[str, Any]]]:
    """(grader, sha256, canonical problems) of a built-in, loaded once per process (seconds each)."""
    from fipo_engine.eval.benchmarks import canonical_problems, load_benchmark, problems_sha256

    bench = load_benchmark(name)
    return bench.grader, problems_sha256(bench.problems), canonical_problems(bench.problems)


def ensure_builtin(name: str) -> Benchmark:
    """The stored row of a built-in benchmark, created the first time it is needed."""
    row = Benchmark.objects.filter(team__isnull=True, name=name).order_by("-version").first()
    if row is not None:
        return row
    grader, sha, problems = _builtin_content(name)
    try:
        with transaction.atomic():
            return Benchmark.objects.create(team=None, name=name, version=1, sha256=sha, n_problems=len(problems),
                                            grader=grader, layout="builtin", problems=problems)
    except IntegrityError:  # created by a concurrent request
        return Benchmark.objects.get(team__isnull=True, name=name, version=1)


def ensure_builtins() -> None:
    for name in _builtin_names():
        ensure_builtin(name)


# ------------------------------------------------------------------------------------------ reads
def visible(*, user: User, team_id: int | None = None) -> QuerySet[Benchmark]:
    """Benchmarks of the user's teams (or of one of them) and the built-ins."""
    teams = user_team_ids(user=user)
    if team_id is not None:
        teams = [t for t in teams if t == team_id]
    return Benchmark.objects.filter(Q(team__isnull=True) | Q(team_id__in=teams)).select_related("team")


def benchmark_list(*, user: User) -> list[Benchmark]:
    ensure_builtins()
    return list(visible(user=user).defer("problems").order_by("team_id", "name", "version"))


def benchmark_get(*, user: User, benchmark_id: int) -> Benchmark:
    row = visible(user=user).filter(pk=benchmark_id).first()
    if row is None:
        raise NotFound(f"benchmark {benchmark_id} not found")
    return row


def benchmark_resolve(*, user: User, ref: Any, team_id: int | None = None, field: str = "benchmark",
                      missing: str = "invalid", version: int | None = None) -> Benchmark:
    """A benchmark by id (int or digits) or by name (the team's latest version, else the built-in).

    A file path is refused with a 400 naming ``field``: evaluation never reads a path it is given.
    ``missing="not_found"`` makes an unknown benchmark a 404 (URLs) instead of a 400 (bodies).
    """
    def unknown(what: str) -> Exception:
        if missing == "not_found":
            return NotFound(f"benchmark {what} not found")
        return _bad(field, f"unknown benchmark {what}")

    if isinstance(ref, bool) or ref is None or (isinstance(ref, str) and not ref.strip()):
        raise _bad(field, "a benchmark id or name is required")
    if isinstance(ref, str) and parse_int(ref.strip(), lo=1) is not None:
        ref = int(ref.strip())
    if isinstance(ref, int):
        row = visible(user=user, team_id=team_id).filter(pk=ref).first() if 1 <= ref <= BIGINT_MAX else None
        if row is None:
            raise unknown(str(ref))
        return row
    if not isinstance(ref, str):
        raise _bad(field, "a benchmark id or name is required")
    name = ref.strip()
    if looks_like_path(name):
        raise _bad(field, "give a benchmark id or name, not a file path: upload the file as a benchmark first")
    if not NAME_RE.match(name):
        raise _bad(field, "not a benchmark name")
    rows = visible(user=user, team_id=team_id).filter(name=name, team__isnull=False)
    if version is not None:
        rows = rows.filter(version=version)
    row = rows.order_by("-version", "team_id").first()
    if row is not None:
        return row
    if name in _builtin_names():
        builtin = ensure_builtin(name)
        if version is None or builtin.version == version:
            return builtin
    raise unknown(repr(name) + (f" v{version}" if version else ""))


# ----------------------------------------------------------------------------------------- upload
def parse_upload(upload: UploadedFile, *, layout: str | None = None) -> tuple[str, list[Any]]:
    """(layout name, problems) of an uploaded file, read exactly as ``fipo eval`` reads files.

    Raises ``ValidationFailed`` naming the columns found and what each layout needs."""
    from fipo_engine.data.files import LAYOUTS, LayoutError, layouts_help, read_problems

    suffix = Path(upload.name or "").suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise _bad("file", f"file must be one of {', '.join(UPLOAD_SUFFIXES)} (got {suffix or 'no suffix'!r}); "
                           f"layouts:\n{layouts_help()}")
    if upload.size is not None and upload.size > MAX_UPLOAD_BYTES:
        raise _bad("file", f"file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
    if layout is not None and layout not in LAYOUTS:
        raise _bad("layout", f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    with tempfile.TemporaryDirectory(prefix="fipo-bench-") as tmp:
        path = Path(tmp) / f"upload{suffix}"
        with path.open("wb") as fh:
            for chunk in upload.chunks():
                fh.write(chunk)
        try:
            problems = read_problems(path, layout=layout)
        except LayoutError as exc:
            raise _bad("file", str(exc).replace(str(path), upload.name or "file")) from None
        except (ValueError, KeyError, TypeError, OSError, UnicodeDecodeError) as exc:
            raise _bad("file", f"could not read the file: {str(exc).replace(str(path), upload.name or 'file')}") from None
        except Exception as exc:  # pyarrow's errors (a broken parquet) are not ValueErrors
            raise _bad("file", f"could not read the file ({type(exc).__name__}): "
                               f"{str(exc).replace(str(path), upload.name or 'file')[:300]}") from None
    if not problems:
        raise _bad("file", "the file has no problems")
    used = problems[0].metadata.get("layout", layout or "")
    return str(used), problems


def benchmark_upload(*, user: User, team_id: Any, name: Any, upload: UploadedFile | None,
                     layout: Any = None, grader: Any = None) -> tuple[Benchmark, bool]:
    """Store an uploaded benchmark; returns (benchmark, created). Nothing is stored on any error."""
    from fipo_engine.eval.benchmarks import canonical_problems, problems_sha256
    from fipo_engine.rewards import grader_names

    if isinstance(team_id, str):  # a multipart field: ASCII digits within the id column ('²' is not one)
        team_id = parse_int(team_id.strip(), lo=0)
    if isinstance(team_id, bool) or not isinstance(team_id, int) or not 0 <= team_id <= BIGINT_MAX:
        raise _bad("team", "team must be a team id")
    if team_id not in user_team_ids(user=user):
        raise NotFound(f"team {team_id} not found")
    if not user_can_write(user=user, team_id=team_id):
        raise PermissionDeniedError("viewers cannot upload benchmarks")
    clean = clean_name(name)
    if upload is None:
        raise _bad("file", "file is required (multipart field 'file')")
    grader_name = grader or "math"
    if not isinstance(grader_name, str) or grader_name not in grader_names():
        raise _bad("grader", f"grader must be one of {', '.join(grader_names())}")
    used_layout, problems = parse_upload(upload, layout=layout or None)
    sha = problems_sha256(problems)
    with transaction.atomic():
        Team.objects.select_for_update().get(pk=team_id)  # serialises versions of one team
        existing = Benchmark.objects.filter(team_id=team_id, sha256=sha).first()
        if existing is not None:
            return existing, False
        last = Benchmark.objects.filter(team_id=team_id, name=clean).order_by("-version").first()
        row = Benchmark.objects.create(
            team_id=team_id, name=clean, version=(last.version + 1) if last else 1, sha256=sha,
            n_problems=len(problems), grader=grader_name, layout=used_layout,
            source_name=(upload.name or "")[:200], problems=canonical_problems(problems), created_by=user)
    return row, True


def benchmark_file(bench: Benchmark, directory: Path) -> tuple[Path, str]:
    """Write a stored benchmark as a file ``fipo eval`` reads (name = stem, so results carry the
    benchmark's name); returns (path, layout). Chat prompts use the DAPO layout, text prompts
    problem/answer; ids are kept."""
    import json

    chat = any(isinstance(p["prompt"], list) for p in bench.problems)
    path = directory / f"{bench.name}.jsonl"
    with path.open("w", encoding="utf-8") as fh:
        for p in bench.problems:
            row = ({"id": p["id"], "prompt": p["prompt"], "reward_model": {"ground_truth": p["answer"]}} if chat
                   else {"id": p["id"], "problem": p["prompt"], "answer": p["answer"]})
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path, "dapo" if chat else "problem_answer"
