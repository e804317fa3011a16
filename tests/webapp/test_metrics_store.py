"""The metric store: server-side downsampling (SQL buckets over points and tiles) against a plain
loop reference of the same algorithm, spike preservation, zoom, overwrite; the sample codec."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from webapp.tracking.codec import pack_sample_arrays, unpack_sample_arrays
from webapp.tracking.selectors import _tile_plan, metric_series
from webapp.tracking.services import events_ingest
from webapp.tracking.tiles import TILE_WIDTHS, _runs

pytestmark = pytest.mark.django_db


def _reference(points: dict[int, float], lo: int, hi: int, n: int) -> dict[str, Any]:
    """Loop reference: the documented bucketing, point by point (tiles placed by their first step)."""
    inside = {s: v for s, v in points.items() if lo <= s <= hi}
    if len(inside) <= n:
        steps = sorted(inside)
        return {"step": steps, "value": [inside[s] for s in steps], "min": [inside[s] for s in steps],
                "max": [inside[s] for s in steps], "total_points": len(inside), "downsampled": False}
    plan = _tile_plan(lo, hi, n)
    span = hi - lo + 1
    buckets: dict[int, list[tuple[int, float]]] = {}
    for s, v in inside.items():
        in_tile = plan["tlo"] <= s <= plan["thi"]
        anchor = (s // plan["w"]) * plan["w"] if in_tile else s
        buckets.setdefault((anchor - lo) * n // span, []).append((s, v))
    out: dict[str, Any] = {"step": [], "value": [], "min": [], "max": []}
    for b in sorted(buckets):
        members = buckets[b]
        last = max(members)
        out["step"].append(last[0])
        out["value"].append(last[1])
        out["min"].append(min(v for _, v in members))
        out["max"].append(max(v for _, v in members))
    out["total_points"] = len(inside)
    out["downsampled"] = len(inside) > len(out["step"])
    return out


def _ingest_points(run: Any, points: dict[int, float], key: str = "loss", seq0: int = 1) -> int:
    events = [{"seq": seq0 + i, "type": "metric", "step": s, "values": {key: v}}
              for i, (s, v) in enumerate(sorted(points.items()))]
    for start in range(0, len(events), 2000):
        result = events_ingest(run_id=run.pk, events=events[start:start + 2000])
        assert not result.rejected
    return seq0 + len(events)


@pytest.fixture
def noisy(started_run: tuple[Any, str]) -> tuple[Any, dict[int, float]]:
    run, _ = started_run
    rng = random.Random(7)
    # ~2,600 points with gaps (every step not divisible by 7) and two single-step spikes.
    points = {s: math.sin(s / 300) + rng.random() * 0.1 for s in range(0, 3000) if s % 7}
    points[1001] = 50.0
    points[2003] = -40.0
    _ingest_points(run, points)
    return run, points


# (step_min, step_max, max_points): full range at every tile level, zooms, a range over the spike,
# ranges with ragged ends, more points asked than exist.
CASES = [(None, None, 2), (None, None, 5), (None, None, 40), (None, None, 500), (None, None, 10_000),
         (990, 1010, 8), (100, 2500, 3), (1000, 1100, 2000), (33, 2999, 64), (-5, 31, 4), (2500, 9000, 7)]


def test_series_matches_the_loop_reference(noisy: tuple[Any, dict[int, float]]) -> None:
    run, points = noisy
    first, last = min(points), max(points)
    for lo, hi, n in CASES:  # one ingest, many queries (the ingest is the slow part)
        got = metric_series(run=run, names=["loss"], max_points=n, step_min=lo, step_max=hi)["loss"]
        ref = _reference(points, first if lo is None else max(lo, first), last if hi is None else min(hi, last), n)
        case = f"step_min={lo} step_max={hi} max_points={n}"
        assert got["step"] == ref["step"], case
        assert got["value"] == pytest.approx(ref["value"]), case
        assert got["min"] == pytest.approx(ref["min"]), case
        assert got["max"] == pytest.approx(ref["max"]), case
        assert got["total_points"] == ref["total_points"], case
        assert got["downsampled"] == ref["downsampled"], case
        assert len(got["step"]) <= n, case


def test_both_tile_widths_are_exercised_and_spikes_survive(noisy: tuple[Any, dict[int, float]]) -> None:
    run, points = noisy
    unknown = metric_series(run=run, names=["nope"], max_points=10)["nope"]
    assert unknown == {"step": [], "value": [], "min": [], "max": [], "total_points": 0, "downsampled": False}
    assert metric_series(run=run, names=["loss"], max_points=10, step_min=90_000)["loss"]["total_points"] == 0
    assert _tile_plan(min(points), max(points), 2)["w"] == TILE_WIDTHS[1]
    assert _tile_plan(min(points), max(points), 50)["w"] == TILE_WIDTHS[0]
    for n in (2, 5, 50):
        series = metric_series(run=run, names=["loss"], max_points=n)["loss"]
        assert max(series["max"]) == 50.0 and min(series["min"]) == -40.0
        assert series["step"][-1] == max(points) and series["value"][-1] == pytest.approx(points[max(points)])


def test_overwritten_points_leave_tiles_exact(started_run: tuple[Any, str]) -> None:
    run, _ = started_run
    points = {s: 1.0 for s in range(2100)}
    points[1234] = 99.0
    seq = _ingest_points(run, points)
    events_ingest(run_id=run.pk, events=[{"seq": seq, "type": "metric", "step": 1234, "values": {"loss": 2.0}}])
    for n in (2, 20):  # 1024- and 32-step tiles
        series = metric_series(run=run, names=["loss"], max_points=n)["loss"]
        assert max(series["max"]) == 2.0  # the replaced spike is gone from every tile level
        assert series["total_points"] == 2100


def test_runs_of_consecutive_tiles() -> None:
    assert _runs([5, 1, 2, 3, 9, 10]) == [(1, 4), (5, 6), (9, 11)]
    assert _runs([]) == []


def test_sample_codec_roundtrip_float16_nan_and_saturation() -> None:
    tokens = ["<s>", "1", "+", "1", "=", "2", "é", ""]
    channels = {"logprob": [-0.5, -1.25, None, -3.0, -0.0001, -7.5, -2.0, -1.0],
                "ratio": [1.0, 1e9, -1e9, 0.5, 2.0, 3.0, float("nan"), 1.0]}
    blob = pack_sample_arrays(tokens, channels)
    back_tokens, back = unpack_sample_arrays(blob)
    assert back_tokens == tokens
    assert back["logprob"][2] is None and back["ratio"][6] is None
    assert back["ratio"][1] == 65504.0 and back["ratio"][2] == -65504.0
    for a, b in zip(channels["logprob"], back["logprob"], strict=True):
        if a is not None:
            assert b == pytest.approx(a, rel=1e-3, abs=1e-4)


def test_sample_codec_is_compact() -> None:
    rng = random.Random(0)
    n = 20_000
    channels = {name: [rng.gauss(0, 1) for _ in range(n)] for name in ("logprob", "ratio", "entropy", "advantage")}
    blob = pack_sample_arrays(["tok"] * n, channels)
    assert len(blob) < 4 * n * 2 + 2000  # float16, never the ~4 x 20k x 20 bytes of JSON


def test_deleting_a_run_deletes_its_points_and_tiles(started_run: tuple[Any, str]) -> None:
    """Points and tiles name their key without a database constraint (ingest speed): the ORM's
    cascade must still remove them with their run, and leave other runs' alone."""
    from webapp.runs.models import Run
    from webapp.tracking.models import MetricKey, MetricPoint, MetricTile

    run, _ = started_run
    events_ingest(run_id=run.pk, events=[{"seq": s, "type": "metric", "step": s, "values": {"reward/mean": 0.5}}
                                         for s in range(1, 41)])
    keys = list(MetricKey.objects.filter(run=run).values_list("pk", flat=True))
    assert MetricPoint.objects.filter(key_id__in=keys).count() == 40
    assert MetricTile.objects.filter(key_id__in=keys).exists()
    other = Run.objects.create(name="other", team=run.team, created_by=run.created_by, config=run.config,
                               schema_version=run.schema_version, status=run.status)
    other_key = MetricKey.objects.create(run=other, name="reward/mean")
    MetricPoint.objects.create(key=other_key, step=1, value=1.0)
    Run.objects.get(pk=run.pk).delete()
    assert not MetricPoint.objects.filter(key_id__in=keys).exists()
    assert not MetricTile.objects.filter(key_id__in=keys).exists()
    assert MetricPoint.objects.filter(key=other_key).count() == 1
