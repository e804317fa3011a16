"""Soak: 10 runs streaming for 5 minutes into one stack, with 20 live pages and a poller.

    .venv/bin/python bench/soak.py                       # embedded (SQLite), then PostgreSQL + Redis
    .venv/bin/python bench/soak.py --modes services --duration 300

A real stack (daphne, Celery worker and beat: ``tests/worker/stack.py``) takes:
* ``--runs`` (10) runs, each fed by the real tracking client (``fipo_engine.tracking.Tracker``: its
  own spool on disk, its background sender) with ``--rate`` (50) metric values per second (10
  names x 5 steps/s, one of them the send time) and a sample every ``--sample-every`` (10) s;
* ``--viewers`` (20) websocket clients that follow the runs as the run page does (reconnecting with
  ``?after=``), two per run: delivery time = arrival minus the send time carried in the metric;
* a poller that GETs the run list and one run's page data (detail + a metric series) once a second,
  in a process of its own (its latencies are the server's, not the load generator's GIL queue).

Afterwards each run's spool is compared with the store (every metric point and sample, and the
stream read over the websocket: 0 lost, 0 duplicated expected), and the table gives ingest request
p95 (the senders' POSTs), API GET p95, websocket delivery p95, each stack process's memory (RSS) at
start and end, and the database growth per million points. Services mode uses ``DATABASE_URL`` /
``REDIS_URL`` when set, else the local servers (``postgres://postgres@127.0.0.1:5432/fipo_soak``,
``redis://127.0.0.1:6379/5``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from ingest import RUN_TOKENS_SCRIPT  # noqa: E402

from fipo_engine.tracking import Tracker  # noqa: E402
from fipo_engine.tracking import client as tracking_client  # noqa: E402
from tests.worker import chaos  # noqa: E402
from tests.worker.stack import LiveStack, live_stack  # noqa: E402
from tests.worker.viewer import Viewer  # noqa: E402

NAMES = [f"soak/m{k}" for k in range(9)] + ["soak/sent_at"]


def p95(values: list[float]) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=20)[-1] if len(values) >= 20 else max(values)


@dataclass
class Figures:
    mode: str
    load_start: str
    load_end: str = ""
    ingest_ms: list[float] = field(default_factory=list)
    api_ms: list[float] = field(default_factory=list)
    api_errors: int = 0
    ws_ms: list[float] = field(default_factory=list)
    memory: dict[str, tuple[float, float]] = field(default_factory=dict)
    points: int = 0
    samples: int = 0
    db_bytes: tuple[int, int] = (0, 0)
    lost: int = 0
    duplicated: int = 0
    notes: list[str] = field(default_factory=list)
    reconnects: int = 0
    gaps: int = 0


# --------------------------------------------------------------------------------- measurements
_timing_lock = threading.Lock()
_ingest_ms: list[float] = []


def _timed_post(original: Any) -> Any:
    """Wrap the tracking sender's POST to record each ingest request's latency."""

    def post(self: Any, client: httpx.Client, events: list[dict[str, Any]]) -> Any:
        started = time.perf_counter()
        response = original(self, client, events)
        if response is not None and response.status_code == 200:
            with _timing_lock:
                _ingest_ms.append((time.perf_counter() - started) * 1000)
        return response

    return post


def process_rss(stack: LiveStack) -> dict[str, float]:
    """RSS in MiB of each stack child with its descendants (daphne, the Celery worker's pool, beat)."""
    out = {}
    for name, child in stack.supervisor.children.items():
        try:
            proc = psutil.Process(child.pid)
            procs = [proc, *proc.children(recursive=True)]
            out[name] = sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20
        except psutil.Error:
            continue
    return out


def db_size(stack: LiveStack) -> int:
    url = stack.env.get("DATABASE_URL")
    if url:
        import psycopg

        with psycopg.connect(url) as conn:
            return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])
    return sum(p.stat().st_size for p in stack.var_dir.glob("db.sqlite3*"))


def issue_tokens(stack: LiveStack, run_ids: list[int]) -> dict[int, str]:
    done = subprocess.run([sys.executable, "-c", RUN_TOKENS_SCRIPT, *map(str, run_ids)], env=stack.env,
                          cwd=ROOT, capture_output=True, text=True, timeout=180)
    line = next((x for x in done.stdout.splitlines() if x.startswith("TOKENS ")), None)
    if line is None:
        raise RuntimeError(f"could not issue run tokens:\n{done.stdout}\n{done.stderr}")
    return {int(k): v for k, v in json.loads(line.removeprefix("TOKENS ")).items()}


