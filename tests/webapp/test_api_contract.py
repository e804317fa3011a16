"""The REST API against docs/api-contract.md: shapes, status codes, the error shape."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from fipo_engine.config import PRESETS, preset
from webapp.runs.models import Run, RunStatus

pytestmark = pytest.mark.django_db

RUN_KEYS = {"id", "name", "team", "created_by", "status", "preset", "launcher", "created_at", "updated_at",
            "last_step", "summary", "can_launch", "can_cancel", "url"}
DETAIL_KEYS = RUN_KEYS | {"config", "schema_version", "transitions", "checkpoints", "handle", "last_heartbeat",
                          "stream_pos", "log_tail", "can_resume"}


@pytest.fixture
def api(client_for: Any, member: Any) -> Any:
    return client_for(member)


def test_create_from_preset_with_overrides(api: Any, team: Any) -> None:
    response = api.post("/api/v1/runs/", {"name": "lr sweep", "team": team.pk, "preset": "cpu-demo",
                                          "overrides": {"trainer.lr": 1e-4, "rollout.n": 4}}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == DETAIL_KEYS
    expected = preset("cpu-demo").model_dump(mode="json")
    expected["trainer"]["lr"], expected["rollout"]["n"] = 1e-4, 4
    assert body["config"] == expected
    assert (body["status"], body["preset"], body["launcher"], body["schema_version"]) == ("draft", "cpu-demo", "local", 1)
    assert body["team"] == {"id": team.pk, "name": team.name} and body["created_by"] == "alice"
    assert body["can_launch"] is True and body["can_cancel"] is False and body["url"] == f"/runs/{body['id']}/"
    assert body["transitions"][0]["from"] is None and body["transitions"][0]["to"] == "draft"
    assert body["stream_pos"] == 1 and body["summary"] == {"reward/mean": None, "accuracy/mean": None,
                                                           "response_length/mean": None}


def test_create_from_a_partial_config_keeps_the_engine_defaults(api: Any, team: Any) -> None:
    response = api.post("/api/v1/runs/", {"name": "partial", "team": team.pk,
                                          "config": {"trainer": {"total_steps": 3}}}, format="json")
    assert response.status_code == 201
    config = response.json()["config"]
    from fipo_engine.config import RunConfig

    defaults = RunConfig().model_dump(mode="json")
    defaults["trainer"]["total_steps"] = 3
    assert config == defaults


@pytest.mark.parametrize(
    ("payload", "path"),
    [({"preset": "cpu-demo", "overrides": {"trainer.lr": -1}}, "trainer.lr"),
     ({"preset": "cpu-demo", "overrides": {"trainer.nope": 1}}, "trainer.nope"),
     ({"config": {"trainer": {"lr": "fast"}}}, "trainer.lr"),
     ({"config": {"rollout": {"n": 0}}}, "rollout.n"),
     ({"preset": "no-such-preset"}, "preset"),
     ({"preset": "cpu-demo", "overrides": ["trainer.lr"]}, "overrides"),
     ({"preset": "cpu-demo", "name": ""}, "name"),
     ({"preset": "cpu-demo", "team": "alpha"}, "team"),
     ({"preset": "cpu-demo", "team": 999_999}, "team")],
)
def test_invalid_create_is_400_naming_the_path(api: Any, team: Any, payload: dict[str, Any], path: str) -> None:
    body = {"name": "bad", "team": team.pk, **payload}
    response = api.post("/api/v1/runs/", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and error["message"]
    assert path in [f["path"] for f in error["fields"]]
    assert not Run.objects.exists()


def test_list_is_newest_first_and_filters(api: Any, team: Any, member: Any, other_team: Any, member_of: Any) -> None:
    from webapp.runs.services import run_create, run_transition

    member_of(other_team, "viewer", "alice")  # alice also reads beta
    a = run_create(user=member, team_id=team.pk, name="alpha one", preset="cpu-demo")
    b = run_create(user=member, team_id=team.pk, name="alpha two", preset="cpu-demo")
    run_transition(run_id=b.pk, to=RunStatus.QUEUED, reason="x")
    body = api.get("/api/v1/runs/").json()
    assert body["count"] == 2 and [r["id"] for r in body["results"]] == [b.pk, a.pk]
    assert set(body["results"][0]) == RUN_KEYS
    assert [r["id"] for r in api.get("/api/v1/runs/?status=queued").json()["results"]] == [b.pk]
    assert [r["id"] for r in api.get("/api/v1/runs/?q=ONE").json()["results"]] == [a.pk]
    assert api.get(f"/api/v1/runs/?team={other_team.pk}").json() == {"count": 0, "results": []}
    assert api.get("/api/v1/runs/?status=bogus").status_code == 400
    assert api.get("/api/v1/runs/?team=x").json()["error"]["fields"][0]["path"] == "team"


def test_launch_cancel_clone_delete(api: Any, draft_run: Run, django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        launched = api.post(f"/api/v1/runs/{draft_run.pk}/launch")
    assert launched.status_code == 202 and launched.json()["status"] == "queued"
    assert launched.json()["can_launch"] is False and launched.json()["can_cancel"] is True
    again = api.post(f"/api/v1/runs/{draft_run.pk}/launch")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    assert api.delete(f"/api/v1/runs/{draft_run.pk}/").status_code == 409
    clone = api.post(f"/api/v1/runs/{draft_run.pk}/clone")
    assert clone.status_code == 201
    assert clone.json()["name"] == "demo (copy)" and clone.json()["status"] == "draft"
    assert clone.json()["config"] == draft_run.config
    cancelled = api.post(f"/api/v1/runs/{draft_run.pk}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert api.post(f"/api/v1/runs/{draft_run.pk}/cancel").status_code == 409
    assert api.delete(f"/api/v1/runs/{clone.json()['id']}/").status_code == 204
    assert api.get(f"/api/v1/runs/{clone.json()['id']}/").status_code == 404


def test_detail_metrics_and_log(api: Any, started_run: tuple[Run, str], settings: Any, tmp_path: Path) -> None:
    run, _ = started_run
    settings.FIPO_RUNS_DIR = tmp_path
    workdir = tmp_path / f"{run.pk}-{run.uid.hex[:12]}"
    workdir.mkdir()
    (workdir / "run.log").write_text("line one\nline two\n")
    from webapp.tracking.services import events_ingest

    events_ingest(run_id=run.pk, events=[{"seq": i + 1, "type": "metric", "step": i,
                                          "values": {"reward/mean": i / 10, "actor/lr": 1e-6}} for i in range(5)])
    detail = api.get(f"/api/v1/runs/{run.pk}/").json()
    assert detail["status"] == "running" and detail["last_step"] == 4
    assert detail["summary"]["reward/mean"] == pytest.approx(0.4)
    assert detail["log_tail"] == "line one\nline two\n"
    assert [t["to"] for t in detail["transitions"]] == ["draft", "queued", "starting", "running"]
    assert api.get(f"/api/v1/runs/{run.pk}/metrics").json() == {"keys": ["actor/lr", "reward/mean"]}
    series = api.get(f"/api/v1/runs/{run.pk}/metrics?keys=reward/mean&max_points=3").json()
    assert series["stream_pos"] == detail["stream_pos"]
    s = series["series"]["reward/mean"]
    assert s["total_points"] == 5 and s["downsampled"] is True and len(s["step"]) <= 3
    assert s["step"][-1] == 4 and max(s["max"]) == pytest.approx(0.4) and min(s["min"]) == 0.0
    assert api.get(f"/api/v1/runs/{run.pk}/metrics?keys=a&max_points=1").status_code == 400
    log = api.get(f"/api/v1/runs/{run.pk}/log?offset=5").json()
    assert log == {"text": "one\nline two\n", "offset": 18}
    assert api.get(f"/api/v1/runs/{run.pk}/log?offset=18").json() == {"text": "", "offset": 18}


def test_config_catalog_teams_and_schema(api: Any, team: Any) -> None:
    schema = api.get("/api/v1/config/schema").json()
    assert schema["title"] == "RunConfig" and "trainer" in schema["properties"]
    presets = api.get("/api/v1/config/presets").json()
    assert [p["name"] for p in presets] == list(PRESETS)
    assert presets[3]["config"] == preset(presets[3]["name"]).model_dump(mode="json")
    catalog = api.get("/api/v1/metrics/catalog").json()
    assert {"name", "group", "unit", "meaning"} <= set(catalog["metrics"][0])
    assert catalog["groups"][0] == {"name": "reward", "title": "Reward and accuracy"}
    assert api.get("/api/v1/teams/").json() == [{"id": team.pk, "name": "alpha", "role": "member"}]
    openapi = api.get("/api/v1/schema/")
    assert openapi.status_code == 200 and b"/api/v1/runs/{run_id}/events" in openapi.content


def test_personal_api_tokens(client_for: Any, member: Any, api_client: Any, settings: Any) -> None:
    session = client_for(member)
    created = session.post("/api/v1/tokens/", {"name": "laptop"}, format="json").json()
    assert created["key"].startswith("fipo_") and created["name"] == "laptop"
    listed = session.get("/api/v1/tokens/").json()
    assert [t["id"] for t in listed] == [created["id"]] and "key" not in listed[0]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {created['key']}")
    assert api_client.get("/api/v1/teams/").status_code == 200
    assert session.delete(f"/api/v1/tokens/{created['id']}/").status_code == 204
    assert api_client.get("/api/v1/teams/").status_code == 401
    assert api_client.get("/api/v1/teams/").json()["error"]["code"] == "not_authenticated"


def test_token_endpoint_is_throttled_after_failures(api_client: Any, member: Any, settings: Any) -> None:
    settings.FIPO_LOGIN_MAX_ATTEMPTS = 3
    api_client.defaults["REMOTE_ADDR"] = f"test-{uuid.uuid4().hex}"  # counters outlive the test in Redis
    url = "/api/v1/auth/token"
    for _ in range(3):
        assert api_client.post(url, {"username": "alice", "password": "wrong"}, format="json").status_code == 401
    blocked = api_client.post(url, {"username": "alice", "password": "pw"}, format="json")
    assert blocked.status_code == 429 and blocked.json()["error"]["code"] == "throttled"
    assert int(blocked["Retry-After"]) > 0
    api_client.defaults["REMOTE_ADDR"] = f"test-{uuid.uuid4().hex}"  # another client is not blocked
    good = api_client.post(url, {"username": "alice", "password": "pw", "name": "ci"}, format="json")
    assert good.status_code == 201 and good.json()["key"].startswith("fipo_")
