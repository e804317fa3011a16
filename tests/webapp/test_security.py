"""Security: the isolation matrix over every API route, viewer permissions, anonymous access,
CSRF on session writes, and a fuzz of run creation proving bad input is a 400, never a 500."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from webapp.runs.models import Run, RunStatus
from webapp.tracking.services import events_ingest

pytestmark = pytest.mark.django_db

# Every API route: (method, path template, body, is_write). {run} and {sample} are filled in.
RUN_ROUTES: list[tuple[str, str, Any, bool]] = [
    ("get", "/api/v1/runs/{run}/", None, False),
    ("delete", "/api/v1/runs/{run}/", None, True),
    ("post", "/api/v1/runs/{run}/launch", None, True),
    ("post", "/api/v1/runs/{run}/cancel", None, True),
    ("post", "/api/v1/runs/{run}/resume/", None, True),
    ("post", "/api/v1/runs/{run}/clone", None, True),
    ("get", "/api/v1/runs/{run}/log", None, False),
    ("get", "/api/v1/runs/{run}/metrics", None, False),
    ("get", "/api/v1/runs/{run}/metrics?keys=loss", None, False),
    ("get", "/api/v1/runs/{run}/samples/", None, False),
    ("get", "/api/v1/runs/{run}/samples/positions/", None, False),
    ("get", "/api/v1/samples/{sample}/", None, False),
]
OTHER_ROUTES: list[tuple[str, str, Any]] = [
    ("get", "/api/v1/runs/", None),
    ("post", "/api/v1/runs/", {"name": "x", "team": 0, "preset": "cpu-demo"}),
    ("get", "/api/v1/teams/", None),
    ("get", "/api/v1/tokens/", None),
    ("post", "/api/v1/tokens/", {"name": "x"}),
    ("delete", "/api/v1/tokens/1/", None),
    ("get", "/api/v1/config/schema", None),
    ("get", "/api/v1/config/presets", None),
    ("get", "/api/v1/metrics/catalog", None),
    ("get", "/api/v1/tracking/channels", None),
    ("get", "/api/v1/tracking/schema.json", None),
    ("get", "/api/v1/schema/", None),
]
# Routes with their own auth, tested elsewhere: the ingest endpoint (run token: test_ingest.py), the
# token endpoint (password: test_api_contract.py), leaderboards, benchmarks and eval jobs (test_leaderboards.py,
# test_benchmarks.py). "^" is the catch-all that answers unknown API paths with a JSON 404.
EXEMPT = ("runs/<int:run_id>/events", "auth/token", "leaderboards", "benchmarks", "eval-jobs", "^")


def _api_routes() -> set[str]:
    """Every URL pattern under api/v1/, as Django writes it (e.g. ``runs/<int:run_id>/launch``)."""
    out: set[str] = set()

    def walk(patterns: list[Any], prefix: str) -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                out.add(prefix + str(p.pattern))

    walk(get_resolver().url_patterns, "")
    return {r.removeprefix("api/v1/") for r in out if r.startswith("api/v1/")}


def _template(path: str) -> str:
    return (path.split("?")[0].removeprefix("/api/v1/").replace("{run}", "<int:run_id>")
            .replace("{sample}", "<int:sample_id>").replace("tokens/1/", "tokens/<int:token_id>/"))


def test_the_matrix_covers_every_api_route() -> None:
    covered = {_template(p) for _, p, *_ in RUN_ROUTES + OTHER_ROUTES}
    missing = {r for r in _api_routes() if not r.startswith(EXEMPT)} - covered
    assert not missing, f"add these routes to the isolation matrix: {sorted(missing)}"


@pytest.fixture
def target(started_run: tuple[Run, str]) -> dict[str, Any]:
    """A running run of team alpha with a metric and a sample."""
    run, _ = started_run
    events_ingest(run_id=run.pk, events=[
        {"seq": 1, "type": "metric", "step": 0, "values": {"loss": 1.0}},
        {"seq": 2, "type": "sample", "step": 0, "index": 0, "prompt": "p", "response": "r", "tokens": ["a"],
         "logprob": [-1.0]},
    ])
    from webapp.tracking.models import Sample

    return {"run": run.pk, "sample": Sample.objects.get(run=run).pk}


def _call(client: Any, method: str, path: str, body: Any, ids: dict[str, Any]) -> Any:
    url = path.format(**ids)
    return getattr(client, method)(url, body, format="json") if body is not None else getattr(client, method)(url)


@pytest.mark.parametrize("token_auth", [False, True], ids=["session", "api-token"])
def test_another_teams_run_is_404_on_every_route(client_for: Any, outsider: Any, target: dict[str, Any],
                                                 token_auth: bool) -> None:
    client = client_for(outsider, token=token_auth)
    before = Run.objects.values_list("id", "status").order_by("id")[::1]
    for method, path, body, _ in RUN_ROUTES:
        response = _call(client, method, path, body, target)
        assert response.status_code == 404, (method, path, response.status_code)
        assert response.json()["error"]["code"] == "not_found", (method, path)
    assert Run.objects.values_list("id", "status").order_by("id")[::1] == before  # nothing changed
    assert client.get("/api/v1/runs/").json() == {"count": 0, "results": []}
    # and a run cannot be created in a team one is not a member of
    response = client.post("/api/v1/runs/", {"name": "x", "team": Run.objects.get(pk=target["run"]).team_id,
                                             "preset": "cpu-demo"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["fields"][0]["path"] == "team"


def test_viewers_read_but_cannot_change(client_for: Any, viewer: Any, team: Any, target: dict[str, Any]) -> None:
    client = client_for(viewer)
    for method, path, body, is_write in RUN_ROUTES:
        response = _call(client, method, path, body, target)
        expected = 403 if is_write else 200
        assert response.status_code == expected, (method, path, response.status_code)
        if is_write:
            assert response.json()["error"]["code"] == "permission_denied"
    response = client.post("/api/v1/runs/", {"name": "x", "team": team.pk, "preset": "cpu-demo"}, format="json")
    assert response.status_code == 403
    assert Run.objects.get(pk=target["run"]).status == RunStatus.RUNNING and Run.objects.count() == 1


def test_anonymous_gets_401_everywhere(api_client: Any, target: dict[str, Any]) -> None:
    for method, path, body, *_ in RUN_ROUTES + [(*r, False) for r in OTHER_ROUTES]:
        response = _call(api_client, method, path, body, target)
        assert response.status_code == 401, (method, path, response.status_code)
        assert response.json()["error"]["code"] == "not_authenticated"


def test_csrf_is_enforced_on_session_writes_only(client_for: Any, member: Any, team: Any, draft_run: Run) -> None:
    strict = client_for(member, csrf=True)
    body = {"name": "csrf", "team": team.pk, "preset": "cpu-demo"}
    refused = strict.post("/api/v1/runs/", body, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    assert strict.delete(f"/api/v1/runs/{draft_run.pk}/").status_code == 403
    assert strict.get("/api/v1/runs/").status_code == 200  # reads need no token
    from django.middleware.csrf import _get_new_csrf_string

    token = _get_new_csrf_string()
    strict.cookies["csrftoken"] = token
    assert strict.post("/api/v1/runs/", body, format="json", HTTP_X_CSRFTOKEN=token).status_code == 201
    # personal API tokens are not cookies: no CSRF token needed
    assert client_for(member, csrf=True, token=True).post("/api/v1/runs/", body, format="json").status_code == 201


_scalar = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10))
_json = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.text(max_size=10), inner, max_size=3)),
                     max_leaves=10)
_config_keys = st.sampled_from(["trainer.lr", "rollout.n", "trainer.total_steps", "model.source", "algorithm.loss",
                                "data.task_kwargs", "trainer", "x.y.z", "", ".", "trainer..lr", "reward.overlong_buffer.length"])


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(
    preset=st.one_of(st.sampled_from(["cpu-demo", "fipo-7b", "nope"]), _scalar),
    overrides=st.one_of(st.dictionaries(_config_keys, _json, max_size=3), _json),
    config=st.one_of(st.none(), st.dictionaries(st.sampled_from(["trainer", "rollout", "model", "schema_version",
                                                                   "launcher", "junk"]), _json, max_size=3), _json),
    name=st.one_of(st.text(max_size=5), _scalar),
    use_config=st.booleans(),
)
def test_fuzzed_run_creation_never_500(client_for: Any, member: Any, team: Any, preset: Any, overrides: Any,
                                       config: Any, name: Any, use_config: bool) -> None:
    body = {"name": name, "team": team.pk, "preset": preset, "overrides": overrides}
    if use_config:
        body["config"] = config
    response = client_for(member).post("/api/v1/runs/", body, format="json")
    assert response.status_code in (201, 400), response.content
    if response.status_code == 400:
        error = response.json()["error"]
        assert error["code"] == "validation_error" and isinstance(error["fields"], list)
