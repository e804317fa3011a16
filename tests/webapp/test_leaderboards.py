"""Leaderboards: the paper's reference rows, team scoping, best checkpoint per run, the services'
validation, external entries, and an eval job through Celery on a tiny checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from fipo_engine.config import preset
from webapp.accounts.models import Membership, Role, Team, User
from webapp.common.errors import ValidationFailed
from webapp.leaderboards.models import LeaderboardEntry
from webapp.leaderboards.services import entry_record_eval
from webapp.runs.models import Checkpoint, Run

pytestmark = pytest.mark.django_db

AIME = "aime-2024"


def _user(name: str, team: Team, role: str = Role.MEMBER) -> User:
    user = User.objects.create(username=name)  # no password: hashing one costs ~0.5 s per user
    Membership.objects.create(user=user, team=team, role=role)
    return user


def _run(team: Team, name: str = "run") -> Run:
    cfg = preset("cpu-demo")
    return Run.objects.create(name=name, team=team, config=cfg.model_dump(mode="json"),
                              schema_version=cfg.schema_version, preset="cpu-demo")


def _result(p: float, step: int | None = None, benchmark: str = AIME) -> dict:
    return {"benchmark": benchmark, "step": step, "pass_at_1": p, "pass_at_1_ci": [max(0.0, p - 0.1), min(1.0, p + 0.1)],
            "cons_at_k": p, "pass_at_k": min(1.0, p + 0.2), "k": 4, "n_problems": 30, "truncation_rate": 0.0,
            "settings": {"temperature": 1.0, "top_p": 0.7, "max_new_tokens": 64}, "grader": "math"}


@pytest.fixture
def teams() -> dict:
    a, b = Team.objects.create(name="alpha"), Team.objects.create(name="beta")
    return {"a": a, "b": b, "alice": _user("alice", a), "bob": _user("bob", b), "vera": _user("vera", a, Role.VIEWER)}


def _get(user: User, url: str) -> dict:
    client = APIClient()
    client.force_authenticate(user)
    response = client.get(url)
    assert response.status_code == 200, response.content
    return response.json()


def test_paper_reference_rows_are_global() -> None:
    refs = LeaderboardEntry.objects.filter(is_reference=True)
    by = {(e.benchmark, e.model_name): e for e in refs}
    assert by[(AIME, "FIPO (Qwen2.5-32B)")].pass_at_1 == pytest.approx(0.56)
    assert by[(AIME, "DAPO (Qwen2.5-32B)")].pass_at_1 == pytest.approx(0.50)
    assert by[(AIME, "DeepSeek-R1-Zero-Math-32B")].pass_at_1 == pytest.approx(0.47)
    assert by[(AIME, "o1-mini")].pass_at_1 == pytest.approx(0.56)
    assert by[("aime-2025", "FIPO (Qwen2.5-32B)")].pass_at_1 == pytest.approx(0.43)
    assert by[("aime-2025", "DAPO (Qwen2.5-32B)")].pass_at_1 == pytest.approx(0.38)
    fipo = by[(AIME, "FIPO (Qwen2.5-32B)")]
    assert (fipo.k, fipo.temperature, fipo.top_p, fipo.max_tokens) == (32, 1.0, 0.7, 20480)
    assert all(e.team_id is None and "2603.19835" in e.source for e in refs)


def test_team_sees_own_entries_and_global_rows_only(teams: dict) -> None:
    run_a, run_b = _run(teams["a"], "alpha-run"), _run(teams["b"], "beta-secret")
    entry_record_eval(run=run_a, data=_result(0.30, step=10))
    entry_record_eval(run=run_b, data=_result(0.90, step=10))

    board = _get(teams["alice"], f"/api/v1/leaderboards/{AIME}/")
    names = [e["name"] for e in board["entries"]]
    assert "alpha-run" in names and "beta-secret" not in names
    assert {"FIPO (Qwen2.5-32B)", "o1-mini"} <= set(names)
    assert [e["rank"] for e in board["entries"]] == list(range(1, len(names) + 1))
    assert [e["pass_at_1"] for e in board["entries"]] == sorted((e["pass_at_1"] for e in board["entries"]), reverse=True)
    mine = next(e for e in board["entries"] if e["name"] == "alpha-run")
    assert mine["kind"] == "run" and mine["team_name"] == "alpha" and mine["pass_at_1_ci"] == [pytest.approx(0.2),
                                                                                               pytest.approx(0.4)]

    global_board = _get(teams["alice"], f"/api/v1/leaderboards/{AIME}/?scope=global")
    assert all(e["is_reference"] for e in global_board["entries"]) and len(global_board["entries"]) == 4

    bob_board = _get(teams["bob"], f"/api/v1/leaderboards/{AIME}/")
    assert "alpha-run" not in [e["name"] for e in bob_board["entries"]]

    client = APIClient()
    client.force_authenticate(teams["alice"])
    other_team = client.get(f"/api/v1/leaderboards/{AIME}/?team={teams['b'].pk}")
    assert other_team.status_code == 404
    assert client.get(f"/api/v1/leaderboards/{AIME}/?scope=everyone").status_code == 400
    assert APIClient().get(f"/api/v1/leaderboards/{AIME}/").status_code == 401

    listing = _get(teams["alice"], "/api/v1/leaderboards/")
    assert {"benchmark": AIME, "entries": 5} in listing  # 4 references + alpha-run


def test_best_checkpoint_represents_a_run_unless_all(teams: dict) -> None:
    run = _run(teams["a"], "climber")
    for step, p in ((5, 0.2), (10, 0.5), (15, 0.4)):
        entry_record_eval(run=run, data=_result(p, step=step))
    entry_record_eval(run=run, data=_result(0.6, step=10))  # re-sent event for step 10 updates its row
    assert LeaderboardEntry.objects.filter(run=run).count() == 3

    board = _get(teams["alice"], f"/api/v1/leaderboards/{AIME}/")
    runs = [e for e in board["entries"] if e["run"] == run.pk]
    assert [(e["step"], e["pass_at_1"]) for e in runs] == [(10, 0.6)]
    everything = _get(teams["alice"], f"/api/v1/leaderboards/{AIME}/?all=1")
    assert sorted(e["step"] for e in everything["entries"] if e["run"] == run.pk) == [5, 10, 15]


INVALID = [({"pass_at_1": 1.5}, "pass_at_1"), ({"pass_at_1": None}, "pass_at_1"),
           ({"pass_at_1_ci": [0.5, 0.1]}, "pass_at_1_ci"), ({"k": -1}, "k"), ({"step": "ten"}, "step"),
           ({"benchmark": ""}, "benchmark"), ({"cons_at_k": "high"}, "cons_at_k")]


def test_record_eval_validates(teams: dict) -> None:
    run = _run(teams["a"])
    for change, path in INVALID:
        with pytest.raises(ValidationFailed) as info:
            entry_record_eval(run=run, data={**_result(0.5, step=1), **change})
        assert any(f["path"] == path for f in info.value.fields), (change, info.value.fields)
    assert not LeaderboardEntry.objects.filter(run__isnull=False).exists()


def test_external_entry_on_the_team_board(teams: dict) -> None:
    client = APIClient()
    client.force_authenticate(teams["alice"])
    body = {"team": teams["a"].pk, "model_name": "my-api-model", "result": _result(0.42)}
    response = client.post(f"/api/v1/leaderboards/{AIME}/entries/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "external" and response.json()["team"] == teams["a"].pk

    mismatch = client.post("/api/v1/leaderboards/champ/entries/", body, format="json")
    assert mismatch.status_code == 400
    elsewhere = client.post(f"/api/v1/leaderboards/{AIME}/entries/", {**body, "team": teams["b"].pk}, format="json")
    assert elsewhere.status_code == 404
    viewer = APIClient()
    viewer.force_authenticate(teams["vera"])
    assert viewer.post(f"/api/v1/leaderboards/{AIME}/entries/", body, format="json").status_code == 403

    assert "my-api-model" in [e["name"] for e in _get(teams["alice"], f"/api/v1/leaderboards/{AIME}/")["entries"]]
    assert "my-api-model" not in [e["name"] for e in _get(teams["bob"], f"/api/v1/leaderboards/{AIME}/")["entries"]]


@pytest.fixture
def eager_celery():
    from worker.celery_app import app

    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = before


def test_eval_job_through_celery_reaches_the_leaderboard(teams: dict, tmp_path: Path, settings, eager_celery,
                                                         django_capture_on_commit_callbacks) -> None:
    """POST evaluate -> Celery task -> `fipo eval --model` subprocess on a tiny checkpoint -> entry + eval item.
    The benchmark is a stored one (by name); a file path is refused."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    from fipo_engine.config import ModelConfig
    from fipo_engine.models.loader import build_tiny, save_policy
    from tests.engine import fixtures as fx
    from webapp.runs.models import StreamItem
    from webapp.runs.services import run_paths

    settings.FIPO_RUNS_DIR = tmp_path / "runs"
    run = _run(teams["a"], "tiny")
    checkpoint_dir = run_paths(run)[0] / "checkpoints" / "step_000020"  # evals read only the run's own
    save_policy(build_tiny(ModelConfig(), ["0123456789"], seed=0), checkpoint_dir)
    Checkpoint.objects.create(run=run, step=20, uri=f"file://{checkpoint_dir}")
    bench = fx.problem_answer_jsonl(tmp_path / "tinybench.jsonl")

    client = APIClient()
    client.force_authenticate(teams["alice"])
    upload = client.post("/api/v1/benchmarks/", {"file": SimpleUploadedFile("tinybench.jsonl", bench.read_bytes()),
                                                 "name": "tinybench", "team": teams["a"].pk}, format="multipart")
    assert upload.status_code == 201, upload.content
    body = {"run": run.pk, "benchmark": "tinybench", "k": 2, "max_new_tokens": 4, "limit": 2}
    by_path = client.post("/api/v1/leaderboards/evaluate/", {**body, "benchmark": str(bench)}, format="json")
    assert by_path.status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/api/v1/leaderboards/evaluate/", body, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["step"] == 20 and isinstance(response.json()["job"], int)

    entry = LeaderboardEntry.objects.get(run=run)
    assert (entry.benchmark, entry.step, entry.k, entry.n_problems, entry.max_tokens) == ("tinybench", 20, 2, 2, 4)
    assert 0.0 <= entry.pass_at_1 <= 1.0 and entry.truncation_rate is not None
    item = StreamItem.objects.get(run=run, type="eval")
    assert item.data["benchmark"] == "tinybench" and item.data["step"] == 20 and "problems" not in item.data

    board = _get(teams["alice"], "/api/v1/leaderboards/tinybench/")
    assert [(e["name"], e["step"]) for e in board["entries"]] == [("tiny", 20)]

    viewer = APIClient()
    viewer.force_authenticate(teams["vera"])
    assert viewer.post("/api/v1/leaderboards/evaluate/", body, format="json").status_code == 403
    outsider = APIClient()
    outsider.force_authenticate(teams["bob"])
    assert outsider.post("/api/v1/leaderboards/evaluate/", body, format="json").status_code == 404
    no_ckpt = client.post("/api/v1/leaderboards/evaluate/", {**body, "step": 99}, format="json")
    assert no_ckpt.status_code == 409
    unknown = client.post("/api/v1/leaderboards/evaluate/", {**body, "benchmark": "no-such-benchmark"}, format="json")
    assert unknown.status_code == 400 and unknown.json()["error"]["fields"][0]["path"] == "benchmark"
    assert LeaderboardEntry.objects.filter(run=run).count() == 1


