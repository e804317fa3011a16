"""``manage.py runstack [--demo] [--host 127.0.0.1] [--port 8000]``: the whole control plane, one command.

What ``make run`` does: migrate, create the demo user and team (printing the credentials), start
the ASGI server (daphne), a Celery worker and Celery beat as child processes with their output
prefixed, wait until the web server answers, optionally create and launch the demo runs (``cot-demo``
and ``cpu-demo``), then wait. Ctrl-C (SIGINT) or SIGTERM stops it all: the training jobs this stack's worker started are
cancelled first (while the server can still take their last events), then beat, worker and web.

Without ``DATABASE_URL``/``REDIS_URL`` everything is embedded (SQLite files and a SQLite Celery
broker under ``var/``); with them, the same command uses PostgreSQL and Redis.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from worker.celery_app import prepare_broker
from worker.supervisor import ChildExited, Supervisor, beat_command, web_command, worker_command

DEMO_USER = "demo"
DEMO_TEAM = "demo"
# What `--demo` launches, in this order: cot-demo shows FIPO growing a chain of thought (its warm start
# takes a few minutes before RL begins); cpu-demo shows reward climbing within a minute.
DEMO_PRESETS = {"cot-demo": "watch responses grow into chains of thought and Pass@1 rise",
                "cpu-demo": "one-digit arithmetic: reward climbs within a minute"}


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def client_host(host: str) -> str:
    """The address clients on this machine use for a bind address (0.0.0.0 is not connectable)."""
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def child_env(server_url: str) -> dict[str, str]:
    """The children's environment: ours, unbuffered, and pointing trainers at this server."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")
    if not os.environ.get("FIPO_SERVER_URL"):
        env["FIPO_SERVER_URL"] = server_url
    return env


class Command(BaseCommand):
    help = "Run the web server, a Celery worker and beat as child processes (and a demo run with --demo)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address daphne binds (default 127.0.0.1)")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--demo", action="store_true", help=f"create and launch the demo runs ({', '.join(DEMO_PRESETS)})")
        parser.add_argument(
            "--password", default=None,
            help="demo user's password (default: 'demo' on a loopback address, a random one otherwise)",
        )
        parser.add_argument("--no-beat", action="store_true", help="do not start Celery beat")
        parser.add_argument("--concurrency", type=int, default=4, help="Celery worker threads")
        parser.add_argument("--stop-timeout", type=float, default=20.0,
                            help="seconds each child gets to stop before SIGKILL")

    def handle(self, *args: Any, **opts: Any) -> None:
        host, port = opts["host"], opts["port"]
        base_url = f"http://{client_host(host)}:{port}"
        password = opts["password"] or ("demo" if is_loopback(host) else secrets.token_urlsafe(12))

        self.stdout.write(f"runstack: database {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}, "
                          f"broker {settings.CELERY_BROKER_URL.split(':', 1)[0]}, "
                          f"channel layer {settings.CHANNEL_LAYERS['default']['BACKEND'].rsplit('.', 1)[-1]}")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("bootstrap", username=DEMO_USER, password=password, team=DEMO_TEAM, role="owner",
                     stdout=self.stdout)
        prepare_broker()  # before the children start: no race on a brand-new embedded broker

        stop = threading.Event()
        received: list[int] = []

        def on_signal(signum: int, _frame: object) -> None:
            received.append(signum)
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        supervisor = Supervisor(self.stdout, stop_timeout_s=opts["stop_timeout"])
        env = child_env(base_url)
        failed: str | None = None
        try:
            access_log = Path(settings.VAR_DIR) / "web-access.log"
            supervisor.start("web", web_command(host, port, access_log=access_log), env=env)
            supervisor.start("worker", worker_command(concurrency=opts["concurrency"]), env=env)
            if not opts["no_beat"]:
                supervisor.start("beat", beat_command(), env=env)
            waited = supervisor.wait_http(f"{base_url}/admin/login/", child="web", timeout_s=90, give_up=stop.is_set)
            if not stop.is_set():
                self._banner(base_url, password, waited)
            if opts["demo"] and not stop.is_set():
                self._launch_demo(base_url)
            while not stop.wait(0.5):
                if (ended := supervisor.exited()) is not None:
                    failed = f"{ended[0]} exited unexpectedly with code {ended[1]}"
                    break
        except (ChildExited, TimeoutError) as exc:
            failed = str(exc)
        finally:
            reason = failed or (f"received {signal.Signals(received[0]).name}" if received else "stopping")
            self.stdout.write(f"runstack: {reason}; stopping the stack")
            self._cancel_jobs(supervisor)
            codes = supervisor.stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            self.stdout.write(f"runstack: stopped ({', '.join(f'{n} {c}' for n, c in codes.items())})")
        if failed:
            raise CommandError(failed)

    # --------------------------------------------------------------------------------- steps
    def _banner(self, base_url: str, password: str, waited: float) -> None:
        self.stdout.write(self.style.SUCCESS(
            f"\n  FIPO control plane is up ({waited:.1f}s): {base_url}/\n"
            f"  log in as  {DEMO_USER} / {password}   (team {DEMO_TEAM!r})\n"
            f"  API        {base_url}/api/v1/   schema {base_url}/api/v1/schema/\n"
            f"  data       {settings.VAR_DIR} (requests logged to web-access.log)\n"
            f"  stop with Ctrl-C\n"
        ))
        sys.stdout.flush()

    def _launch_demo(self, base_url: str) -> None:
        """Create the demo runs (``DEMO_PRESETS``) as the demo user and launch them, through the run services."""
        from webapp.ops.demo import launch_demo_run

        for preset, what in DEMO_PRESETS.items():
            run_id = launch_demo_run(username=DEMO_USER, team=DEMO_TEAM, preset=preset)
            self.stdout.write(self.style.SUCCESS(
                f"  demo run {run_id} launched: {base_url}/runs/{run_id}/  ({preset}: {what})\n"))

    def _cancel_jobs(self, supervisor: Supervisor) -> None:
        """Stop the training jobs this stack's worker started, so none outlives the stack."""
        worker = supervisor.children.get("worker")
        if worker is None:
            return
        from webapp.ops.demo import cancel_jobs_started_by

        try:
            for line in cancel_jobs_started_by(worker.pid):
                self.stdout.write(f"runstack: {line}")
        except Exception as exc:  # never let cleanup of jobs prevent stopping the processes
            self.stderr.write(f"runstack: could not cancel running jobs: {exc}")
