"""Chart query: a 2,000-point downsampled series of a 1,000,000-point metric, full range and zoomed.

    .venv/bin/python bench/chart_query.py                       # PostgreSQL when DATABASE_URL is set
    .venv/bin/python bench/chart_query.py --points 200000 --repeat 10

A fresh database (``<name>_stack_chart_<pid>`` on the DATABASE_URL server, else a SQLite file) gets
one run with one metric of N points, ingested through the tracking service in batches (so the
points and the step tiles are exactly what the ingest endpoint stores), plus one spike. Then each
query is timed ``--repeat`` times, warm:

* ``selector``: ``webapp.tracking.selectors.metric_series`` (the SQL the API runs);
* ``HTTP``: ``GET /api/v1/runs/<id>/metrics?keys=..&max_points=2000`` through Django's full request
  path in-process (token auth, view, JSON rendering; no socket);
* baseline, same run: read every point of the range through the ORM and bucket it in Python, what
  a straightforward implementation would do.

Target (issue 4): under 200 ms for the full range and a zoomed range.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.worker.stack import make_database  # noqa: E402  (a fresh database, PostgreSQL or SQLite)

METRIC = "reward/mean"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--max-points", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--batch", type=int, default=10_000, help="events per ingest call while filling")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    return parser.parse_args()


def timed(fn: Callable[[], object], repeat: int) -> tuple[list[float], object]:
    fn()  # warm-up (plans, caches)
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return times, result


def naive_series(key_id: int, lo: int, hi: int, max_points: int) -> dict[str, list]:
    """The baseline: every point of the range to Python, bucketed there (last/min/max per bucket)."""
    from webapp.tracking.models import MetricPoint

    rows = list(MetricPoint.objects.filter(key_id=key_id, step__gte=lo, step__lte=hi)
                .order_by("step").values_list("step", "value"))
    width = max(1, math.ceil((hi - lo + 1) / max_points))
    buckets: dict[int, list[float]] = {}
    for step, value in rows:
        b = buckets.setdefault((step - lo) // width, [step, value, value, value])
        b[0], b[1], b[2], b[3] = step, value, min(b[2], value), max(b[3], value)
    ordered = [buckets[k] for k in sorted(buckets)]
    return {"step": [b[0] for b in ordered], "value": [b[1] for b in ordered],
            "min": [b[2] for b in ordered], "max": [b[3] for b in ordered]}


def main() -> int:
    args = parse_args()
    db = make_database("chart")
    tmp = Path(tempfile.mkdtemp(prefix="fipo-bench-chart-"))
    os.environ.update(db.env)
    if not db.env:
        os.environ.pop("DATABASE_URL", None)
    os.environ.update({"FIPO_VAR_DIR": str(tmp), "DJANGO_SETTINGS_MODULE": "webapp.settings",
                       "CELERY_TASK_ALWAYS_EAGER": "0", "LOG_LEVEL": "WARNING"})
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.test import Client

    from webapp.accounts.services import (
        api_token_create,
        membership_set,
        team_get_or_create,
        user_create_or_update,
    )
    from webapp.runs.models import RunStatus
    from webapp.runs.services import run_create, run_transition
    from webapp.tracking.models import MetricKey
    from webapp.tracking.selectors import metric_series
    from webapp.tracking.services import events_ingest

    try:
        call_command("migrate", interactive=False, verbosity=0)
        user, _ = user_create_or_update(username="bench", password="bench-pw")
        team, _ = team_get_or_create(name="bench")
        membership_set(user=user, team=team, role="owner")
        _, key = api_token_create(user=user, name="bench")
        run = run_create(user=user, team_id=team.pk, name="chart bench", preset="cpu-demo")
        with transaction.atomic():
            for to in (RunStatus.QUEUED, RunStatus.STARTING):
                run_transition(run_id=run.pk, to=to, reason="bench")

        n = args.points
        rng = random.Random(0)
        spike_step = rng.randrange(n // 4, 3 * n // 4)
        started = time.perf_counter()
        value = 0.0
        for first in range(0, n, args.batch):
            events = []
            for step in range(first, min(n, first + args.batch)):
                value += rng.gauss(0.0, 0.01)
                v = 1000.0 if step == spike_step else value
                events.append({"seq": step + 1, "type": "metric", "step": step, "values": {METRIC: v}})
            result = events_ingest(run_id=run.pk, events=events)
            assert not result.rejected, result.rejected[:3]
        fill_s = time.perf_counter() - started
        key_id = MetricKey.objects.get(run=run, name=METRIC).pk
        run.refresh_from_db()

        zoom_lo = n // 2
        cases = [
            ("full range", None, None),
            ("zoom 10%", zoom_lo, zoom_lo + n // 10 - 1),
            ("zoom 1%", zoom_lo, zoom_lo + n // 100 - 1),
            ("zoom 1,500 steps (raw)", zoom_lo, zoom_lo + 1499),
        ]
        client = Client(HTTP_AUTHORIZATION=f"Token {key}")
        rows = []
        for label, lo, hi in cases:
            def selector(lo=lo, hi=hi) -> dict:
                return metric_series(run=run, names=[METRIC], max_points=args.max_points, step_min=lo, step_max=hi)[METRIC]

            def http(lo=lo, hi=hi) -> dict:
                params = {"keys": METRIC, "max_points": args.max_points}
                params.update({k: v for k, v in (("step_min", lo), ("step_max", hi)) if v is not None})
                response = client.get(f"/api/v1/runs/{run.pk}/metrics", params)
                assert response.status_code == 200, response.content[:300]
                return response.json()["series"][METRIC]

            def baseline(lo=lo, hi=hi) -> dict:
                return naive_series(key_id, 0 if lo is None else lo, n - 1 if hi is None else hi, args.max_points)

            sel_t, series = timed(selector, args.repeat)
            http_t, via_http = timed(http, args.repeat)
            base_t, _ = timed(baseline, max(3, args.repeat // 5))
            assert len(series["step"]) <= args.max_points and via_http["step"] == series["step"]
            in_range = lo is None or lo <= spike_step <= hi
            spike_kept = (max(series["max"]) == 1000.0) == in_range
            rows.append((label, series["total_points"], len(series["step"]), statistics.median(sel_t),
                         max(sel_t), statistics.median(http_t), max(http_t), statistics.median(base_t), spike_kept))

        vendor = connection.vendor
        print(f"\nchart query: {n:,} points of one metric, {args.max_points:,}-point series, {vendor} "
              f"({db.label}), warm, {args.repeat} repeats")
        print(f"fill through the tracking service: {fill_s:.1f} s ({n / fill_s:,.0f} values/s, {args.batch:,}-event batches)\n")
        print("| query | points in range | returned | selector median ms | selector max ms | HTTP median ms "
              "| HTTP max ms | baseline median ms | baseline / HTTP | spike kept |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for label, total, returned, sm, sx, hm, hx, bm, spike in rows:
            print(f"| {label} | {total:,} | {returned:,} | {sm:.1f} | {sx:.1f} | {hm:.1f} | {hx:.1f} | {bm:.1f} "
                  f"| {bm / hm:.1f}x | {'yes' if spike else 'NO'} |")
        worst = max(max(r[6] for r in rows[:2]), 0.0)
        print(f"\ntarget: full range and zoom under 200 ms through HTTP: "
              f"{'met' if worst < 200 else 'NOT met'} (worst of {args.repeat} runs: {worst:.1f} ms)")
    finally:
        connection.close()
        if not args.keep:
            db.drop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
