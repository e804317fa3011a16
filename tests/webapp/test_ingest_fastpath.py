"""The ingest hot path (issue 4): the plain ingest view, the token check folded into the run lock,
the fast metric parser, and PostgreSQL's one-statement store of keys, points and tiles. Each is
checked against the path it replaces, so both always give the same answers."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from webapp.runs.models import Run, RunStatus
from webapp.tracking import events as ev
from webapp.tracking import services
from webapp.tracking.models import MetricKey, MetricPoint, MetricTile

pytestmark = pytest.mark.django_db

on_postgres = pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL statement")


def _post(token: str | None, run_id: int, body: bytes | str, method: str = "POST") -> Any:
    client = APIClient()
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=token if " " in token else f"Bearer {token}")
    return client.generic(method, f"/api/v1/runs/{run_id}/events", body, content_type="application/json")


# ------------------------------------------------------------------------------- the parser
# storable text only: check_text=False is the caller's word that the body holds no NUL or lone surrogate
_storable = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_names = st.one_of(st.sampled_from(["loss", "reward/mean", "", "x" * 200, "x" * 201]), st.text(_storable, max_size=6))
_values = st.one_of(st.floats(), st.integers(min_value=-(2**70), max_value=2**70), st.booleans(), st.none(),
                    st.text(_storable, max_size=3), st.lists(st.floats(), max_size=2), st.just(1e308))
_metric_events = st.fixed_dictionaries(
    {"seq": st.one_of(st.integers(min_value=-1, max_value=2**63), st.booleans(), st.floats()),
     "type": st.just("metric"),
     "step": st.one_of(st.integers(min_value=-1, max_value=2**32), st.booleans(), st.floats(), st.none()),
     "values": st.one_of(st.dictionaries(_names, _values, max_size=5), st.lists(st.floats(), max_size=2),
                         st.none())},
)


def _outcome(raw: dict[str, Any], *, check_text: bool) -> Any:
    try:
        event = ev.parse_event(raw, check_text=check_text)
    except ev.Rejected as exc:
        return ("rejected", str(exc))
    return ("ok", event.seq, event.type, json.dumps(event.payload, sort_keys=True))


@hsettings(max_examples=400, deadline=None)
@given(raw=_metric_events)
@example(raw={"seq": 1, "type": "metric", "step": 0, "values": {"a": 1e308, "b": 1e308}})  # finite, sum overflows
@example(raw={"seq": 1, "type": "metric", "step": 0, "values": {"a": math.inf}})
@example(raw={"seq": 1, "type": "metric", "step": 0, "values": {"a": 1, "b": 2.5}})
def test_fast_metric_parse_agrees_with_the_full_validation(raw: dict[str, Any]) -> None:
    # check_text=True always takes the full path (the names hold no unstorable text here)
    assert _outcome(raw, check_text=False) == _outcome(raw, check_text=True)


def test_the_common_metric_event_takes_the_fast_path() -> None:
    raw = {"seq": 3, "type": "metric", "step": 7, "values": {"loss": 0.5, "reward/mean": -1.25}}
    event = ev._plain_metric(raw)
    assert event is not None and event.payload == {"step": 7, "values": {"loss": 0.5, "reward/mean": -1.25}}
    for odd in ({"loss": 1}, {"loss": None}, {"loss": math.inf}, {"": 1.0}, {"x" * 201: 1.0}, {"a": True}):
        assert ev._plain_metric({**raw, "values": odd}) is None  # left to the full path


# ---------------------------------------------------------------------------------- the view
def test_auth_is_answered_before_the_body(started_run: tuple[Run, str], start_run: Any, member: Any, team: Any,
                                          settings: Any) -> None:
    run, token = started_run
    from webapp.runs.services import run_create

    other_token = start_run(run_create(user=member, team_id=team.pk, name="other", preset="cpu-demo"))
    settings.FIPO_INGEST_MAX_BYTES = 100
    bad = _post("not-a-token", run.pk, "{not json")
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "not_authenticated"
    assert bad["WWW-Authenticate"] == "Bearer"
    missing = _post(None, run.pk, "[]")
    assert missing.status_code == 401 and missing["WWW-Authenticate"] == "Bearer"
    assert _post("Bearer a b", run.pk, "[]").status_code == 401
    assert _post("Token abc", run.pk, "[]").status_code == 401  # a personal key is not a run token
    assert _post(other_token, run.pk, "x" * 500).status_code == 403  # another run's token, oversized body
    assert _post(token, run.pk, "x" * 500).status_code == 413
    assert _post(token, run.pk, "{not json").status_code == 400
    Run.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    finished = _post(token, run.pk, "{not json")
    assert finished.status_code == 403 and finished.json()["error"]["code"] == "permission_denied"
    run.refresh_from_db()
    assert run.last_heartbeat is None  # none of these counted as a heartbeat


def test_other_methods_get_drfs_answers(started_run: tuple[Run, str]) -> None:
    run, token = started_run
    assert _post(None, run.pk, "", method="GET").status_code == 401
    answer = _post(token, run.pk, "", method="GET")
    assert answer.status_code == 405 and answer.json()["error"]["code"] == "method_not_allowed"


def test_the_endpoint_stays_in_the_openapi_schema(client_for: Any, member: Any) -> None:
    schema = client_for(member).get("/api/v1/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    assert "/api/v1/runs/{run_id}/events" in schema.content.decode()


def test_a_metric_batch_is_one_locking_read_and_one_points_statement(started_run: tuple[Run, str]) -> None:
    run, token = started_run
    body = [{"seq": i + 1, "type": "metric", "step": i, "values": {f"m{k}": i + k / 10 for k in range(10)}}
            for i in range(50)]
    assert _post(token, run.pk, json.dumps(body)).status_code == 200  # keys created, run -> running
    body = [{**e, "seq": e["seq"] + 50, "step": e["step"] + 50} for e in body]
    body[-1]["values"]["reward/mean"] = 0.25
    before = Run.objects.get(pk=run.pk)
    with CaptureQueriesContext(connection) as ctx:
        answer = _post(token, run.pk, json.dumps(body))
    assert answer.json() == {"acked_seq": 100, "accepted": 50, "duplicates": 0, "rejected": []}
    sql = [q["sql"] for q in ctx.captured_queries]
    run_reads = [s for s in sql if s.startswith("SELECT") and '"runs_run"' in s]
    assert len(run_reads) == 1  # the token check is the locking read
    assert "token_hash" in run_reads[0] and '"config"' not in run_reads[0]
    if connection.vendor == "postgresql":
        assert "FOR UPDATE" in run_reads[0]
        assert not [s for s in sql if s.startswith("SELECT") and "tracking_metrickey" in s]
        assert len([s for s in sql if "tracking_metricpoint" in s]) == 1  # keys, points and tiles together
    assert MetricPoint.objects.filter(key__run=run).count() == 1001
    after = Run.objects.get(pk=run.pk)  # the progress UPDATE wrote what run.save(update_fields) did
    assert (after.acked_seq, after.max_seq, after.last_step, after.summary) == (100, 100, 99, {"reward/mean": 0.25})
    assert after.stream_pos == before.stream_pos + 50 and after.status == RunStatus.RUNNING
    assert after.updated_at > before.updated_at and after.last_heartbeat > before.last_heartbeat


def test_metric_names_that_need_quoting_roundtrip(started_run: tuple[Run, str]) -> None:
    run, token = started_run
    names = ['a"b', "c\\d", "{e,f}", "NULL", "\u00fc \u20ac", " ", "x'y", "g\\\"h"]
    values = [0.1 + 0.2, 5e-324, 1.7976931348623157e308, -2.5, 1 / 3, 1e-300, 123456789.123456789, -0.0]
    body = [{"seq": 1, "type": "metric", "step": 2**31 - 1, "values": dict(zip(names, values, strict=True))}]
    assert _post(token, run.pk, json.dumps(body)).json()["accepted"] == 1
    stored = dict(MetricPoint.objects.filter(key__run=run).values_list("key__name", "value"))
    assert stored == dict(zip(names, values, strict=True))
    assert MetricTile.objects.filter(key__run=run).count() == 2 * len(names)


# ------------------------------------------------------------------- PostgreSQL's statement
def _events(seq: int, steps: range, names: list[str], scale: float) -> list[dict[str, Any]]:
    return [{"seq": seq + i, "type": "metric", "step": step,
             "values": {n: math.sin(step * (k + 1)) * scale for k, n in enumerate(names) if (step + k) % 7}}
            for i, step in enumerate(steps)]


def _store(run: Run, batches: list[list[dict[str, Any]]]) -> None:
    for batch in batches:
        with transaction.atomic():
            locked = Run.objects.select_for_update().get(pk=run.pk)
            parsed = [ev.parse_event(raw) for raw in batch]
            pending: list[Any] = []
            services._store_metrics(locked, parsed, pending)
            services._save_progress(locked, pending)


def _dump(run: Run) -> tuple[list[Any], list[Any]]:
    points = sorted(MetricPoint.objects.filter(key__run=run).values_list("key__name", "step", "value"))
    tiles = sorted(MetricTile.objects.filter(key__run=run).values_list(
        "key__name", "width", "tile", "vmin", "vmax", "last_step", "cnt"))
    return points, tiles


@on_postgres
@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(plan=st.lists(st.tuples(st.integers(min_value=0, max_value=3000), st.integers(min_value=1, max_value=80),
                               st.floats(min_value=-1e6, max_value=1e6)), min_size=1, max_size=6))
def test_postgres_statement_matches_the_generic_store(draft_run: Run, member: Any, team: Any,
                                                      plan: list[tuple[int, int, float]]) -> None:
    """Same batches (overlapping step ranges: overwritten points, tiles of both widths, gaps) through
    the one-statement PostgreSQL store and through the generic key lookup + upsert + refresh_tiles."""
    from webapp.runs.services import run_create

    fast = run_create(user=member, team_id=team.pk, name="fast", preset="cpu-demo")
    generic = run_create(user=member, team_id=team.pk, name="generic", preset="cpu-demo")
    names = ["loss", 'q"uote', "back\\slash", "{brace,comma}"]
    batches = [_events(1 + 100 * i, range(start, start + length), names, scale)
               for i, (start, length, scale) in enumerate(plan)]
    _store(fast, batches)
    original = services._store_points_pg
    services._store_points_pg = services._store_points  # type: ignore[assignment]
    try:
        _store(generic, batches)
    finally:
        services._store_points_pg = original  # type: ignore[assignment]
    assert _dump(fast) == _dump(generic)
    fast.refresh_from_db()
    generic.refresh_from_db()
    assert (fast.last_step, fast.summary) == (generic.last_step, generic.summary)
    keys = [sorted(MetricKey.objects.filter(run=r).values_list("name", flat=True)) for r in (fast, generic)]
    assert keys[0] == keys[1] and set(keys[0]) <= set(names)
    MetricKey.objects.filter(run__in=[fast, generic]).delete()
