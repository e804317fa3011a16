"""Issue 14: a team member's config cannot reach outside the team's area on a shared deployment.

Files (data roots, checkpoints of the team's own runs), the Ray head (by name, from settings), the
job environment and pip packages (allow-lists), and what teammates see (``handle``, the schema)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from webapp.runs.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def roots(tmp_path: Path, settings: Any, team: Any) -> dict[str, Path]:
    """alpha's data root, another team's root, a file outside both, and the runs directory."""
    places = {name: tmp_path / name for name in ("alpha-data", "beta-data", "elsewhere", "runs")}
    for place in places.values():
        place.mkdir()
    (places["alpha-data"] / "train.jsonl").write_text('{"problem": "1+1", "answer": "2"}\n')
    (places["elsewhere"] / "secret.jsonl").write_text("secret\n")
    settings.FIPO_DATA_ROOTS = {team.name: [str(places["alpha-data"])], "beta": [str(places["beta-data"])]}
    settings.FIPO_RUNS_DIR = places["runs"]
    return places


def _create(client: Any, team: Any, overrides: dict[str, Any]) -> Any:
    return client.post("/api/v1/runs/", {"name": "r", "team": team.pk, "preset": "cpu-demo",
                                         "overrides": overrides}, format="json")


def _field_errors(response: Any) -> dict[str, str]:
    assert response.status_code == 400, response.content
    return {f["path"]: f["message"] for f in response.json()["error"]["fields"]}


def test_paths_inside_the_teams_roots_or_relative_are_accepted(client_for: Any, member: Any, team: Any,
                                                               roots: dict[str, Path]) -> None:
    api = client_for(member)
    inside = str(roots["alpha-data"] / "train.jsonl")
    for overrides in ({"data.source": "file", "data.path": inside},
                      {"data.source": "file", "data.path": "prompts/train.jsonl"},
                      {"data.eval_path": str(roots["alpha-data"] / "not-there-yet.jsonl")}):
        assert _create(api, team, overrides).status_code == 201, overrides


@pytest.mark.parametrize("where", ["elsewhere", "beta", "dotdot", "dotdot-inside", "symlink", "etc", "home", "url"])
def test_paths_outside_the_roots_are_field_errors_that_reveal_nothing(client_for: Any, member: Any, team: Any,
                                                                      roots: dict[str, Path], where: str) -> None:
    alpha = roots["alpha-data"]
    if where == "symlink":
        os.symlink(roots["elsewhere"] / "secret.jsonl", alpha / "link.jsonl")
    value = {"elsewhere": str(roots["elsewhere"] / "secret.jsonl"), "beta": str(roots["beta-data"] / "x.jsonl"),
             "dotdot": "../../etc/passwd", "dotdot-inside": f"{alpha}/../elsewhere/secret.jsonl",
             "symlink": str(alpha / "link.jsonl"), "etc": "/etc/passwd", "home": "~/x.jsonl",
             "url": "file:///etc/passwd"}[where]
    api = client_for(member)
    for field in ("data.path", "data.eval_path", "model.path"):
        errors = _field_errors(_create(api, team, {"data.source": "file", "data.path": str(alpha / "train.jsonl"),
                                                   field: value}))
        assert list(errors) == [field]
    assert Run.objects.count() == 0
    # The same message whether the file exists or not: no probing the worker's disk.
    existing = _field_errors(_create(api, team, {"data.eval_path": str(roots["elsewhere"] / "secret.jsonl")}))
    missing = _field_errors(_create(api, team, {"data.eval_path": str(roots["elsewhere"] / "nope.jsonl")}))
    assert existing == missing


def test_a_checkpoint_is_a_model_path_for_its_own_team_only(client_for: Any, member: Any, team: Any,
                                                            outsider: Any, other_team: Any, draft_run: Run,
                                                            roots: dict[str, Path]) -> None:
    checkpoint = roots["runs"] / str(draft_run.pk) / "checkpoints" / "step-5"
    checkpoint.mkdir(parents=True)
    ours = _create(client_for(member), team, {"model.source": "hf", "model.path": str(checkpoint)})
    assert ours.status_code == 201, ours.content
    theirs = _create(client_for(outsider), other_team, {"model.source": "hf", "model.path": str(checkpoint)})
    assert list(_field_errors(theirs)) == ["model.path"]


def test_a_clone_and_a_launch_check_the_paths_again(client_for: Any, member: Any, team: Any,
                                                    roots: dict[str, Path], settings: Any) -> None:
    api = client_for(member)
    created = _create(api, team, {"data.source": "file", "data.path": str(roots["alpha-data"] / "train.jsonl")})
    assert created.status_code == 201
    settings.FIPO_DATA_ROOTS = {}  # the deployment took the root away
    assert list(_field_errors(api.post(f"/api/v1/runs/{created.json()['id']}/clone"))) == ["data.path"]
    assert list(_field_errors(api.post(f"/api/v1/runs/{created.json()['id']}/launch"))) == ["data.path"]
    assert Run.objects.get(pk=created.json()["id"]).status == "draft"

    # a resume starts a job too: the same check (it used to relaunch whatever the config said)
    from webapp.runs.models import Checkpoint
    from webapp.runs.services import run_paths

    run = Run.objects.get(pk=created.json()["id"])
    checkpoint = run_paths(run)[0] / "checkpoints" / "step_000001"
    checkpoint.mkdir(parents=True)
    Checkpoint.objects.create(run=run, step=1, uri=str(checkpoint))
    Run.objects.filter(pk=run.pk).update(status="failed")
    assert list(_field_errors(api.post(f"/api/v1/runs/{run.pk}/resume/"))) == ["data.path"]
    assert Run.objects.get(pk=run.pk).status == "failed"


def test_the_ray_head_is_picked_by_name_never_by_address(client_for: Any, member: Any, team: Any,
                                                         settings: Any) -> None:
    settings.FIPO_RAY_HEADS = {"gpu-a": {"address": "http://ray-a:8265", "env_vars": {}}}
    api = client_for(member)
    errors = _field_errors(_create(api, team, {"launcher.backend": "ray",
                                               "launcher.ray.address": "http://169.254.169.254/latest"}))
    assert set(errors) == {"launcher.ray.address", "launcher.ray.head"} and "gpu-a" in errors["launcher.ray.head"]
    created = _create(api, team, {"launcher.backend": "ray", "launcher.ray.head": "gpu-a"})
    assert created.status_code == 201, created.content

    from webapp.runs.services import _launch_spec

    spec = _launch_spec(Run.objects.get(pk=created.json()["id"]), "tok")
    assert spec.address == "http://ray-a:8265"


@pytest.mark.parametrize(("name", "ok"), [("NCCL_DEBUG", True), ("OMP_NUM_THREADS", True), ("HF_HOME", True),
                                          ("LD_PRELOAD", False), ("PYTHONSTARTUP", False), ("FIPO_RUN_TOKEN", False),
                                          ("PATH", False), ("fipo_run_token", False), ("A=B", False)])
def test_job_variables_follow_the_allow_list(client_for: Any, member: Any, team: Any, name: str, ok: bool) -> None:
    response = _create(client_for(member), team, {"launcher.ray.env_vars": {name: "1"}})
    if ok:
        assert response.status_code == 201, response.content
    else:
        assert list(_field_errors(response)) == [f"launcher.ray.env_vars.{name}"]


@pytest.mark.parametrize(("spec", "ok"), [("numpy==1.26.4", True), ("numpy", True), ("vllm[all]>=0.6,<0.7", True),
                                          ("git+https://evil/x.git", False), ("--index-url=https://evil", False),
                                          ("-e .", False), ("requests==2.0", False), ("https://evil/x.whl", False),
                                          ("./local", False), ("numpy @ https://evil/n.whl", False)])
def test_pip_takes_allowed_specifiers_only(client_for: Any, member: Any, team: Any, settings: Any, spec: str,
                                           ok: bool) -> None:
    settings.FIPO_JOB_PIP_ALLOW = ["numpy", "vllm"]
    response = _create(client_for(member), team, {"launcher.ray.pip": [spec]})
    if ok:
        assert response.status_code == 201, response.content
    else:
        assert list(_field_errors(response)) == ["launcher.ray.pip.0"]


def test_the_handle_is_shown_to_owners_only(client_for: Any, owner: Any, member: Any, viewer: Any,
                                            draft_run: Run) -> None:
    Run.objects.filter(pk=draft_run.pk).update(handle="pid:1:2.0:/srv/fipo/runs/1")
    shown = {user.username: client_for(user).get(f"/api/v1/runs/{draft_run.pk}/").json()["handle"]
             for user in (owner, member, viewer)}
    assert shown == {"olivia": "pid:1:2.0:/srv/fipo/runs/1", "alice": None, "vera": None}


def test_the_schema_needs_a_login(api_client: Any, client_for: Any, member: Any) -> None:
    assert api_client.get("/api/v1/schema/").status_code == 401
    assert client_for(member).get("/api/v1/schema/").status_code == 200


def test_the_run_page_never_asks_a_cluster(client_for: Any, owner: Any, draft_run: Run, monkeypatch: Any) -> None:
    """A Ray run's detail GET reads nothing from the head (the log view does, with a short timeout)."""
    from worker.launchers.ray import RayLauncher

    def hang(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the detail GET called the Ray head")

    monkeypatch.setattr(RayLauncher, "read_log", hang)
    Run.objects.filter(pk=draft_run.pk).update(launcher="ray", handle="http://head:8265/api/jobs/fipo-run-1")
    detail = client_for(owner).get(f"/api/v1/runs/{draft_run.pk}/")
    assert detail.status_code == 200 and detail.json()["log_tail"] == ""


def test_checkpoints_in_uid_named_run_directories_belong_to_their_run(settings, tmp_path) -> None:
    """Run directories are named ``<id>-<uid prefix>`` (issue 15); a checkpoint inside one is that run's."""
    from webapp.runs.policy import run_dir_owner

    settings.FIPO_RUNS_DIR = str(tmp_path)
    assert run_dir_owner(str(tmp_path / "12-0f3a9b2c41de" / "checkpoints" / "step_000005")) == 12
    assert run_dir_owner(str(tmp_path / "12" / "checkpoints")) == 12
    assert run_dir_owner(str(tmp_path / "12-notahexuid" / "checkpoints")) is None
    assert run_dir_owner(str(tmp_path / "other")) is None
