"""The ``ray`` launcher: a run becomes a Ray job, submitted and watched through the Ray Jobs REST API.

Why REST and not ``ray.job_submission``: the web and Celery processes must not need a Ray install
(and Ray's client pins protobuf/grpc versions the control plane does not want). Four calls suffice:

    POST /api/jobs/                 submit   {"entrypoint", "submission_id", "runtime_env", "metadata"}
    GET  /api/jobs/<id>             status   PENDING | RUNNING | SUCCEEDED | FAILED | STOPPED
    GET  /api/jobs/<id>/logs        the whole driver log
    POST /api/jobs/<id>/stop        asynchronous stop (the job shows STOPPED about 2 s later)

The run page's log is the job's driver log, read through ``read_log`` on demand.

The handle stored in the run row is the job's URL, ``http://head:8265/api/jobs/fipo-run-42``, so a
restarted worker can poll and cancel jobs it did not submit. ``submission_id`` is derived from the run
id, so a Celery retry re-submits the same id; Ray answers HTTP 500 "already exists", which we treat
as success (the job is there). The runtime env carries the exact config (``FIPO_CONFIG_JSON``), the
control-plane URL and the run token (in the environment only: never on a command line, where ``ps``
shows it); nothing else travels (no ``working_dir`` upload). The deployment's own variables
(``LaunchSpec.env``) and the control plane's are applied after the user's ``env_vars``, so a user
cannot override them.

Which head: the control plane passes the address of a head the deployment configured
(``LaunchSpec.address``, settings ``FIPO_RAY_HEADS``); only the CLI uses ``launcher.ray.address``.

What a head answers is never copied into a message a user sees (such text could come from any
internal service): errors name the head's HTTP status and what was wrong with the answer
("the Ray head answered an unexpected response (HTTP 200, not JSON)"). An unreachable head is
retried with exponential backoff and then fails with a ``LauncherError``: never a silent hang. Log
reads (the run page's log view) make one short attempt, no retries.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import tenacity

from worker.launchers.base import JobState, JobStatus, LauncherError, LaunchSpec, register_launcher
from worker.textio import decode_utf8_head

JOBS_PATH = "/api/jobs/"

# Ray job status -> our launcher state (base.JobState).
_STATE: dict[str, JobState] = {
    "PENDING": "pending",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "STOPPED": "stopped",
}
# Answers worth a retry: the head is restarting or a proxy in front of it is.
_RETRY_STATUS = {502, 503, 504}


def submission_id_for(run_id: str) -> str:
    """Stable Ray submission id of a run: a retried submission hits the same job."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in str(run_id))
    return f"fipo-run-{safe}"


def job_url(address: str, submission_id: str) -> str:
    """The handle: the job's REST URL (address + /api/jobs/ + id)."""
    return f"{address.rstrip('/')}{JOBS_PATH}{submission_id}"


def split_handle(handle: str) -> tuple[str, str]:
    """``http://h:8265/api/jobs/fipo-run-1`` -> (``http://h:8265``, ``fipo-run-1``)."""
    address, sep, sub_id = handle.rpartition(JOBS_PATH)
    if not sep or not address or not sub_id or "/" in sub_id:
        raise LauncherError(f"not a Ray job handle: {handle!r}")
    return address, sub_id


def map_state(ray_status: str) -> JobState:
    """Ray's job status string -> our state; anything new or odd is ``unknown``, never a crash."""
    return _STATE.get(str(ray_status).upper(), "unknown")


# --------------------------------------------------------------------------------- the job itself
def native_entrypoint(run_id: str) -> str:
    """Shell entrypoint of a native ``fipo train`` job.

    The config travels in ``$FIPO_CONFIG_JSON``; the entrypoint writes it next to the job's run
    directory (``<run dir>.config.json``: the run directory itself must hold nothing before the trainer
    claims it for ``$FIPO_RUN_UID``, see ``fipo_engine.rundir``) and hands that file to
    ``python -m fipo_engine.cli train``, which writes the run directory's own ``config.json``.
    ``$FIPO_PYTHON`` picks the interpreter (a venv on the nodes); the run directory is
    ``$FIPO_RUNS_DIR/<run id>`` (default base /tmp/fipo-runs), where the tracking spool keeps every
    event until the control plane has it.
    """
    base = "${FIPO_RUNS_DIR:-/tmp/fipo-runs}"
    run_dir = f"{base}/{shlex.quote(str(run_id))}"
    return (
        f'mkdir -p "{base}" && printf %s "$FIPO_CONFIG_JSON" > "{run_dir}.config.json" && '
        f'exec "${{FIPO_PYTHON:-python3}}" -m fipo_engine.cli train "{run_dir}.config.json" --out "{run_dir}"'
    )  # the trainer reads FIPO_SERVER_URL / FIPO_RUN_ID / FIPO_RUN_TOKEN from its environment


