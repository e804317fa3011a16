"""Metric ingest: values per second through the HTTP tracking endpoint, beside MLflow's tracking server.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/fipo .venv/bin/python bench/ingest.py
    .venv/bin/python bench/ingest.py --values 100000 --mlflow /path/to/venv/bin/mlflow

Both servers get the same data in the same shape: 4 clients (threads with keep-alive connections),
each writing its own run, bodies of 500 values (50 steps x 10 metric names), encoded before the
clock starts, so the numbers measure the servers.

* ours: real daphne processes serving ``webapp.asgi`` (``--processes``, default 1), ``POST /api/v1/runs/<id>/events`` with
  the run token, into a fresh PostgreSQL database (``<name>_stack_ingest_<pid>``; SQLite when
  ``DATABASE_URL`` is unset);
* MLflow: ``mlflow server`` (``--workers`` = ``--processes``) on another fresh database of the same PostgreSQL server,
  ``POST /api/2.0/mlflow/runs/log-batch``, the endpoint ``MlflowClient.log_batch`` calls. MLflow is a
  bench-only dependency (``pip install '.[bench]'``, or any venv: ``--mlflow PATH``). When it
  cannot be found or started, the table says so and has our line only.

After each side, the stored point count is read back and must equal what was sent.
Target (issue 4): at least 20,000 values/s and at least 10x MLflow.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.worker.stack import StackDatabase, free_port, live_stack, make_database  # noqa: E402
from worker.supervisor import Supervisor, web_command  # noqa: E402

# Puts the bench runs in the running state with a run token, through the run services (what the
# launch task does before it starts a trainer), and prints the tokens.
RUN_TOKENS_SCRIPT = textwrap.dedent("""
    import json, secrets, sys, django
    django.setup()
    from django.db import transaction
    from webapp.common.auth import token_hash
    from webapp.runs.models import Run, RunStatus
    from webapp.runs.services import run_transition
    tokens = {}
    for run_id in map(int, sys.argv[1:]):
        token = secrets.token_urlsafe(32)
        with transaction.atomic():
            run_transition(run_id=run_id, to=RunStatus.QUEUED, reason="bench")
            Run.objects.filter(pk=run_id).update(token_hash=token_hash(token))
            run_transition(run_id=run_id, to=RunStatus.STARTING, reason="bench")
        tokens[run_id] = token
    print("TOKENS " + json.dumps(tokens))