def feed(tracker: Tracker, run_index: int, args: argparse.Namespace, stop: threading.Event) -> None:
    """One synthetic trainer: ``args.rate`` values/s as steps of len(NAMES) values, a sample every N s."""
    steps_per_s = args.rate / len(NAMES)
    step, next_sample, started = 0, time.monotonic(), time.monotonic()
    tracker.status("running", "soak")
    while not stop.is_set():
        step += 1
        values = {n: (run_index * 1000 + step) * 1e-3 + k for k, n in enumerate(NAMES[:-1])}
        values["soak/sent_at"] = time.time()
        tracker.metric(step, values)
        if time.monotonic() >= next_sample:
            tokens = [f"t{i}" for i in range(64)]
            tracker.sample(step, 0, prompt=f"soak prompt {step}", response=" ".join(tokens), reward=1.0,
                           correct=True, tokens=tokens, logprob=[-0.5] * 64, entropy=[0.1] * 64)
            next_sample += args.sample_every
        stop.wait(max(0.0, started + step / steps_per_s - time.monotonic()))


def poll(base_url: str, token: str, run_ids: list[int], duration_s: float, out: str) -> None:
    """The page poller, in a process of its own (``spawn``): its latencies are the server's and the
    network's, not the queue of the load generator's 40 threads for this process's GIL (measured in
    one process, that queue added tens of ms to every read). Writes ``{"ms": [...], "errors": n}``."""
    api = httpx.Client(base_url=f"{base_url}/api/v1", timeout=30.0, headers={"Authorization": f"Token {token}"})
    latencies: list[float] = []
    errors, i = 0, 0
    end = time.monotonic() + duration_s
    while time.monotonic() < end:
        t0 = time.monotonic()
        run_id = run_ids[i % len(run_ids)]
        for path, params in (("/runs/", None), (f"/runs/{run_id}/", None),
                             (f"/runs/{run_id}/metrics", {"keys": "soak/m0,soak/m1"})):
            started = time.perf_counter()
            try:
                ok = api.get(path, params=params).status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append((time.perf_counter() - started) * 1000)
            errors += 0 if ok else 1
        i += 1
        time.sleep(max(0.0, 1.0 - (time.monotonic() - t0)))
    Path(out).write_text(json.dumps({"ms": latencies, "errors": errors}))