def openrlhf_job(config: Mapping[str, Any]) -> tuple[str, str]:
    """(entrypoint, setup hook) of an OpenRLHF job; the entrypoint is exactly what
    ``fipo openrlhf-command`` prints for this config (imported here: it pulls in the engine)."""
    from fipo_engine.config import validate_config
    from fipo_engine.integrations.openrlhf.command import SETUP_HOOK, openrlhf_command

    return openrlhf_command(validate_config(config)), SETUP_HOOK


def build_submission(spec: LaunchSpec) -> dict[str, Any]:
    """The JSON body of ``POST /api/jobs/`` for a run (pure: tested without a cluster)."""
    ray_cfg = (spec.config.get("launcher") or {}).get("ray") or {}
    engine = ray_cfg.get("engine", "native")
    env_vars: dict[str, str] = {  # the user's first: the deployment's and ours win
        **{str(k): str(v) for k, v in (ray_cfg.get("env_vars") or {}).items()},
        **{str(k): str(v) for k, v in spec.env.items()},
        "FIPO_CONFIG_JSON": json.dumps(spec.config, separators=(",", ":")),
        "FIPO_SERVER_URL": spec.server_url,
        "FIPO_RUN_ID": str(spec.run_id),
        "FIPO_RUN_TOKEN": spec.token,
        **({"FIPO_RUN_UID": spec.run_uid} if spec.run_uid else {}),
    }
    runtime_env: dict[str, Any] = {"env_vars": env_vars}
    if ray_cfg.get("pip"):
        runtime_env["pip"] = list(ray_cfg["pip"])
    if engine == "openrlhf":
        # The hook swaps OpenRLHF's PolicyLoss for the FIPO subclass in every worker of the job.
        entrypoint, runtime_env["worker_process_setup_hook"] = openrlhf_job(spec.config)
    elif engine == "native":
        entrypoint = native_entrypoint(spec.run_id)
    else:
        raise LauncherError(f"unknown launcher.ray.engine {engine!r}; valid: native, openrlhf")
    return {
        "entrypoint": entrypoint,
        "submission_id": submission_id_for(spec.run_id),
        "runtime_env": runtime_env,
        "metadata": {"fipo_run_id": str(spec.run_id), "engine": engine},
    }


# ------------------------------------------------------------------------------- eval jobs
# What one environment string may hold: Linux refuses an exec whose single argument or environment
# string exceeds 128 KiB (MAX_ARG_STRLEN), and the stored benchmark travels in one.
MAX_BENCHMARK_ENV_CHARS = 120_000
BENCHMARK_ENV = "FIPO_BENCHMARK_GZ_B64"


def encode_benchmark(content: bytes) -> str:
    """A benchmark file as it travels to a Ray eval job (``fipo eval --benchmark-env``): gzip + base64.

    Raises ``LauncherError`` when it would not fit one environment string (about 120 KB encoded;
    AIME-sized files are a few KB)."""
    from fipo_engine.eval.report import encode_file

    encoded = encode_file(content)
    if len(encoded) > MAX_BENCHMARK_ENV_CHARS:
        raise LauncherError(f"the benchmark is too large for a Ray eval job ({len(encoded) // 1000} KB compressed, "
                            f"the limit is {MAX_BENCHMARK_ENV_CHARS // 1000} KB): evaluate it with the local launcher "
                            "or with `fipo eval` on the cluster")
    return encoded


