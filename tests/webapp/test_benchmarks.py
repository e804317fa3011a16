"""Stored benchmarks, eval jobs, entry pages and comparisons through the API.

Uploads are parsed with every layout ``fipo eval`` reads and hashed; a known content answers 200
with the existing benchmark, a new one under a used name is the next version. Evaluation names a
benchmark by id or name, never a path. Another team's benchmark, job or entry is a 404.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from fipo_engine.config import preset
from tests.engine import fixtures as fx
from webapp.accounts.models import Membership, Role, Team, User
from webapp.leaderboards.models import Benchmark, EntryDetail, EvalJob, LeaderboardEntry
from webapp.runs.models import Checkpoint, Run

pytestmark = pytest.mark.django_db


def _user(name: str, team: Team, role: str = Role.MEMBER) -> User:
    user = User.objects.create(username=name)
    Membership.objects.create(user=user, team=team, role=role)
    return user


@pytest.fixture
def teams() -> dict[str, Any]:
    a, b = Team.objects.create(name="alpha"), Team.objects.create(name="beta")
    return {"a": a, "b": b, "alice": _user("alice", a), "bob": _user("bob", b), "vera": _user("vera", a, Role.VIEWER)}


def _client(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _jsonl(rows: list[dict[str, Any]], name: str = "bench.jsonl") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, "".join(json.dumps(r) + "\n" for r in rows).encode(), "application/jsonl")


PROBLEMS = [{"id": f"p{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(1, 7)]


def _upload(client: APIClient, team: Team, file: Any, name: str = "aime-2024") -> Any:
    return client.post("/api/v1/benchmarks/", {"file": file, "name": name, "team": team.pk}, format="multipart")


def test_upload_versions_and_dedup(teams: dict[str, Any], tmp_path: Path) -> None:
    alice = _client(teams["alice"])
    first = _upload(alice, teams["a"], _jsonl(PROBLEMS))
    assert first.status_code == 201, first.content
    body = first.json()
    assert {k: body[k] for k in ("name", "version", "n_problems", "grader", "team")} == \
        {"name": "aime-2024", "version": 1, "n_problems": 6, "grader": "math", "team": teams["a"].pk}
    assert len(body["sha256"]) == 64 and body["label"] == "aime-2024"

    again = _upload(alice, teams["a"], _jsonl(PROBLEMS, "renamed.jsonl"))
    assert again.status_code == 200 and again.json()["id"] == body["id"]

    # the same problems in the DAPO parquet layout (repeated rows, chat prompts) are other content
    dapo = fx.dapo_parquet(tmp_path / "aime.parquet")
    v2 = _upload(alice, teams["a"], SimpleUploadedFile("aime.parquet", dapo.read_bytes()))
    assert v2.status_code == 201, v2.content
    assert (v2.json()["version"], v2.json()["label"]) == (2, "aime-2024 (v2)")
    assert v2.json()["n_problems"] == len(fx.PROBLEMS)

    detail = alice.get(f"/api/v1/benchmarks/{v2.json()['id']}/").json()
    assert isinstance(detail["problems"][0]["prompt"], list) and detail["problems"][0]["answer"]
    listing = alice.get("/api/v1/benchmarks/").json()
    names = {(b["name"], b["version"]) for b in listing}
    assert {("aime-2024", 1), ("aime-2024", 2), ("champ", 1), ("champ-all", 1), ("cpu-arithmetic", 1)} <= names
    assert all(b["builtin"] for b in listing if b["team"] is None)


def test_bad_files_are_400_naming_columns_and_nothing_is_stored(teams: dict[str, Any]) -> None:
    alice = _client(teams["alice"])
    wrong = _upload(alice, teams["a"], _jsonl([{"question_text": "x", "gold": "1"}]))
    assert wrong.status_code == 400
    message = wrong.json()["error"]["message"]
    assert "question_text" in message and "gold" in message  # the columns found
    for layout in ("dapo: needs prompt, reward_model", "problem_answer: needs problem, answer",
                   "question_answer: needs question, answer", "problem_solution: needs problem, solution"):
        assert layout in message
    assert wrong.json()["error"]["fields"][0]["path"] == "file"
    assert _upload(alice, teams["a"], SimpleUploadedFile("x.csv", b"a,b\n1,2\n")).status_code == 400
    assert _upload(alice, teams["a"], SimpleUploadedFile("x.jsonl", b"{not json\n")).status_code == 400
    assert _upload(alice, teams["a"], SimpleUploadedFile("x.parquet", b"PAR1garbage")).status_code == 400
    dup = _jsonl([PROBLEMS[0], PROBLEMS[0]])
    assert _upload(alice, teams["a"], dup).status_code == 400
    no_file = alice.post("/api/v1/benchmarks/", {"name": "x", "team": teams["a"].pk}, format="multipart")
    assert no_file.status_code == 400 and no_file.json()["error"]["fields"][0]["path"] == "file"
    for name in ("../etc", "a/b", "champ", "compare", "", "x" * 80):
        r = _upload(alice, teams["a"], _jsonl(PROBLEMS), name=name)
        assert r.status_code == 400 and r.json()["error"]["fields"][0]["path"] == "name", name
    assert not Benchmark.objects.filter(team__isnull=False).exists()


def test_benchmark_access(teams: dict[str, Any]) -> None:
    alice, bob, vera = _client(teams["alice"]), _client(teams["bob"]), _client(teams["vera"])
    bench = _upload(alice, teams["a"], _jsonl(PROBLEMS)).json()
    assert bob.get(f"/api/v1/benchmarks/{bench['id']}/").status_code == 404
    assert bench["id"] not in [b["id"] for b in bob.get("/api/v1/benchmarks/").json()]
    assert vera.get(f"/api/v1/benchmarks/{bench['id']}/").status_code == 200  # viewers read
    viewer_upload = _upload(vera, teams["a"], _jsonl(PROBLEMS[:2]))
    assert viewer_upload.status_code == 403
    assert _upload(bob, teams["a"], _jsonl(PROBLEMS[:2])).status_code == 404  # not bob's team
    assert APIClient().get("/api/v1/benchmarks/").status_code == 401


def _run(team: Team, name: str = "run") -> Run:
    cfg = preset("cpu-demo")
    return Run.objects.create(name=name, team=team, config=cfg.model_dump(mode="json"),
                              schema_version=cfg.schema_version, preset="cpu-demo")


@pytest.fixture
def eager_celery():
    from worker.celery_app import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = before


@pytest.fixture
def tiny_run(teams: dict[str, Any], tmp_path: Path, settings) -> Run:
    from fipo_engine.config import ModelConfig
    from fipo_engine.models.loader import build_tiny, save_policy
    from webapp.runs.services import run_paths

    settings.FIPO_RUNS_DIR = tmp_path / "runs"
    run = _run(teams["a"], "tiny")
    checkpoint_dir = run_paths(run)[0] / "checkpoints" / "step_000020"  # evals read only the run's own
    save_policy(build_tiny(ModelConfig(), ["0123456789"], seed=0), checkpoint_dir)
    Checkpoint.objects.create(run=run, step=20, uri=f"file://{checkpoint_dir}")
    return run


def test_evaluate_refuses_paths_and_foreign_benchmarks(teams: dict[str, Any], tiny_run: Run, tmp_path: Path) -> None:
    alice = _client(teams["alice"])
    path = fx.problem_answer_jsonl(tmp_path / "tinybench.jsonl")
    for ref in (str(path), "tinybench.jsonl", "../x", "/etc/passwd"):
        r = alice.post("/api/v1/leaderboards/evaluate/", {"run": tiny_run.pk, "benchmark": ref}, format="json")
        assert r.status_code == 400 and r.json()["error"]["fields"][0]["path"] == "benchmark", (ref, r.content)
    theirs = _upload(_client(teams["bob"]), teams["b"], _jsonl(PROBLEMS), name="secret").json()
    r = alice.post("/api/v1/leaderboards/evaluate/", {"run": tiny_run.pk, "benchmark": theirs["id"]}, format="json")
    assert r.status_code == 400  # not visible from alice's team: an unknown benchmark
    r = alice.post("/api/v1/leaderboards/evaluate/", {"run": tiny_run.pk, "benchmark": "secret"}, format="json")
    assert r.status_code == 400
    assert not EvalJob.objects.exists()


def test_eval_job_end_to_end_and_entry_pages(teams: dict[str, Any], tiny_run: Run, eager_celery,
                                            django_capture_on_commit_callbacks) -> None:
    """POST evaluate (by name) -> Celery task -> launcher -> `fipo eval` -> job, entry, detail, board."""
    from webapp.runs.models import StreamItem

    alice = _client(teams["alice"])
    # uploaded with its own grader: the job must grade with it (it used to pass none, so `math`)
    bench = alice.post("/api/v1/benchmarks/", {"file": _jsonl(PROBLEMS), "name": "tinybench", "team": teams["a"].pk,
                                              "grader": "exact"}, format="multipart").json()
    assert bench["grader"] == "exact"
    body = {"run": tiny_run.pk, "benchmark": "tinybench", "k": 2, "max_new_tokens": 4, "limit": 3}
    with django_capture_on_commit_callbacks(execute=True):
        response = alice.post("/api/v1/leaderboards/evaluate/", body, format="json")
    assert response.status_code == 202, response.content
    job_id = response.json()["job"]
    job = alice.get(f"/api/v1/eval-jobs/{job_id}/").json()
    assert job["status"] == "succeeded", job
    assert (job["done"], job["total"], job["step"], job["benchmark"]) == (3, 3, 20, bench["id"])
    entry = LeaderboardEntry.objects.get(pk=job["entry"])
    assert (entry.benchmark, entry.benchmark_sha256, entry.k, entry.n_problems) == ("tinybench", bench["sha256"], 2, 3)
    assert entry.details["grader"] == "exact"
    listed = alice.get(f"/api/v1/eval-jobs/?run={tiny_run.pk}").json()
    assert [j["id"] for j in listed["results"]] == [job_id]
    assert listed["defaults"] == {"k": 4, "max_new_tokens": 24, "temperature": 1.0, "top_p": 0.7}  # cpu-demo
    kinds = list(StreamItem.objects.filter(run=tiny_run).values_list("type", flat=True))
    assert "eval" in kinds and kinds.count("eval_job") >= 2  # running ... succeeded, over the websocket

    page = alice.get(f"/api/v1/leaderboards/entries/{entry.pk}/").json()
    assert len(page["problems"]) == 3 and page["benchmark_info"]["id"] == bench["id"]
    first = page["problems"][0]
    assert first["prompt"] == PROBLEMS[0]["problem"] and len(first["responses"]) == 2
    assert len(first["answers"]) == 2 and len(first["lengths"]) == 2 and "truncated" in first

    board = alice.get("/api/v1/leaderboards/tinybench/").json()
    assert board["benchmark_info"]["id"] == bench["id"] and [e["id"] for e in board["entries"]] == [entry.pk]
    by_id = alice.get(f"/api/v1/leaderboards/{bench['id']}/").json()
    assert [e["id"] for e in by_id["entries"]] == [entry.pk]

    bob, vera = _client(teams["bob"]), _client(teams["vera"])
    assert bob.get(f"/api/v1/eval-jobs/{job_id}/").status_code == 404
    assert bob.get(f"/api/v1/leaderboards/entries/{entry.pk}/").status_code == 404
    assert bob.get(f"/api/v1/leaderboards/{bench['id']}/").status_code == 404
    assert vera.get(f"/api/v1/eval-jobs/{job_id}/").status_code == 200
    assert vera.post("/api/v1/leaderboards/evaluate/", body, format="json").status_code == 403
    assert vera.post(f"/api/v1/eval-jobs/{job_id}/cancel").status_code == 403
    assert alice.post("/api/v1/leaderboards/evaluate/", {**body, "step": 99}, format="json").status_code == 409
    assert alice.post("/api/v1/leaderboards/evaluate/", {**body, "k": 0}, format="json").status_code == 400

    # an in-training event for the same step replaces the numbers: no stale hash or per-problem rows
    from webapp.leaderboards.services import entry_record_eval

    entry_record_eval(run=tiny_run, data={"benchmark": "tinybench", "step": 20, "pass_at_1": 0.5, "k": 1})
    entry.refresh_from_db()
    assert entry.benchmark_sha256 == "" and entry.benchmark_ref_id is None
    assert not EntryDetail.objects.filter(entry=entry).exists()


def test_failed_and_cancelled_jobs_say_why(teams: dict[str, Any], tiny_run: Run, eager_celery,
                                          django_capture_on_commit_callbacks) -> None:
    alice = _client(teams["alice"])
    _upload(alice, teams["a"], _jsonl(PROBLEMS), name="tinybench")
    from webapp.runs.services import run_paths

    missing = run_paths(tiny_run)[0] / "checkpoints" / "step_000030"  # inside the run's directory, never written
    Checkpoint.objects.create(run=tiny_run, step=30, uri=f"file://{missing}")
    with django_capture_on_commit_callbacks(execute=True):
        r = alice.post("/api/v1/leaderboards/evaluate/", {"run": tiny_run.pk, "benchmark": "tinybench", "k": 1,
                                                          "max_new_tokens": 2}, format="json")
    job = alice.get(f"/api/v1/eval-jobs/{r.json()['job']}/").json()
    assert job["status"] == "failed" and "not a model directory" in job["error"], job
    assert job["entry"] is None

    # a queued job (its task not run yet) is cancelled at once
    r = alice.post("/api/v1/leaderboards/evaluate/", {"run": tiny_run.pk, "benchmark": "tinybench", "step": 20},
                   format="json")
    cancelled = alice.post(f"/api/v1/eval-jobs/{r.json()['job']}/cancel").json()
    assert cancelled["status"] == "cancelled"
    from webapp.leaderboards.jobs import eval_job_run

    assert eval_job_run(r.json()["job"]) is None  # the task, arriving late, does nothing
    assert EvalJob.objects.get(pk=r.json()["job"]).status == "cancelled"


def _entry_with(team: Team, bench: Benchmark, name: str, accuracies: list[float], k: int = 4) -> LeaderboardEntry:
    entry = LeaderboardEntry.objects.create(team=team, benchmark=bench.name, model_name=name,
                                            pass_at_1=sum(accuracies) / len(accuracies), k=k,
                                            benchmark_ref=bench, benchmark_sha256=bench.sha256,
                                            n_problems=len(accuracies),
                                            pass_at_1_ci_low=0.0, pass_at_1_ci_high=1.0)
    rows = [{"id": p["id"], "n": k, "correct": round(acc * k), "answers": [], "correct_mask": []}
            for p, acc in zip(bench.problems, accuracies, strict=True)]
    EntryDetail.objects.create(entry=entry, problems=rows)
    return entry


def test_compare_two_entries(teams: dict[str, Any]) -> None:
    alice = _client(teams["alice"])
    bench = Benchmark.objects.get(pk=_upload(alice, teams["a"], _jsonl(PROBLEMS)).json()["id"])
    a = _entry_with(teams["a"], bench, "A", [0.0, 0.25, 0.5, 0.5, 1.0, 0.0])
    b = _entry_with(teams["a"], bench, "B", [0.25, 0.25, 0.75, 0.25, 1.0, 0.5])
    r = alice.get(f"/api/v1/leaderboards/compare/?a={a.pk}&b={b.pk}")
    assert r.status_code == 200, r.content
    data = r.json()
    assert data["diff"] == pytest.approx(1 / 6 * (0.25 + 0 + 0.25 - 0.25 + 0 + 0.5))
    assert (data["wins"], data["losses"], data["ties"], data["n_problems"]) == (3, 1, 2, 6)
    lo, hi = data["ci"]
    assert lo <= data["diff"] <= hi and "B is ahead by 12.5 points" in data["sentence"]

    v2 = Benchmark.objects.get(pk=_upload(alice, teams["a"], _jsonl(PROBLEMS[:5])).json()["id"])
    c = _entry_with(teams["a"], v2, "C", [0.5] * 5)
    other = alice.get(f"/api/v1/leaderboards/compare/?a={a.pk}&b={c.pk}")
    assert other.status_code == 400 and "same benchmark version" in other.json()["error"]["message"]
    assert alice.get(f"/api/v1/leaderboards/compare/?a={a.pk}").status_code == 400
    assert _client(teams["bob"]).get(f"/api/v1/leaderboards/compare/?a={a.pk}&b={b.pk}").status_code == 404

    # the board shows v1's entries only, each against the leader
    board = alice.get("/api/v1/leaderboards/aime-2024/?version=1").json()
    assert [e["name"] for e in board["entries"] if not e["is_reference"]] == ["B", "A"]
    a_row = next(e for e in board["entries"] if e["name"] == "A")
    assert a_row["vs_leader"]["method"] == "paired" and a_row["vs_leader"]["indistinguishable"] is True
    assert [v["label"] for v in board["versions"]] == ["aime-2024", "aime-2024 (v2)"]
    latest = alice.get("/api/v1/leaderboards/aime-2024/").json()
    assert [e["name"] for e in latest["entries"] if not e["is_reference"]] == ["C"]


def test_external_result_by_benchmark_id_keeps_the_hash(teams: dict[str, Any], tmp_path: Path) -> None:
    """`fipo eval --responses ... --json` uploaded to a stored benchmark (by id) keeps its per-problem rows."""
    import contextlib

    from fipo_engine.cli import main

    alice = _client(teams["alice"])
    bench = _upload(alice, teams["a"], _jsonl(PROBLEMS), name="tinybench").json()
    src = tmp_path / "tinybench.jsonl"
    src.write_text("".join(json.dumps(p) + "\n" for p in PROBLEMS))
    responses = tmp_path / "r.jsonl"
    responses.write_text("".join(json.dumps({"id": p["id"], "responses": [f"\\boxed{{{p['answer']}}}", "\\boxed{0}"]})
                                 + "\n" for p in PROBLEMS))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["eval", "--responses", str(responses), "--benchmark", str(src), "--json"]) == 0
    result = json.loads(out.getvalue())
    r = alice.post(f"/api/v1/leaderboards/{bench['id']}/entries/",
                   {"team": teams["a"].pk, "model_name": "api-model", "result": result}, format="json")
    assert r.status_code == 201, r.content
    assert r.json()["benchmark_id"] == bench["id"] and r.json()["pass_at_1"] == 0.5
    entry = alice.get(f"/api/v1/leaderboards/entries/{r.json()['id']}/").json()
    assert len(entry["problems"]) == 6 and entry["problems"][0]["correct"] == 1
    bad = dict(result, problems=[{**result["problems"][0], "id": "nope"}], n_problems=1)
    r = alice.post(f"/api/v1/leaderboards/{bench['id']}/entries/",
                   {"team": teams["a"].pk, "model_name": "x", "result": bad}, format="json")
    assert r.status_code == 400
    r = alice.post("/api/v1/leaderboards/999999/entries/",
                   {"team": teams["a"].pk, "model_name": "x", "result": result}, format="json")
    assert r.status_code == 404


def test_a_checkpoint_reported_outside_the_run_directory_is_not_evaluated(teams: dict[str, Any], tiny_run: Run,
                                                                          tmp_path: Path) -> None:
    """A checkpoint URI comes from whoever holds the run token; evaluating it would make the worker load
    any directory it can read. Only checkpoints inside the run's own directory are evaluated."""
    alice = _client(teams["alice"])
    _upload(alice, teams["a"], _jsonl(PROBLEMS), name="tinybench")
    Checkpoint.objects.create(run=tiny_run, step=40, uri=f"file://{tmp_path}")
    r = alice.post("/api/v1/leaderboards/evaluate/", {"run": tiny_run.pk, "benchmark": "tinybench", "step": 40},
                   format="json")
    assert r.status_code == 400, r.content
    assert r.json()["error"]["fields"][0]["path"] == "step"