# ---------------------------------------------------------------------------------------- soak
def soak(mode: str, args: argparse.Namespace, tmp: Path) -> Figures:
    saved = {k: os.environ.get(k) for k in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    if mode == "embedded":
        for key in saved:
            os.environ.pop(key, None)
    else:
        os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fipo_soak")
        os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/5")
    fig = Figures(mode, load_start=load())
    try:
        with live_stack(tmp / mode, tag=f"soak{mode[:3]}", LOG_LEVEL="WARNING") as stack:
            run_ids = [stack.create_run(f"soak {i}")["id"] for i in range(args.runs)]
            tokens = issue_tokens(stack, run_ids)
            time.sleep(3)  # let the processes settle before the first memory reading
            rss_start, db_start = process_rss(stack), db_size(stack)
            _ingest_ms.clear()
            trackers = {rid: Tracker(tmp / mode / "spools" / str(rid), server=stack.base_url, run_id=rid,
                                     token=tokens[rid]) for rid in run_ids}

            def on_item(item: dict[str, Any], received: float) -> None:
                if item["type"] == "metric" and "soak/sent_at" in item["data"].get("values", {}):
                    fig.ws_ms.append((received - item["data"]["values"]["soak/sent_at"]) * 1000)

            viewers = [Viewer(stack.base_url, run_ids[i % len(run_ids)], stack.users["alice"]["session"],
                              after=stack.run(run_ids[i % len(run_ids)])["stream_pos"], on_item=on_item)
                       for i in range(args.viewers)]
            for v in viewers:
                v.start()
            stop = threading.Event()
            threads = [threading.Thread(target=feed, args=(trackers[rid], i, args, stop), daemon=True)
                       for i, rid in enumerate(run_ids)]
            poll_out = tmp / mode / "poll.json"
            poller = multiprocessing.get_context("spawn").Process(
                target=poll, args=(stack.base_url, stack.users["alice"]["token"], run_ids, args.duration, str(poll_out)))
            poller.start()
            for t in threads:
                t.start()
            print(f"  {mode}: {args.runs} runs x {args.rate} values/s, {args.viewers} viewers, {args.duration:.0f} s ...",
                  flush=True)
            time.sleep(args.duration)
            stop.set()
            for t in threads:
                t.join(timeout=30)
            poller.join(timeout=60)
            polled = json.loads(poll_out.read_text()) if poll_out.exists() else {"ms": [], "errors": 0}
            fig.api_ms, fig.api_errors = polled["ms"], polled["errors"]
            for rid, tracker in trackers.items():
                if not tracker.close(timeout=120):
                    fig.notes.append(f"run {rid}: the sender did not deliver everything within 120 s")
            time.sleep(2)
            for v in viewers:
                v.stop()
            fig.reconnects = sum(v.reconnects for v in viewers)
            fig.gaps = sum(v.gaps for v in viewers)
            rss_end, db_end = process_rss(stack), db_size(stack)
            fig.memory = {k: (rss_start.get(k, 0.0), rss_end.get(k, 0.0)) for k in rss_end}
            fig.db_bytes = (db_start, db_end)
            fig.ingest_ms = list(_ingest_ms)
            for rid in run_ids:
                events = chaos.spool_events(tmp / mode / "spools" / str(rid))
                fig.points += sum(len(e["values"]) for e in events if e["type"] == "metric")
                fig.samples += sum(1 for e in events if e["type"] == "sample")
                lost, dup, notes = chaos.store_check(stack, rid, events)
                fig.lost += lost
                fig.duplicated += dup
                fig.notes += [f"run {rid}: {n}" for n in notes]
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value
    fig.load_end = load()
    return fig


def load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default="embedded,services")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--rate", type=float, default=50.0, help="metric values per second per run")
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds between samples per run")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of load")
    parser.add_argument("--viewers", type=int, default=20, help="websocket viewers (spread over the runs)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    tracking_client._Sender._post = _timed_post(tracking_client._Sender._post)  # type: ignore[method-assign]
    tmp = Path(tempfile.mkdtemp(prefix="fipo-bench-soak-"))
    print(f"machine: {platform.node()}, {os.cpu_count()} cores, load average {load()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    figures = [soak(mode.strip(), args, tmp) for mode in args.modes.split(",")]
    print(f"\nsoak: {args.runs} runs x {args.rate:.0f} metric values/s + a sample every {args.sample_every:.0f} s, "
          f"{args.duration:.0f} s, {args.viewers} websocket viewers, a poller (run list, run detail, a series) "
          "once a second\n")
    print("| mode | load avg start -> end | points / samples | lost | dup | ingest p95 ms (n) | API GET p95 ms "
          "(n, errors) | ws delivery p50 / p95 ms (n) | ws reconnects / gaps | DB growth per 1M points |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for f in figures:
        growth = (f.db_bytes[1] - f.db_bytes[0]) / max(1, f.points) * 1e6 / 2**20
        ws50 = statistics.median(f.ws_ms) if f.ws_ms else float("nan")
        print(f"| {f.mode} | {f.load_start} -> {f.load_end} | {f.points:,} / {f.samples} | {f.lost} | {f.duplicated} "
              f"| {p95(f.ingest_ms):.1f} ({len(f.ingest_ms)}) | {p95(f.api_ms):.1f} ({len(f.api_ms)}, {f.api_errors}) "
              f"| {ws50:.0f} / {p95(f.ws_ms):.0f} ({len(f.ws_ms)}) | {f.reconnects} / {f.gaps} | {growth:,.0f} MiB |")
    print("\nprocess memory (RSS with children, MiB): start -> end")
    print("| mode | " + " | ".join(sorted({k for f in figures for k in f.memory})) + " |")
    print("|---|" + "---:|" * len({k for f in figures for k in f.memory}))
    for f in figures:
        print(f"| {f.mode} | " + " | ".join(f"{f.memory[k][0]:.0f} -> {f.memory[k][1]:.0f}" if k in f.memory else ""
                                            for k in sorted({k for g in figures for k in g.memory})) + " |")
    for f in figures:
        for note in f.notes[:10]:
            print(f"note ({f.mode}): {note}")
    return 0 if all(f.lost == 0 and f.duplicated == 0 for f in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
