"""Reads of what runs reported: metric series (downsampled in SQL), samples. Callers pass a run that
``webapp.runs.selectors.run_get`` already scoped to the user's teams."""

from __future__ import annotations

from typing import Any

import numpy as np
from django.db import connection
from django.db.models import QuerySet
from django.db.models.functions import Substr

from fipo_engine import token_channels
from webapp.accounts.models import User
from webapp.accounts.selectors import user_team_ids
from webapp.common.errors import NotFound
from webapp.runs.models import Run
from webapp.tracking.codec import unpack_channel_arrays, unpack_sample_arrays
from webapp.tracking.models import MetricKey, MetricPoint, MetricTile, Sample
from webapp.tracking.tiles import TILE_WIDTHS

SAMPLE_ORDERS = {"length": ("length", "index"), "-length": ("-length", "index"), "reward": ("reward", "index"),
                 "-reward": ("-reward", "index"), "index": ("index",)}
MAX_SAMPLES_LISTED = 1000
#: The per-step position summary has at most this many points (token positions are bucketed).
POSITION_BUCKETS = 128
#: The channels averaged by token position (the catalog flags them).
POSITION_CHANNELS = token_channels.POSITION_NAMES

# Min/max-preserving buckets in one GROUP BY over a mix of sources: the raw points at the ragged
# ends of the range and, in between, whole tiles (webapp.tracking.tiles) when a bucket spans at
# least one tile. Integer division floors because every step is >= lo; the product is computed in
# 64 bits (PostgreSQL integers are 32-bit). A bucket's value is its *last* point, fetched by
# primary-key lookups of the bucket's last step. A tile is placed in the bucket of its first step,
# so a spike can shift by less than one tile width, never disappear.
_BUCKET_SQL = """
WITH src(s, vmin, vmax, last_step, cnt) AS (
    SELECT step, value, value, step, 1 FROM {points}
    WHERE key_id = %(key)s AND ((step >= %(lo)s AND step < %(tlo)s) OR (step > %(thi)s AND step <= %(hi)s))
    UNION ALL
    SELECT tile * %(w)s, vmin, vmax, last_step, cnt FROM {tiles}
    WHERE key_id = %(key)s AND width = %(w)s AND tile >= %(t0)s AND tile <= %(t1)s
), agg AS (
    SELECT ((CAST(s AS BIGINT) - %(lo)s) * %(n)s) / %(span)s AS b, MIN(vmin) AS vmin, MAX(vmax) AS vmax,
           MAX(last_step) AS last_step, SUM(cnt) AS cnt
    FROM src GROUP BY 1
)
SELECT agg.last_step, p.value, agg.vmin, agg.vmax, agg.cnt
FROM agg JOIN {points} p ON p.key_id = %(key)s AND p.step = agg.last_step
ORDER BY agg.b
"""


