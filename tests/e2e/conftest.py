"""Browser tests against a live server: daphne (ASGI, so websockets work) on a free port, with a
database of its own, driven by Debian's Chromium through Playwright.

The server is started once per session with the same helpers as the worker's stack tests
(``tests/worker/stack.py``): a fresh PostgreSQL database when ``DATABASE_URL`` is set (else SQLite
in a temporary dir), Redis namespaces of its own when ``REDIS_URL`` is set, two users in two teams
(alice in "lab", bob in "other") with API tokens and session cookies. No Celery worker runs: the
tests give runs a run token themselves (``start_run``) and post events as the trainer would.

Chromium: ``/usr/bin/chromium`` (or ``FIPO_CHROMIUM``); the tests skip with the reason when it or
Playwright is missing, and never run ``playwright install``. Screenshots go to
``FIPO_SCREENSHOTS_DIR`` when set (``docs/screenshots`` to refresh the committed ones).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

CHROMIUM = os.environ.get("FIPO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage"]
ROOT = Path(__file__).resolve().parents[2]

# Gives queued runs a run token and moves them to "starting", as the launch task does before it
# starts a job (webapp.runs.services.run_start_job), without starting a job.
_START_SCRIPT = textwrap.dedent("""
    import json, secrets, sys, django
    django.setup()
    from webapp.common.auth import token_hash
    from webapp.runs.models import Run
    from webapp.runs.services import run_transition
    out = {}
    for run_id in map(int, sys.argv[1:]):
        token = secrets.token_urlsafe(32)
        Run.objects.filter(pk=run_id).update(token_hash=token_hash(token))
        run_transition(run_id=run_id, to="starting", reason="browser test harness", expected=frozenset({"queued"}))
        out[run_id] = token
    print("TOKENS " + json.dumps(out))