def test_ingested_eval_event_becomes_the_runs_entry(started_run, member) -> None:
    """The trainer's `eval` event through the real ingest endpoint lands on the board of the file's stem,
    with the run's eval sampling settings filled in from its config."""
    run, token = started_run
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    events = [
        {"seq": 1, "type": "eval", "benchmark": "data/aime-2024.parquet", "step": 5, "pass_at_1": 0.25,
         "pass_at_1_ci": [0.1, 0.4], "k": 4, "cons_at_k": 0.3, "pass_at_k": 0.5, "n_problems": 30},
        {"seq": 2, "type": "eval", "benchmark": "data/aime-2024.parquet", "step": 10, "pass_at_1": 2.0, "k": 4},
    ]
    response = client.post(f"/api/v1/runs/{run.pk}/events", events, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["acked_seq"] == 2
    entry = LeaderboardEntry.objects.get(run=run)  # the invalid second event made no entry
    assert (entry.benchmark, entry.step, entry.pass_at_1, entry.k) == (AIME, 5, 0.25, 4)
    cfg = run.config
    assert (entry.temperature, entry.top_p, entry.max_tokens) == (
        cfg["trainer"]["eval_temperature"], cfg["trainer"]["eval_top_p"], cfg["rollout"]["max_new_tokens"])
    board = _get(member, f"/api/v1/leaderboards/{AIME}/")
    assert [e["step"] for e in board["entries"] if e["run"] == run.pk] == [5]