def eval_submission(*, key: str, eval_args: list[str], benchmark: bytes | None, env: Mapping[str, str],
                    metadata: Mapping[str, str]) -> dict[str, Any]:
    """The ``POST /api/jobs/`` body of an eval job (pure: tested without a cluster).

    The entrypoint is ``fipo eval <eval_args> --report-lines``: progress, responses and the result come
    back through the driver log (``fipo_engine.eval.report``), so nothing on the node's disk needs to
    be read. A stored benchmark (``benchmark``: its file's bytes) travels in the job's environment,
    like a training run's config; a built-in is named in ``eval_args`` and generated on the node."""
    env_vars = {str(k): str(v) for k, v in env.items()}
    args = [*eval_args, "--report-lines"]
    if benchmark is not None:
        env_vars[BENCHMARK_ENV] = encode_benchmark(benchmark)
        args += ["--benchmark-env", BENCHMARK_ENV]
    command = " ".join(shlex.quote(a) for a in ["-m", "fipo_engine.cli", "eval", *args])
    return {
        "entrypoint": f'exec "${{FIPO_PYTHON:-python3}}" {command}',
        "submission_id": f"fipo-eval-{key}",
        "runtime_env": {"env_vars": env_vars},
        "metadata": {str(k): str(v) for k, v in metadata.items()},
    }


# --------------------------------------------------------------------------------- REST client
class _HeadUnreachable(Exception):
    """One try of a request that is worth another (its message is the reason, shown to the user)."""


@dataclass
class RayJobsClient:
    """A few retried httpx calls against one Ray dashboard; raises ``LauncherError`` with the reason."""

    address: str
    timeout_s: float = 10.0
    attempts: int = 5
    backoff_s: float = 0.5
    sleep: Callable[[float], None] = time.sleep

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        """One call, retried with exponential backoff on transport errors and 502/503/504: up to
        ``attempts`` tries, waiting ``backoff_s``, then twice as long before each next one."""
        url = f"{self.address.rstrip('/')}{path}"

        def once() -> httpx.Response:
            try:
                response = httpx.request(method, url, json=body, timeout=self.timeout_s)
            except httpx.TimeoutException:
                raise _HeadUnreachable("no answer in time") from None
            except httpx.TransportError:
                # not the OS's reason: "refused" vs "timed out" would map the ports of the head's host
                raise _HeadUnreachable("no connection") from None
            if response.status_code in _RETRY_STATUS:
                raise _HeadUnreachable(f"HTTP {response.status_code}")
            return response

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_exponential(multiplier=self.backoff_s, exp_base=2),
            retry=tenacity.retry_if_exception_type(_HeadUnreachable),
            sleep=self.sleep, reraise=True,
        )
        try:
            return retrying(once)
        except _HeadUnreachable as exc:
            raise LauncherError(f"the Ray head could not be reached after {self.attempts} attempts ({exc})") from None

    def submit(self, body: dict[str, Any]) -> str:
        response = self.request("POST", JOBS_PATH, body)
        if response.status_code == 200:
            sub_id = _json_object(response).get("submission_id", body["submission_id"])
            if not isinstance(sub_id, str) or not sub_id or "/" in sub_id or len(sub_id) > 200:
                raise LauncherError(unexpected(response, "no usable submission id"))
            return sub_id
        if response.status_code == 500 and "already exists" in response.text[:100_000]:
            return body["submission_id"]  # a retried submission: the job is already there
        raise LauncherError(f"the Ray head refused the job (HTTP {response.status_code})")

    def info(self, submission_id: str) -> dict[str, Any] | None:
        response = self.request("GET", f"{JOBS_PATH}{submission_id}")
        if response.status_code == 404:
            return None
        _raise_for(response, "status")
        return _json_object(response)

    def logs(self, submission_id: str) -> str:
        response = self.request("GET", f"{JOBS_PATH}{submission_id}/logs")
        if response.status_code == 404:
            return ""
        _raise_for(response, "logs")
        logs = _json_object(response).get("logs", "")
        if not isinstance(logs, str):
            raise LauncherError(unexpected(response, "no log text"))
        return logs

    def stop(self, submission_id: str) -> bool:
        response = self.request("POST", f"{JOBS_PATH}{submission_id}/stop")
        if response.status_code == 404:
            return False
        _raise_for(response, "stop")
        return bool(_json_object(response).get("stopped", False))


