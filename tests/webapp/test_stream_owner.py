"""The run stream has one owner, the runs app (issue 16, "No back-and-forth between modules").

``StreamItem`` and ``webapp.runs.stream`` live in ``webapp.runs``; ``webapp.tracking`` appends and
reads through that module, and nothing in ``webapp.runs`` imports ``webapp.tracking``. The model
moved from tracking with a state-only migration pair, so an existing database keeps its table,
rows, indexes and constraint names: the last test replays that upgrade.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.test_import_graph import import_graph
from webapp.runs.models import Run, StreamItem

BEFORE_MOVE = [("runs", "0004_run_uid"), ("tracking", "0004_sample_minibatch")]


def test_runs_imports_nothing_from_tracking() -> None:
    graph = import_graph()
    runs_modules = [m for m in graph if m == "webapp.runs" or m.startswith("webapp.runs.")]
    assert runs_modules
    wrong = {m: sorted(t for t in graph[m] if t.startswith("webapp.tracking")) for m in runs_modules}
    assert {m: t for m, t in wrong.items() if t} == {}
    assert "webapp.tracking.stream" not in graph  # one stream module, not a second copy


def test_stream_item_belongs_to_runs_and_keeps_its_table() -> None:
    meta = StreamItem._meta
    assert meta.app_label == "runs"
    assert meta.db_table == "tracking_streamitem"
    assert {c.name for c in meta.constraints} == {"streamitem_run_pos_unique", "streamitem_run_seq_unique"}
    assert Run._meta.get_field("stream_items").related_model is StreamItem


def _migrate(executor: MigrationExecutor, targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection)


@pytest.mark.django_db(transaction=True)
def test_upgrade_keeps_stream_rows() -> None:
    """A row written through the old ``tracking.StreamItem`` reads back through ``runs.StreamItem``."""
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    executor = _migrate(executor, BEFORE_MOVE)
    try:
        old = executor.loader.project_state(BEFORE_MOVE).apps
        assert not any(m._meta.model_name == "streamitem" for m in old.get_app_config("runs").get_models())
        team = old.get_model("accounts", "Team").objects.create(name="stream-move")
        run = old.get_model("runs", "Run").objects.create(name="r", team=team, config={}, schema_version=1,
                                                          stream_pos=1)
        old.get_model("tracking", "StreamItem").objects.create(run=run, pos=1, seq=3, type="metric",
                                                               data={"loss": 0.5})
    finally:
        _migrate(executor, latest)
    item = StreamItem.objects.get(run_id=run.pk)
    assert (item.pos, item.seq, item.type, item.data) == (1, 3, "metric", {"loss": 0.5})
