"""A run config that names an unknown registry entry (grader, loss, data source, launcher, ...) is a
400 naming the field when the run is created, not a failure at train time; the config schema the run
form reads lists the valid names."""

from __future__ import annotations

from typing import Any

import pytest

from fipo_engine.registry import DATA_SOURCES, GRADERS, LAUNCHERS, POLICY_LOSSES
from webapp.runs.models import Run

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("field", ["reward.name", "algorithm.policy_loss", "algorithm.advantage_estimator",
                                   "algorithm.loss.loss_agg_mode", "data.source", "launcher.backend"])
def test_an_unknown_name_is_a_400_naming_the_field(client_for: Any, member: Any, team: Any, field: str) -> None:
    response = client_for(member).post("/api/v1/runs/", {"name": "x", "team": team.pk, "preset": "cpu-demo",
                                                         "overrides": {field: "nope"}}, format="json")
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert [f["path"].removeprefix("overrides.") for f in fields] == [field], fields
    assert f"unknown {field.rsplit('.', 1)[-1]} 'nope'; valid: " in fields[0]["message"]
    assert not Run.objects.exists()


def test_the_config_schema_lists_the_registered_names(client_for: Any, member: Any) -> None:
    response = client_for(member).get("/api/v1/config/schema")
    assert response.status_code == 200, response.content
    defs = response.json()["$defs"]
    assert defs["RewardConfig"]["properties"]["name"]["enum"] == GRADERS.names()
    assert defs["AlgorithmConfig"]["properties"]["policy_loss"]["enum"] == POLICY_LOSSES.names()
    assert defs["DataConfig"]["properties"]["source"]["enum"] == DATA_SOURCES.names()
    assert defs["LauncherConfig"]["properties"]["backend"]["enum"] == LAUNCHERS.names()
