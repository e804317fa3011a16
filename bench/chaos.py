"""Chaos suite: every fault of issue 15 against a real stack, one table per database mode.

    .venv/bin/python bench/chaos.py                     # embedded (SQLite) and services (PostgreSQL + Redis)
    .venv/bin/python bench/chaos.py --modes embedded --web-down 30 --heartbeat 60

Each scenario (``tests/worker/chaos.py``) launches a real ``fipo train`` cpu-demo run (cut to
seconds) through the API of a real stack (daphne, Celery worker, beat), injects one fault and
checks the outcome against the run directory's ``events.jsonl``, the API and the websocket.

The services mode runs its **own** PostgreSQL and Redis (ports 18151/18152, data under /tmp),
because restarting them is one of the faults: the shared servers on this machine are never
touched. The disk-full fault mounts a small tmpfs over the runs directory (needs root); when it
cannot, the row says so. Faults that need a mode's service are marked n/a in the other mode.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.worker import chaos  # noqa: E402
from tests.worker.stack import LiveStack, live_stack  # noqa: E402

PG_PORT, REDIS_PORT = 18151, 18152


# ------------------------------------------------------------------------------ private services
class PrivatePostgres:
    """A throw-away PostgreSQL cluster (initdb as the ``postgres`` user), restartable at will."""

    def __init__(self, port: int = PG_PORT) -> None:
        self.dir, self.port = Path(tempfile.mkdtemp(prefix="fipo-chaos-pg-")), port  # /tmp: traversable
        self.url = f"postgres://postgres@127.0.0.1:{port}/chaos"

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        shutil.chown(self.dir, "postgres", "postgres")
        self.dir.chmod(0o700)
        self._as_postgres("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", "postgres")
        self.start()
        subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-c",
                        "CREATE DATABASE chaos"], check=True, capture_output=True)

    def start(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "-o",
                          f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateRedis:
    def __init__(self, port: int = REDIS_PORT) -> None:
        self.port, self.proc = port, None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                             text=True).stdout.strip() != "PONG":
            if time.monotonic() > deadline:
                raise RuntimeError("private redis-server did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None


# -------------------------------------------------------------------------------------- helpers
def mount_tmpfs(path: Path, size: str) -> bool:
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def step_seconds(stack: LiveStack) -> float:
    """Seconds per training step of the tiny run on this machine now (from the last run's spool)."""
    runs = stack.api().get("/runs/").json()["results"]
    for run in runs:
        detail = stack.run(run["id"])
        if detail["handle"]:
            times = [e["_time"] for e in chaos.spool_events(chaos.workdir_of(detail)) if e["type"] == "metric"]
            if len(times) >= 3:
                gaps = sorted(b - a for a, b in itertools.pairwise(times))
                return max(0.05, gaps[len(gaps) // 2])
    return 0.5


def guarded(fault: str, scenario: Callable[[], chaos.Outcome]) -> chaos.Outcome:
    started = time.monotonic()
    try:
        outcome = scenario()
    except Exception as exc:  # one broken scenario must not hide the others' rows
        traceback.print_exc()
        outcome = chaos.Outcome(fault, "", measured=f"ERROR {type(exc).__name__}: {str(exc)[:300]}")
    print(f"  [{time.monotonic() - started:5.0f} s] {outcome.fault}: {'ok' if outcome.ok else 'NOT OK'} - "
          f"{outcome.measured} {outcome.notes or ''}", flush=True)
    return outcome


def run_mode(mode: str, args: argparse.Namespace, tmp: Path) -> list[chaos.Outcome]:
    """Every scenario on one stack of ``mode`` (embedded or services)."""
    services: tuple[PrivatePostgres, PrivateRedis] | None = None
    saved = {k: os.environ.pop(k, None) for k in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")}
    outcomes: list[chaos.Outcome] = []
    try:
        if mode == "services":
            pg, redis = PrivatePostgres(), PrivateRedis()
            pg.init()
            redis.start()
            services = (pg, redis)
            os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = pg.url, redis.url
        hb = args.heartbeat
        with live_stack(tmp / mode / "stack", tag=f"chaos{mode[:3]}", FIPO_HEARTBEAT_TIMEOUT_S=str(hb),
                        FIPO_REAP_INTERVAL_S=str(args.reap_interval), FIPO_CANCEL_GRACE_S=str(args.grace)) as stack:
            print(f"\n== {mode}: stack up ({'PostgreSQL + Redis, private' if services else 'SQLite, in-memory layer'})",
                  flush=True)
            outcomes.append(guarded("trainer SIGKILL", lambda: chaos.trainer_kill(stack, total_steps=60,
                                                                                   heartbeat_s=hb)))
            per_step = step_seconds(stack)
            steps = int((args.web_down + 40) / per_step) + 10
            print(f"  (a tiny step takes {per_step:.2f} s now: the web-kill run gets {steps} steps)", flush=True)
            outcomes.append(guarded("web SIGKILL", lambda: chaos.web_server_kill(stack, down_s=args.web_down,
                                                                                  total_steps=steps)))
            outcomes.append(guarded("cancel (generation)", lambda: chaos.cancel_mid_run(
                stack, total_steps=60, grace_s=args.grace, label="during generation (long responses)",
                overrides={"rollout.max_new_tokens": 24, "rollout.n": 4})))
            outcomes.append(guarded("cancel (update)", lambda: chaos.cancel_mid_run(
                stack, total_steps=60, grace_s=args.grace, label="during an update (many mini-batches)",
                overrides={"trainer.train_batch_size": 8, "trainer.gen_batch_size": 8,
                           "trainer.ppo_mini_batch_size": 1, "trainer.micro_batch_size": 1})))
            outcomes.append(guarded("worker SIGKILL", lambda: chaos.worker_kill_while_launching(
                stack, heartbeat_s=hb, total_steps=20)))
            if services:
                pg, redis = services
                longer = int((args.service_down + 40) / per_step) + 10
                outcomes.append(guarded("Redis restart", lambda: chaos.service_restart(
                    stack, name="Redis", stop=redis.stop, start=redis.start, down_s=args.service_down,
                    total_steps=longer)))
                outcomes.append(guarded("PostgreSQL restart", lambda: chaos.service_restart(
                    stack, name="PostgreSQL", stop=pg.stop, start=pg.start, down_s=args.service_down,
                    total_steps=longer)))
            outcomes.append(disk_full(stack, hb))
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value
        if services:
            services[1].stop()
            services[0].destroy()
    return outcomes


def disk_full(stack: LiveStack, heartbeat_s: float) -> chaos.Outcome:
    """Mount a small tmpfs over the runs directory (after the other scenarios), then fill it."""
    runs_dir = stack.var_dir / "runs"
    runs_dir.mkdir(exist_ok=True)
    if not mount_tmpfs(runs_dir, "8m"):
        return chaos.Outcome("disk full in the run directory (tmpfs)", "", measured="not run: cannot mount a tmpfs")
    try:
        return guarded("disk full", lambda: chaos.disk_full(stack, runs_dir, total_steps=400, heartbeat_s=heartbeat_s))
    finally:
        subprocess.run(["umount", "-l", str(runs_dir)], capture_output=True)


def load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--modes", default="embedded,services", help="comma-separated: embedded, services")
    parser.add_argument("--web-down", type=float, default=30.0, help="seconds the web server stays dead")
    parser.add_argument("--service-down", type=float, default=10.0, help="seconds Redis / PostgreSQL stay down")
    parser.add_argument("--heartbeat", type=float, default=60.0, help="FIPO_HEARTBEAT_TIMEOUT_S of the stack")
    parser.add_argument("--reap-interval", type=float, default=5.0, help="FIPO_REAP_INTERVAL_S of the stack")
    parser.add_argument("--grace", type=float, default=10.0, help="FIPO_CANCEL_GRACE_S of the stack")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fipo-bench-chaos-"))
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, load average {load()}, "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", flush=True)
    rows: list[tuple[str, chaos.Outcome]] = []
    try:
        for mode in args.modes.split(","):
            rows += [(mode, o) for o in run_mode(mode.strip(), args, tmp)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nchaos suite: heartbeat window {args.heartbeat:.0f} s (reaper every {args.reap_interval:.0f} s), "
          f"cancel grace {args.grace:.0f} s, web down {args.web_down:.0f} s, Redis/PostgreSQL down "
          f"{args.service_down:.0f} s; load average at the end {load()}\n")
    print("| mode | fault | expected | measured | recovery s | lost | dup | verdict |")
    print("|---|---|---|---|---:|---:|---:|---|")
    for mode, o in rows:
        rec = "" if o.recovery_s is None else f"{o.recovery_s:.1f}"
        notes = f" ({'; '.join(o.notes)[:300]})" if o.notes else ""
        print(f"| {mode} | {o.fault} | {o.expected} | {o.measured}{notes} | {rec} | "
              f"{'' if o.lost is None else o.lost} | {'' if o.duplicated is None else o.duplicated} | "
              f"{'ok' if o.ok else 'NOT OK'} |")
    return 0 if all(o.ok for _, o in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
