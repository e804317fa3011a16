"""A real control-plane stack for tests: its own database, daphne, a Celery worker and beat as processes.

The subprocesses cannot see pytest-django's test database (it lives inside the test's transaction
on SQLite, and under a name only the test process knows on PostgreSQL), so a stack gets its own:

* with ``DATABASE_URL`` set (CI): a fresh PostgreSQL database ``<name>_stack_<pid>`` on the same
  server, created here and dropped afterwards; Redis from ``REDIS_URL`` with a queue name, channel
  prefix and cache prefix of its own, so nothing crosses over to other tests;
* without it (embedded mode): SQLite and the SQLite Celery broker under the stack's own ``var`` dir.

The test talks to the stack the way users and trainers do: HTTP with an API token, websockets
with a session cookie. Both are minted by a setup script run against the stack's database.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from worker.supervisor import Supervisor, beat_command, web_command, worker_command

ROOT = Path(__file__).resolve().parents[2]

# Settings of the training runs the stack tests launch: the cpu-demo preset cut to seconds.
TINY_RUN_OVERRIDES: dict[str, Any] = {
    "model.tiny.hidden_size": 32,
    "model.tiny.num_hidden_layers": 1,
    "model.tiny.num_attention_heads": 2,
    "model.tiny.intermediate_size": 64,
    "data.train_size": 32,
    "data.eval_size": 0,
    "rollout.n": 2,
    "rollout.max_new_tokens": 6,
    "rollout.generation_batch_size": 8,
    "reward.overlong_buffer.enable": False,
    "trainer.total_steps": 3,
    "trainer.train_batch_size": 2,
    "trainer.gen_batch_size": 2,
    "trainer.ppo_mini_batch_size": 2,
    "trainer.micro_batch_size": 4,
    "trainer.dynamic_sampling": False,
    "trainer.sft_warmup_steps": 0,
    "trainer.eval_every": 0,
    "trainer.save_every": 0,
    "trainer.log_samples": 1,
    "trainer.device": "cpu",
}

SETUP_SCRIPT = textwrap.dedent("""
    import importlib, json, django
    django.setup()
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.core.management import call_command
    from webapp.accounts.models import User
    from webapp.accounts.services import api_token_create

    call_command("migrate", interactive=False, verbosity=0)
    out = {}
    # victor is a viewer in alice's team: reads everything of "lab", may launch or cancel nothing.
    for username, team, role in (("alice", "lab", "owner"), ("bob", "other", "owner"), ("victor", "lab", "viewer")):
        call_command("bootstrap", username=username, password="pw-" + username, team=team, role=role)
        user = User.objects.get(username=username)
        _, key = api_token_create(user=user, name="stack-test")
        session = importlib.import_module(settings.SESSION_ENGINE).SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        out[username] = {"token": key, "session": session.session_key}
    print("STACK-SETUP " + json.dumps(out))
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------- database
@dataclass
class StackDatabase:
    """Where a stack keeps its data; ``env`` holds the variables that select it."""

    env: dict[str, str]
    drop: Callable[[], None] = lambda: None
    label: str = "sqlite"


def _postgres_admin(url: str) -> tuple[str, str]:
    """(connection URL of the maintenance database, name of the configured database)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "postgres"
    return urlunsplit(parts._replace(path="/postgres")), name


def make_database(tag: str) -> StackDatabase:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return StackDatabase(env={})
    import psycopg

    admin_url, base = _postgres_admin(url)
    name = f"{base}_stack_{tag}_{os.getpid()}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return StackDatabase(env={"DATABASE_URL": urlunsplit(urlsplit(url)._replace(path=f"/{name}"))},
                         drop=drop, label=f"postgresql {name}")


def stack_env(var_dir: Path, db: StackDatabase, port: int, **extra: str) -> dict[str, str]:
    """Environment of every stack process: its database, its var dir, its own Redis namespaces."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    unique = uuid.uuid4().hex[:8]
    env.update(db.env)
    env.update({
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DJANGO_ENV": "development",
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "FIPO_VAR_DIR": str(var_dir),
        "FIPO_SERVER_URL": f"http://127.0.0.1:{port}",
        "CELERY_TASK_ALWAYS_EAGER": "0",
        "CELERY_TASK_DEFAULT_QUEUE": f"stack-{unique}",
        "FIPO_CHANNELS_PREFIX": f"stack-{unique}",
        "FIPO_CACHE_PREFIX": f"stack-{unique}",
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    })
    env.update(extra)
    return env