def _tile_plan(lo: int, hi: int, max_points: int) -> dict[str, int]:
    """Which tile width to use over [lo, hi] and which whole tiles lie inside it.

    The widest tile not wider than one bucket; with none (a narrow zoom), only points are read.
    """
    span = hi - lo + 1
    widths = [w for w in TILE_WIDTHS if w * max_points <= span]
    if widths:
        w = widths[-1]
        t0, t1 = -(-lo // w), (hi + 1) // w - 1
        if t0 <= t1:
            return {"w": w, "t0": t0, "t1": t1, "tlo": t0 * w, "thi": (t1 + 1) * w - 1}
    return {"w": TILE_WIDTHS[0], "t0": 1, "t1": 0, "tlo": hi + 1, "thi": hi}  # no tiles: all points


def metric_key_names(*, run: Run) -> list[str]:
    return list(MetricKey.objects.filter(run=run).order_by("name").values_list("name", flat=True))


def _empty_series() -> dict[str, Any]:
    return {"step": [], "value": [], "min": [], "max": [], "total_points": 0, "downsampled": False}


def metric_series(*, run: Run, names: list[str], max_points: int, step_min: int | None = None,
                  step_max: int | None = None) -> dict[str, dict[str, Any]]:
    """Chart-ready series per metric name: at most ``max_points`` points over [step_min, step_max].

    When the range holds more points than that, it is split into ``max_points`` equal step buckets
    and each bucket gives its last point (step, value) and its min and max, so spikes survive any
    zoom level. Unknown names give an empty series.
    """
    keys = dict(MetricKey.objects.filter(run=run, name__in=names).values_list("name", "id"))
    return {name: (_series(keys[name], max_points, step_min, step_max) if name in keys else _empty_series())
            for name in names}


def _series(key_id: int, max_points: int, step_min: int | None, step_max: int | None) -> dict[str, Any]:
    table = connection.ops.quote_name(MetricPoint._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MIN(step), MAX(step) FROM {table} WHERE key_id = %s", [key_id])
        first, last = cursor.fetchone()
        if first is None:
            return _empty_series()
        lo = first if step_min is None else max(first, step_min)
        hi = last if step_max is None else min(last, step_max)
        if lo > hi:
            return _empty_series()
        params = {"key": key_id, "lo": lo, "hi": hi, "n": max_points, "span": hi - lo + 1,
                  **_tile_plan(lo, hi, max_points)}
        tiles = connection.ops.quote_name(MetricTile._meta.db_table)
        cursor.execute(_BUCKET_SQL.format(points=table, tiles=tiles), params)
        rows = cursor.fetchall()
        total = sum(r[4] for r in rows)
        if total <= max_points and len(rows) < total:  # few points, but some shared a bucket: send them all
            cursor.execute(
                f"SELECT step, value, value, value, 1 FROM {table} WHERE key_id = %s AND step >= %s AND step <= %s "
                "ORDER BY step", [key_id, lo, hi],
            )
            rows = cursor.fetchall()
    return {
        "step": [r[0] for r in rows],
        "value": [r[1] for r in rows],
        "min": [r[2] for r in rows],
        "max": [r[3] for r in rows],
        "total_points": total,
        "downsampled": total > len(rows),
    }


def sample_steps(*, run: Run) -> list[int]:
    return list(Sample.objects.filter(run=run).order_by("step").values_list("step", flat=True).distinct())


def sample_list(*, run: Run, step: int | None, min_reward: float | None = None, max_reward: float | None = None,
                order: str = "index") -> tuple[list[int], QuerySet[Sample], int | None]:
    """(available steps, samples of ``step`` (default: the latest) with a 300-char prompt, the step)."""
    steps = sample_steps(run=run)
    if step is None:
        step = steps[-1] if steps else None
    qs = Sample.objects.filter(run=run, step=step).annotate(prompt_head=Substr("prompt", 1, 300)).only(
        "id", "step", "index", "reward", "correct", "length", "minibatch", "num_minibatches")
    if min_reward is not None:
        qs = qs.filter(reward__gte=min_reward)
    if max_reward is not None:
        qs = qs.filter(reward__lte=max_reward)
    return steps, qs.order_by(*SAMPLE_ORDERS[order])[:MAX_SAMPLES_LISTED], step


def sample_get(*, user: User, sample_id: int) -> Sample:
    """One sample of a run in the user's teams (else ``NotFound``)."""
    sample = Sample.objects.filter(pk=sample_id, run__team_id__in=user_team_ids(user=user)).first()
    if sample is None:
        raise NotFound(f"sample {sample_id} not found")
    return sample


def sample_detail(sample: Sample) -> dict[str, Any]:
    tokens, channels = unpack_sample_arrays(sample.arrays)
    return {"id": sample.pk, "run": sample.run_id, "step": sample.step, "index": sample.index,
            "prompt": sample.prompt, "response": sample.response, "reward": sample.reward,
            "correct": sample.correct, "length": sample.length, "minibatch": sample.minibatch,
            "num_minibatches": sample.num_minibatches, "tokens": tokens, "channels": channels}


def position_profile(arrays: list[np.ndarray], max_buckets: int = POSITION_BUCKETS) -> dict[str, list[Any]]:
    """Mean of per-token arrays by token position: ``{"start", "mean", "count"}`` per bucket of positions.

    Positions are bucketed (width ceil(longest / max_buckets)) so a 20k-token step stays ~128 points;
    a bucket's mean is over every non-missing value of every array at those positions, None if none.
    """
    longest = max((a.size for a in arrays), default=0)
    if longest == 0:
        return {"start": [], "mean": [], "count": []}
    width = -(-longest // max_buckets)
    n_buckets = -(-longest // width)
    sums = np.zeros(n_buckets)
    counts = np.zeros(n_buckets, dtype=np.int64)
    for arr in arrays:
        ok = ~np.isnan(arr)
        bucket = np.arange(arr.size) // width
        sums += np.bincount(bucket[ok], weights=arr[ok], minlength=n_buckets)
        counts += np.bincount(bucket[ok], minlength=n_buckets)
    means = [float(v) if c else None for v, c in zip(sums / np.maximum(counts, 1), counts, strict=True)]
    return {"start": [i * width for i in range(n_buckets)], "mean": means, "count": counts.tolist()}


def step_position_summary(*, run: Run, step: int | None) -> dict[str, Any]:
    """Mean future-KL and influence weight by token position over all samples of ``step`` (any filter aside)."""
    if step is None:
        return {"samples": 0, "channels": {}}
    blobs = list(Sample.objects.filter(run=run, step=step).order_by("index")
                 .values_list("arrays", flat=True)[:MAX_SAMPLES_LISTED])
    decoded = [unpack_channel_arrays(b, POSITION_CHANNELS) for b in blobs]
    channels = {name: position_profile([d[name] for d in decoded if name in d])
                for name in POSITION_CHANNELS if any(name in d for d in decoded)}
    return {"samples": len(blobs), "channels": channels}