def unexpected(response: httpx.Response, what: str) -> str:
    """The user-visible description of a bad answer: its status and what was wrong, never its text."""
    return f"the Ray head answered an unexpected response (HTTP {response.status_code}, {what})"


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The answer's JSON object, or a ``LauncherError`` saying it was not one."""
    try:
        data = response.json()
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        raise LauncherError(unexpected(response, "not JSON")) from None
    if not isinstance(data, dict):
        raise LauncherError(unexpected(response, "not a JSON object"))
    return data


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code != 200:
        raise LauncherError(f"the Ray job {what} request failed (HTTP {response.status_code})")


def status_from_info(info: dict[str, Any] | None) -> JobStatus:
    """A Ray job info dict -> ``JobStatus`` (message = Ray's message, exit code when Ray knows it)."""
    if info is None:
        return JobStatus("unknown", "the Ray head does not know this job (head restarted?)")
    state = map_state(info.get("status", ""))
    # Ray's own message for the job (e.g. "Job entrypoint command failed with exit code 1"): shown to
    # the run's team, so only a bounded, single-paragraph excerpt of it.
    message = str(info.get("message") or "")[:500]
    if state == "unknown":
        message = "the Ray head reported a job status this control plane does not know"
    code = info.get("driver_exit_code")
    return JobStatus(state, message, int(code) if isinstance(code, int) else None)


# --------------------------------------------------------------------------------- the launcher
class RayLauncher:
    """``launcher.backend = ray``: see the module docstring."""

    name = "ray"

    def __init__(self, *, attempts: int = 5, backoff_s: float = 0.5, timeout_s: float = 10.0,
                 stop_poll_s: float = 0.5, log_timeout_s: float = 3.0) -> None:
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.stop_poll_s = stop_poll_s
        self.log_timeout_s = log_timeout_s

    def client(self, address: str) -> RayJobsClient:
        return RayJobsClient(address, timeout_s=self.timeout_s, attempts=self.attempts, backoff_s=self.backoff_s)

    def start(self, spec: LaunchSpec) -> str:
        address = spec.address or ((spec.config.get("launcher") or {}).get("ray") or {}).get(
            "address", "http://127.0.0.1:8265")
        return self.submit(address, build_submission(spec))

    def submit(self, address: str, body: dict[str, Any]) -> str:
        """Submit a prepared job body (``build_submission``, ``eval_submission``); its handle."""
        return job_url(address, self.client(address).submit(body))

    def poll(self, handle: str) -> JobStatus:
        address, sub_id = split_handle(handle)
        return status_from_info(self.client(address).info(sub_id))

    def cancel(self, handle: str, *, grace_s: float = 10.0) -> JobStatus:
        """Ask Ray to stop the job, then poll until it reports a final state (or ``grace_s`` passes)."""
        address, sub_id = split_handle(handle)
        client = self.client(address)
        client.stop(sub_id)
        deadline = time.monotonic() + max(grace_s, 0.0)
        while True:
            status = status_from_info(client.info(sub_id))
            if status.state in ("stopped", "succeeded", "failed") or status.state == "unknown":
                return status
            if time.monotonic() >= deadline:
                return JobStatus(status.state, f"Ray has not confirmed the stop after {grace_s:.0f} s")
            time.sleep(self.stop_poll_s)

    def read_log(self, handle: str, spec_log_path: Path, offset: int = 0, max_bytes: int | None = None
                 ) -> tuple[str, int]:
        """Driver-log text from byte ``offset`` (all of it by default), never splitting a UTF-8 character.

        Ray serves only the whole log, so we slice it here; nothing is written (the web process
        calls this for the run page's log view: one attempt with a short timeout, so a slow head
        costs a page at most ``log_timeout_s``). ``spec_log_path`` is unused: the log lives on the head.
        """
        address, sub_id = split_handle(handle)
        client = RayJobsClient(address, timeout_s=self.log_timeout_s, attempts=1)
        data = client.logs(sub_id).encode()
        if offset > len(data):  # the head restarted and its log began again
            offset = 0
        chunk = data[offset:] if max_bytes is None else data[offset: offset + max_bytes]
        text, consumed = decode_utf8_head(chunk)
        return text, offset + consumed


register_launcher(RayLauncher())