def setup_accounts(env: dict[str, str]) -> dict[str, dict[str, str]]:
    """Migrate the stack's database and create users (owners of two teams, a viewer), with API tokens and sessions."""
    done = subprocess.run([sys.executable, "-c", SETUP_SCRIPT], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=180)
    for line in done.stdout.splitlines():
        if line.startswith("STACK-SETUP "):
            return json.loads(line.removeprefix("STACK-SETUP "))
    raise RuntimeError(f"stack setup failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


# ------------------------------------------------------------------------------------------ stack
@dataclass
class LiveStack:
    base_url: str
    env: dict[str, str]
    var_dir: Path
    users: dict[str, dict[str, str]]
    supervisor: Supervisor
    log_path: Path
    clients: dict[str, httpx.Client] = field(default_factory=dict)

    def api(self, user: str = "alice") -> httpx.Client:
        if user not in self.clients:
            self.clients[user] = httpx.Client(
                base_url=f"{self.base_url}/api/v1", timeout=30.0,
                headers={"Authorization": f"Token {self.users[user]['token']}"},
            )
        return self.clients[user]

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def team_id(self, user: str = "alice") -> int:
        teams = self.api(user).get("/teams/").json()
        return teams[0]["id"]

    def create_run(self, name: str, overrides: dict[str, Any] | None = None, user: str = "alice") -> dict[str, Any]:
        body = {"name": name, "team": self.team_id(user), "preset": "cpu-demo",
                "overrides": {**TINY_RUN_OVERRIDES, **(overrides or {})}}
        response = self.api(user).post("/runs/", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def launch(self, run_id: int, user: str = "alice") -> dict[str, Any]:
        response = self.api(user).post(f"/runs/{run_id}/launch")
        assert response.status_code == 202, response.text
        return response.json()

    def run(self, run_id: int, user: str = "alice") -> dict[str, Any]:
        response = self.api(user).get(f"/runs/{run_id}/")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_status(self, run_id: int, wanted: set[str], timeout_s: float = 120.0) -> dict[str, Any]:
        """Poll the run until its status is in ``wanted``; fail with the run and the stack log if not."""
        deadline = time.monotonic() + timeout_s
        while True:
            detail = self.run(run_id)
            if detail["status"] in wanted:
                return detail
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"run {run_id} is {detail['status']!r}, not one of {sorted(wanted)} after {timeout_s:.0f}s\n"
                    f"transitions: {detail.get('transitions')}\nlog tail: {detail.get('log_tail', '')[-3000:]}\n"
                    f"--- stack log ---\n{self.log_tail()}"
                )
            time.sleep(0.3)


@contextmanager
def live_stack(tmp_dir: Path, *, tag: str, beat: bool = True, worker: bool = True,
               **env_extra: str) -> Iterator[LiveStack]:
    """Start a whole stack on a free port; stop it and drop its database afterwards.

    ``worker``/``beat`` False leave those processes out (the ingest bench needs the web server only)."""
    db = make_database(tag)
    port = free_port()
    var_dir = tmp_dir / "var"
    var_dir.mkdir(parents=True, exist_ok=True)
    env = stack_env(var_dir, db, port, **env_extra)
    log_path = tmp_dir / "stack.log"
    log = open(log_path, "w")  # noqa: SIM115 (closed in finally)
    supervisor = Supervisor(log, stop_timeout_s=20)
    stack: LiveStack | None = None
    try:
        users = setup_accounts(env)
        supervisor.start("web", web_command("127.0.0.1", port), env=env, cwd=ROOT)
        if worker:
            supervisor.start("worker", worker_command(concurrency=4, name=f"stack-{tag}"), env=env, cwd=ROOT)
        if beat:
            supervisor.start("beat", beat_command(var_dir / "celerybeat-schedule"), env=env, cwd=ROOT)
        base_url = f"http://127.0.0.1:{port}"
        stack = LiveStack(base_url, env, var_dir, users, supervisor, log_path)
        try:
            supervisor.wait_http(f"{base_url}/admin/login/", child="web", timeout_s=90)
        except Exception as exc:
            raise RuntimeError(f"{exc}\n--- stack log ---\n{stack.log_tail()}") from exc
        yield stack
    finally:
        if stack is not None:
            for client in stack.clients.values():
                client.close()
        supervisor.stop()
        log.close()
        db.drop()
