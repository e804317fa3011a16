"""Issue 14, item 6: inputs that were 500s. Each is now a 4xx naming the field, or, for a tracking
event that can never be stored, a per-event rejection that keeps the batch's valid events."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from webapp.runs.models import Run

pytestmark = pytest.mark.django_db

HUGE = "9223372036854775808"  # 2**63: one more than a bigint holds


def _ingest(run: Run, token: str, raw: str) -> Any:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.generic("POST", f"/api/v1/runs/{run.pk}/events", raw, content_type="application/json")


@pytest.mark.parametrize("bad", ['"k": 1e999', '"k": 1e999, "pass_at_1": 0.5', f'"n_problems": {HUGE}0',
                                 '"grader": -1e999', '"extra": {"deep": [1e999]}'])
def test_an_eval_event_with_a_huge_number_is_rejected_alone(started_run: tuple[Run, str], bad: str) -> None:
    run, token = started_run
    raw = ('[{"seq": 1, "type": "metric", "step": 0, "values": {"loss": 1.0}},'
           f' {{"seq": 2, "type": "eval", "benchmark": "aime", "pass_at_1": 0.5, {bad}}},'
           ' {"seq": 3, "type": "log", "text": "after"}]')
    response = _ingest(run, token, raw)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["acked_seq"] == 3 and body["accepted"] == 2
    assert [r["seq"] for r in body["rejected"]] == [2]
    # the client drops it and moves on: the next batch goes through
    assert _ingest(run, token, '[{"seq": 4, "type": "log", "text": "next"}]').json()["acked_seq"] == 4


@pytest.mark.parametrize("overrides", [{"trainer.lr": 1e999}, {"reward.correct_score": 1e999},
                                       {"trainer.seed": 2**64}, {"data.task_kwargs": {"n": 1e999}}])
def test_non_finite_and_huge_config_values_are_field_errors(client_for: Any, member: Any, team: Any,
                                                            overrides: dict[str, Any]) -> None:
    import json

    body = json.dumps({"name": "x", "team": team.pk, "preset": "cpu-demo", "overrides": overrides}).replace(
        "Infinity", "1e999")
    response = client_for(member).generic("POST", "/api/v1/runs/", body, content_type="application/json")
    assert response.status_code == 400, response.content
    field = next(iter(overrides))
    paths = [f["path"] for f in response.json()["error"]["fields"]]
    assert len(paths) == 1 and paths[0].removeprefix("overrides.").startswith(field), paths
    # the engine's own check says the same for a config that never went through JSON
    from fipo_engine.config import ConfigError, apply_overrides, preset

    with pytest.raises(ConfigError) as info:
        apply_overrides(preset("cpu-demo"), {field: float("inf") if "seed" not in field else 2**64}
                        if "task_kwargs" not in field else {field: {"n": float("inf")}})
    assert info.value.errors[0]["path"].startswith(field)


def test_a_team_id_beyond_bigint_is_a_field_error(client_for: Any, member: Any) -> None:
    response = client_for(member).generic("POST", "/api/v1/runs/", f'{{"name": "x", "team": {HUGE}}}',
                                          content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["fields"][0]["path"] == "team"


@pytest.mark.parametrize(("extra", "field"), [(f'"k": {HUGE}', "k"), (f'"n_problems": {HUGE}', "n_problems"),
                                              (f'"max_tokens": {HUGE}', "max_tokens"), ('"grader": 1e999', "grader"),
                                              ('"n_samples": 1e999', "n_samples"), ('"pass_at_1": 1e999', "pass_at_1")])
def test_leaderboard_entries_bound_their_numbers(client_for: Any, member: Any, team: Any, extra: str,
                                                 field: str) -> None:
    raw = f'{{"team": {team.pk}, "model_name": "m", "result": {{"pass_at_1": 0.5, {extra}}}}}'
    response = client_for(member).generic("POST", "/api/v1/leaderboards/aime-2024/entries/", raw,
                                          content_type="application/json")
    assert response.status_code == 400, response.content
    assert field in [f["path"].removeprefix("result.") for f in response.json()["error"]["fields"]]


@pytest.mark.parametrize("url", ["/runs/new/?from=²", "/runs/{run}/samples/?step=²", "/runs/{run}/samples/?sample=١",
                                 "/compare/?runs=²,1", f"/runs/new/?from={HUGE}", "/leaderboards/aime/?scope=²",
                                 "/leaderboards/entries/1/?vs=²", "/leaderboards/compare/?a=²&b=1",
                                 f"/leaderboards/compare/?a={HUGE}&b=١"])
def test_page_query_parameters_never_crash(member: Any, draft_run: Run, url: str) -> None:
    client = Client()
    client.force_login(member)
    response = client.get(url.format(run=draft_run.pk))
    assert response.status_code in (200, 400), (url, response.status_code)


@pytest.mark.parametrize("url", ["/api/v1/runs/?team=²", "/api/v1/runs/?limit=١٠", "/api/v1/runs/{run}/log?offset=²",
                                 "/api/v1/runs/{run}/samples/?step=²", "/api/v1/leaderboards/aime/?team=²",
                                 f"/api/v1/leaderboards/aime/?team={HUGE}", f"/api/v1/runs/?team={HUGE}"])
def test_api_query_parameters_are_ascii_integers(client_for: Any, member: Any, draft_run: Run, url: str) -> None:
    response = client_for(member).get(url.format(run=draft_run.pk))
    assert response.status_code == 400, (url, response.status_code)
    assert response.json()["error"]["fields"][0]["path"] in {"team", "limit", "offset", "step"}


@pytest.mark.parametrize("ref", ["²", "١٢", " ³ "])
def test_a_benchmark_named_by_non_ascii_digits_is_a_field_error(client_for: Any, member: Any, team: Any,
                                                                ref: str) -> None:
    """``str.isdigit()`` takes "²" and ``int("²")`` then raises: these were 500s."""
    client = client_for(member)
    response = client.post("/api/v1/leaderboards/evaluate/", {"run": 1, "benchmark": ref}, format="json")
    assert response.status_code in (400, 404), response.content
    assert client.get(f"/api/v1/leaderboards/{ref.strip()}/").status_code < 500  # a board of that name: empty
    raw = f'{{"team": {team.pk}, "model_name": "m", "result": {{"pass_at_1": 0.5}}}}'
    response = client.generic("POST", f"/api/v1/leaderboards/{ref.strip()}/entries/", raw,
                              content_type="application/json")
    assert response.status_code in (400, 404), response.content


@pytest.mark.parametrize("url", [f"/api/v1/runs/{HUGE}/", f"/api/v1/samples/{HUGE}/", f"/api/v1/runs/{HUGE}/log"])
def test_ids_beyond_bigint_in_the_path_are_not_found(client_for: Any, member: Any, url: str) -> None:
    assert client_for(member).get(url).status_code == 404