""")


def browser_skip_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is missing (apt-get install chromium; .ci/run does it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed"
    return None


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


@dataclass
class DashboardServer:
    base_url: str
    env: dict[str, str]
    users: dict[str, dict[str, str]]
    clients: dict[str, httpx.Client] = field(default_factory=dict)
    seqs: dict[int, int] = field(default_factory=dict)
    restart_web: Callable[[], None] = lambda: None

    def api(self, user: str = "alice") -> httpx.Client:
        if user not in self.clients:
            self.clients[user] = httpx.Client(base_url=f"{self.base_url}/api/v1", timeout=60.0,
                                              headers={"Authorization": f"Token {self.users[user]['token']}"})
        return self.clients[user]

    def team_id(self, user: str = "alice") -> int:
        return self.api(user).get("/teams/").json()[0]["id"]

    def create_run(self, name: str, *, user: str = "alice", overrides: dict[str, Any] | None = None,
                   preset: str = "cpu-demo") -> dict[str, Any]:
        r = self.api(user).post("/runs/", json={"name": name, "team": self.team_id(user), "preset": preset,
                                                "overrides": overrides or {}})
        assert r.status_code == 201, r.text
        return r.json()

    def launch(self, run_id: int, user: str = "alice") -> dict[str, Any]:
        r = self.api(user).post(f"/runs/{run_id}/launch")
        assert r.status_code == 202, r.text
        return r.json()

    def start_runs(self, *run_ids: int, user: str = "alice") -> dict[int, str]:
        """Launch the drafts, then issue their run tokens: {run id: token} (status "starting")."""
        for run_id in run_ids:
            self.launch(run_id, user)
        done = subprocess.run([sys.executable, "-c", _START_SCRIPT, *map(str, run_ids)], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=120)
        for line in done.stdout.splitlines():
            if line.startswith("TOKENS "):
                return {int(k): v for k, v in json.loads(line.removeprefix("TOKENS ")).items()}
        raise RuntimeError(f"could not issue run tokens:\n{done.stdout}\n{done.stderr}")

    def post_events(self, run_id: int, token: str, events: list[dict[str, Any]]) -> dict[str, Any]:
        """POST events as the trainer does; ``seq`` is filled in per run when missing."""
        for event in events:
            if "seq" not in event:
                self.seqs[run_id] = self.seqs.get(run_id, 0) + 1
                event["seq"] = self.seqs[run_id]
        r = httpx.post(f"{self.base_url}/api/v1/runs/{run_id}/events", json=events, timeout=60.0,
                       headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert not body.get("rejected"), body
        return body

    def login_cookie(self, user: str = "alice") -> list[dict[str, Any]]:
        return [{"name": "sessionid", "value": self.users[user]["session"], "url": self.base_url}]


@contextmanager
def running_dashboard(tmp: Path, *, tag: str = "browser") -> Iterator[DashboardServer]:
    """daphne on a free port with its own database and two users; stopped and dropped afterwards.
    Also used by bench/browser_*.py."""
    from tests.worker.stack import free_port, make_database, setup_accounts, stack_env
    from worker.supervisor import Supervisor, web_command

    db = make_database(tag)
    port = free_port()
    (tmp / "var").mkdir(parents=True, exist_ok=True)
    env = stack_env(tmp / "var", db, port)
    log_path = tmp / "daphne.log"
    log = open(log_path, "w")  # noqa: SIM115 (closed in finally)
    supervisor = Supervisor(log, stop_timeout_s=3)  # daphne holds open websockets; no need to wait
    server: DashboardServer | None = None
    try:
        users = setup_accounts(env)
        supervisor.start("web", web_command("127.0.0.1", port), env=env, cwd=ROOT)
        base_url = f"http://127.0.0.1:{port}"
        try:
            supervisor.wait_http(f"{base_url}/login/", child="web", timeout_s=90)
        except Exception as exc:
            log.flush()
            raise RuntimeError(f"{exc}\n--- daphne log ---\n{log_path.read_text()[-4000:]}") from exc

        def restart_web() -> None:
            """Stop daphne and start it again on the same port (pages must reconnect and catch up)."""
            supervisor.stop(["web"])
            supervisor.start("web", web_command("127.0.0.1", port), env=env, cwd=ROOT)
            supervisor.wait_http(f"{base_url}/login/", child="web", timeout_s=90)

        server = DashboardServer(base_url, env, users, restart_web=restart_web)
        yield server
    finally:
        if server is not None:
            for client in server.clients.values():
                client.close()
        supervisor.stop()
        log.close()
        db.drop()


@pytest.fixture(scope="session")
def dashboard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardServer]:
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    with running_dashboard(tmp_path_factory.mktemp("dashboard")) as server:
        yield server


# Runs the scenarios post events to, created and given run tokens in one go (one Django process
# instead of one per test): name -> config overrides.
STARTED_RUNS: dict[str, dict[str, Any]] = {
    "live charts": {},
    "long chain of thought": {},
    "compare A": {"trainer.lr": 1e-4},
    "compare B": {"trainer.lr": 3e-4, "rollout.n": 4},
}


@pytest.fixture(scope="session")
def started_runs(dashboard_server: DashboardServer) -> dict[str, tuple[dict[str, Any], str]]:
    """name -> (run detail, run token) for STARTED_RUNS, all in status "starting"."""
    runs = {name: dashboard_server.create_run(name, overrides=o) for name, o in STARTED_RUNS.items()}
    tokens = dashboard_server.start_runs(*(r["id"] for r in runs.values()))
    return {name: (run, tokens[run["id"]]) for name, run in runs.items()}


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    reason = browser_skip_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch_chromium(pw)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any, dashboard_server: DashboardServer) -> Iterator[Any]:
    """A fresh browser context logged in as alice (session cookie), 1280x860 viewport."""
    context = browser.new_context(viewport={"width": 1280, "height": 860}, base_url=dashboard_server.base_url)
    context.add_cookies(dashboard_server.login_cookie("alice"))
    pg = context.new_page()
    pg.set_default_timeout(20_000)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def shoot() -> Any:
    """shoot(page, name): a screenshot into FIPO_SCREENSHOTS_DIR when set (docs/screenshots/<name>.png)."""
    out = os.environ.get("FIPO_SCREENSHOTS_DIR")

    def take(pg: Any, name: str, *, full_page: bool = False) -> None:
        if out:
            Path(out).mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(Path(out) / f"{name}.png"), full_page=full_page)

    return take