""")


@dataclass
class Result:
    name: str
    values: int
    seconds: float
    latencies_ms: list[float]
    stored: int | None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.values / self.seconds


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--values", type=int, default=200_000, help="values sent to our endpoint (all clients)")
    parser.add_argument("--mlflow-values", type=int, default=40_000, help="values sent to MLflow (all clients)")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500, help="values per request")
    parser.add_argument("--keys", type=int, default=10, help="metric names per step")
    parser.add_argument("--mlflow", default=None, help="the mlflow executable (default: next to this python, "
                        "then PATH)")
    parser.add_argument("--no-mlflow", action="store_true", help="measure our endpoint only")
    parser.add_argument("--processes", type=int, default=1,
                        help="server processes on each side: daphne processes (clients spread over them, as a "
                        "load balancer would) and MLflow --workers")
    return parser.parse_args()


def drive(name: str, bodies: list[list[bytes]], send: Callable[[httpx.Client, int, bytes], None],
          clients: list[httpx.Client], values: int) -> tuple[float, list[float]]:
    """Run one thread per client over its pre-encoded bodies; return (wall seconds, latencies ms)."""
    latencies: list[list[float]] = [[] for _ in bodies]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(bodies) + 1)

    def work(i: int) -> None:
        barrier.wait()
        try:
            for body in bodies[i]:
                t = time.perf_counter()
                send(clients[i], i, body)
                latencies[i].append((time.perf_counter() - t) * 1000)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{name}: {errors[0]}") from errors[0]
    return seconds, [x for per in latencies for x in per]


def step_blocks(total: int, clients: int, batch: int, keys: int) -> list[list[list[int]]]:
    """Per client, per request: the steps it carries (batch / keys steps of ``keys`` values each)."""
    steps_per_body = batch // keys
    bodies_per_client = max(1, total // (clients * batch))
    return [[list(range(b * steps_per_body, (b + 1) * steps_per_body)) for b in range(bodies_per_client)]
            for _ in range(clients)]


def value_of(client: int, step: int, k: int) -> float:
    return ((client * 7919 + step * 31 + k) % 1000) / 1000.0


# --------------------------------------------------------------------------------------------- ours
def bench_ours(args: argparse.Namespace, tmp: Path) -> Result:
    with live_stack(tmp / "ours", tag="ingest", beat=False, worker=False, LOG_LEVEL="WARNING") as stack:
        run_ids = [stack.create_run(f"ingest {i}")["id"] for i in range(args.clients)]
        done = subprocess.run([sys.executable, "-c", RUN_TOKENS_SCRIPT, *map(str, run_ids)], env=stack.env,
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        line = next((x for x in done.stdout.splitlines() if x.startswith("TOKENS ")), None)
        if line is None:
            raise RuntimeError(f"could not issue run tokens:\n{done.stdout}\n{done.stderr}")
        tokens = {int(k): v for k, v in json.loads(line.removeprefix("TOKENS ")).items()}
        names = [f"bench/m{k}" for k in range(args.keys)]
        blocks = step_blocks(args.values, args.clients, args.batch, args.keys)
        bodies = []
        for c, per_client in enumerate(blocks):
            seq, encoded = 0, []
            for steps in per_client:
                events = []
                for step in steps:
                    seq += 1
                    events.append({"seq": seq, "type": "metric", "step": step,
                                   "values": {n: value_of(c, step, k) for k, n in enumerate(names)}})
                encoded.append(json.dumps(events).encode())
            bodies.append(encoded)
        sent = sum(len(b) for b in bodies) * args.batch
        urls = [stack.base_url]
        for extra in range(1, args.processes):  # more daphne processes on the same database and Redis
            port = free_port()
            stack.supervisor.start(f"web{extra + 1}", web_command("127.0.0.1", port), env=stack.env, cwd=ROOT)
            stack.supervisor.wait_http(f"http://127.0.0.1:{port}/admin/login/", child=f"web{extra + 1}")
            urls.append(f"http://127.0.0.1:{port}")
        clients = [httpx.Client(base_url=urls[i % len(urls)], timeout=120,
                                headers={"Authorization": f"Bearer {tokens[run_id]}",
                                         "Content-Type": "application/json"}) for i, run_id in enumerate(run_ids)]

        def send(client: httpx.Client, i: int, body: bytes) -> None:
            response = client.post(f"/api/v1/runs/{run_ids[i]}/events", content=body)
            if response.status_code != 200 or response.json()["rejected"]:
                raise RuntimeError(f"ingest answered {response.status_code}: {response.text[:300]}")

        seconds, latencies = drive("ours", bodies, send, clients, sent)
        for client in clients:
            client.close()
        stored = 0
        for run_id in run_ids:
            series = stack.api().get(f"/runs/{run_id}/metrics",
                                     params={"keys": ",".join(names), "max_points": 2}).json()["series"]
            stored += sum(s["total_points"] for s in series.values())
        label = "PostgreSQL" if "DATABASE_URL" in stack.env else "SQLite (no DATABASE_URL)"
        return Result(f"FIPO control plane (daphne, {args.processes} process(es), {label})", sent, seconds,
                      latencies, stored)


# ------------------------------------------------------------------------------------------- mlflow
def find_mlflow(explicit: str | None) -> str | None:
    if explicit:
        return explicit if Path(explicit).exists() else None
    beside = Path(sys.executable).parent / "mlflow"
    return str(beside) if beside.exists() else shutil.which("mlflow")


def bench_mlflow(args: argparse.Namespace, tmp: Path) -> Result | str:
    exe = find_mlflow(args.mlflow)
    if exe is None:
        return "MLflow not installed (pip install '.[bench]' or --mlflow PATH): not measured"
    db = make_database("mlflow")
    if not db.env:
        store = f"sqlite:///{tmp / 'mlflow.sqlite3'}"
    else:
        store = db.env["DATABASE_URL"].replace("postgres://", "postgresql+psycopg://", 1)
    port = free_port()
    log = open(tmp / "mlflow.log", "w")  # noqa: SIM115 (closed below)
    sup = Supervisor(log, stop_timeout_s=15)
    try:
        sup.start("mlflow", [exe, "server", "--backend-store-uri", store, "--default-artifact-root",
                             f"file://{tmp / 'mlflow-artifacts'}", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", str(args.processes)])
        try:
            sup.wait_http(f"http://127.0.0.1:{port}/health", child="mlflow", timeout_s=300)
        except Exception as exc:
            return f"MLflow server did not start ({exc}); see {tmp / 'mlflow.log'}"
        try:
            return _measure_mlflow(args, exe, port, db)
        except (httpx.HTTPError, RuntimeError, KeyError) as exc:
            return f"MLflow failed during the measurement: {exc.__cause__ or exc!r}; see {tmp / 'mlflow.log'}"
    finally:
        sup.stop()
        log.close()
        db.drop()


def _measure_mlflow(args: argparse.Namespace, exe: str, port: int, db: StackDatabase) -> Result:
    """Experiment, one run per client, then the timed log-batch calls and the read-back."""
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    api = httpx.Client(timeout=120)
    experiment = api.post(f"{base}/experiments/create", json={"name": "ingest-bench"}).json()["experiment_id"]
    run_ids = [api.post(f"{base}/runs/create", json={"experiment_id": experiment,
                                                     "start_time": int(time.time() * 1000)}).json()["run"]["info"]["run_id"]
               for _ in range(args.clients)]
    names = [f"bench/m{k}" for k in range(args.keys)]
    blocks = step_blocks(args.mlflow_values, args.clients, args.batch, args.keys)
    now = int(time.time() * 1000)
    bodies = [[json.dumps({"run_id": run_ids[c], "metrics": [
        {"key": n, "value": value_of(c, step, k), "timestamp": now, "step": step}
        for step in steps for k, n in enumerate(names)]}).encode() for steps in per_client]
        for c, per_client in enumerate(blocks)]
    sent = sum(len(b) for b in bodies) * args.batch
    clients = [httpx.Client(base_url=base, timeout=300, headers={"Content-Type": "application/json"})
               for _ in run_ids]

    def send(client: httpx.Client, i: int, body: bytes) -> None:
        response = client.post("/runs/log-batch", content=body)
        if response.status_code != 200:
            raise RuntimeError(f"log-batch answered {response.status_code}: {response.text[:300]}")

    try:
        seconds, latencies = drive("mlflow", bodies, send, clients, sent)
    finally:
        for client in clients:
            client.close()
    stored = 0
    for run_id in run_ids:
        for name in names:
            history = api.get(f"{base}/metrics/get-history",
                              params={"run_id": run_id, "metric_key": name, "max_results": 25000}).json()
            stored += len(history.get("metrics", []))
    api.close()
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
    label = "PostgreSQL" if db.env else "SQLite"
    return Result(f"MLflow server ({version}, {args.processes} worker(s), {label})", sent, seconds,
                  latencies, stored)


# ---------------------------------------------------------------------------------------------- main
def main() -> int:
    args = parse_args()
    if args.batch % args.keys:
        raise SystemExit("--batch must be a multiple of --keys")
    tmp = Path(tempfile.mkdtemp(prefix="fipo-bench-ingest-"))
    ours = bench_ours(args, tmp)
    print(f"ours: {ours.values:,} values in {ours.seconds:.2f} s = {ours.rate:,.0f} values/s", flush=True)
    theirs = "not measured (--no-mlflow)" if args.no_mlflow else bench_mlflow(args, tmp)

    print(f"\ningest: {args.clients} concurrent clients, {args.batch} values per request "
          f"({args.batch // args.keys} steps x {args.keys} metrics), one run per client, bodies pre-encoded\n")
    print("| server | values sent | stored | seconds | values/s | request p50 ms | request p95 ms | vs MLflow |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    rows = [ours] + ([theirs] if isinstance(theirs, Result) else [])
    for r in rows:
        p50 = statistics.median(r.latencies_ms)
        p95 = statistics.quantiles(r.latencies_ms, n=20)[-1] if len(r.latencies_ms) >= 20 else max(r.latencies_ms)
        ratio = f"{r.rate / theirs.rate:.1f}x" if isinstance(theirs, Result) else "n/a"
        print(f"| {r.name} | {r.values:,} | {r.stored:,} | {r.seconds:.2f} | {r.rate:,.0f} | {p50:.1f} | {p95:.1f} "
              f"| {ratio} |")
    if not isinstance(theirs, Result):
        print(f"\nMLflow: {theirs}")
    for r in rows:
        if r.stored != r.values:
            print(f"WARNING: {r.name} stored {r.stored:,} of {r.values:,} values")
    target = ours.rate >= 20_000 and (not isinstance(theirs, Result) or ours.rate >= 10 * theirs.rate)
    print(f"\ntarget >= 20,000 values/s and >= 10x MLflow: {'met' if target else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
