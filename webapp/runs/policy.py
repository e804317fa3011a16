"""What a run config may ask of a shared deployment (docs/control-plane.md "Security").

A team member writes the config; the worker and the cluster execute it. So everything in it that
reaches outside the run is checked against what the deployment configured in settings:

* paths (``data.path``, ``data.eval_path``, ``model.path``) resolve (``realpath``) inside the team's
  data roots (``FIPO_DATA_ROOTS``) or a checkpoint directory of one of the team's own runs; a relative
  path names a file in the job's own directory and may not climb out of it (``..``);
* the Ray cluster is picked by name (``launcher.ray.head``) from ``FIPO_RAY_HEADS``; an address is never
  taken from a user;
* job environment variables match ``FIPO_JOB_ENV_ALLOW`` and never ``FIPO_*``, ``LD_*``, ``PYTHON*``;
* pip requirements are package specifiers whose name matches ``FIPO_JOB_PIP_ALLOW``: no URLs, paths
  or options.

The checks run when a run is created or cloned (a 400 naming each field) and again at launch (the
settings may have changed since). Error messages depend only on the value and the settings, never on
whether a file exists, so they cannot be used to probe the worker's disk. The ``fipo`` CLI, run by a
user on their own machine, is not restricted: this module belongs to the web path only.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from django.conf import settings

from fipo_engine.config import RayLauncherConfig, RunConfig
from webapp.common.errors import ValidationFailed

FORBIDDEN_ENV_PREFIXES = ("FIPO_", "LD_", "PYTHON")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# name[extras] followed by optional comma-separated version clauses: nothing else (no URL, no option).
_VERSION = r"(?:==|!=|<=|>=|~=|<|>)\s*[A-Za-z0-9.*+!]+"
_PIP_SPEC = re.compile(
    rf"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]{{0,99}}))(?:\[[A-Za-z0-9._,-]{{1,100}}\])?"
    rf"\s*(?:{_VERSION}(?:\s*,\s*{_VERSION})*)?$"
)
_DEFAULT_ADDRESS = RayLauncherConfig.model_fields["address"].default

Errors = list[dict[str, str]]
_RUN_DIR_NAME = re.compile(r"^([0-9]{1,18})(?:-[0-9a-f]{1,32})?$")


# ------------------------------------------------------------------------------------- paths
def team_roots(team_name: str) -> list[str]:
    """The data roots of a team: its own entry in ``FIPO_DATA_ROOTS`` plus the ``"*"`` entry."""
    roots: dict[str, list[str]] = settings.FIPO_DATA_ROOTS
    return [*roots.get(team_name, []), *roots.get("*", [])]


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def run_dir_owner(real: str) -> int | None:
    """The run id whose directory (``FIPO_RUNS_DIR/<id>/...``) holds ``real``, or None."""
    runs_dir = os.path.realpath(settings.FIPO_RUNS_DIR)
    if not _inside(real, runs_dir) or real == runs_dir:
        return None
    first = Path(real).relative_to(runs_dir).parts[0]
    match = _RUN_DIR_NAME.match(first)  # "<id>" (older runs) or "<id>-<uid prefix>" (run_dir_name)
    return int(match.group(1)) if match else None


def path_error(value: str, *, roots: Iterable[str], owns_run: Callable[[int], bool]) -> str | None:
    """Why ``value`` may not be used as a path of a run of this team (None: it may).

    ``owns_run(run_id)`` says whether a run belongs to the team (checkpoints of other teams' runs are
    refused with the same message as any other outside path)."""
    roots = list(roots)
    outside = ("must be a relative path inside the job's directory, or inside this team's data roots ("
               + (", ".join(roots) if roots else "none are configured") + ") or a checkpoint of one of its runs")
    if not value or "\x00" in value or len(value) > 4096:
        return "must be a non-empty path of at most 4096 characters"
    if "://" in value or value.startswith("~"):
        return outside
    if ".." in Path(value).parts:
        return "must not contain '..'"
    if not os.path.isabs(value):
        return None  # resolved against the job's own working directory, which it cannot leave
    real = os.path.realpath(value)
    if any(_inside(real, root) for root in roots):
        return None
    owner = run_dir_owner(real)
    if owner is not None and owns_run(owner):
        return None
    return outside


def _path_errors(cfg: RunConfig, *, team_name: str, owns_run: Callable[[int], bool]) -> Errors:
    roots = team_roots(team_name)
    errors: Errors = []
    for field, value in (("data.path", cfg.data.path), ("data.eval_path", cfg.data.eval_path),
                         ("model.path", cfg.model.path)):
        if value is None:
            continue
        message = path_error(value, roots=roots, owns_run=owns_run)
        if message:
            errors.append({"path": field, "message": message})
    return errors


# -------------------------------------------------------------------------------- launcher
def env_var_error(name: str, allow: Iterable[str]) -> str | None:
    """Why a user may not set the job variable ``name`` (None: allowed)."""
    if not _ENV_NAME.match(name):
        return "not a valid environment variable name"
    if name.upper().startswith(FORBIDDEN_ENV_PREFIXES):
        return f"variables starting with {', '.join(FORBIDDEN_ENV_PREFIXES)} are set by the deployment only"
    if not any(fnmatch.fnmatchcase(name, pattern) for pattern in allow):
        return f"not allowed on this deployment (allowed: {', '.join(allow) or 'none'})"
    return None


def pip_error(spec: str, allow: Iterable[str]) -> str | None:
    """Why a user may not add the pip requirement ``spec`` (None: allowed)."""
    match = _PIP_SPEC.match(spec.strip()) if len(spec) <= 300 else None
    if match is None:
        return "must be a package specifier such as 'name==1.2' (no URLs, paths or options)"
    name = match["name"].lower().replace("_", "-")
    if not any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in allow):
        return f"package {name!r} is not allowed on this deployment (allowed: {', '.join(allow) or 'none'})"
    return None


def _launcher_errors(cfg: RunConfig) -> Errors:
    ray = cfg.launcher.ray
    errors: Errors = []
    heads: dict[str, object] = settings.FIPO_RAY_HEADS
    if ray.address != _DEFAULT_ADDRESS:
        errors.append({"path": "launcher.ray.address",
                       "message": "set by the deployment: choose a Ray head with launcher.ray.head "
                                  f"(one of: {', '.join(heads) or 'none'})"})
    if cfg.launcher.backend == "ray" and ray.head not in heads:
        errors.append({"path": "launcher.ray.head",
                       "message": f"unknown Ray head; this deployment has: {', '.join(heads) or 'none'}"})
    allow_env = list(settings.FIPO_JOB_ENV_ALLOW)
    for name in ray.env_vars:
        message = env_var_error(name, allow_env)
        if message:
            errors.append({"path": f"launcher.ray.env_vars.{name}", "message": message})
    allow_pip = list(settings.FIPO_JOB_PIP_ALLOW)
    for i, spec in enumerate(ray.pip):
        message = pip_error(spec, allow_pip)
        if message:
            errors.append({"path": f"launcher.ray.pip.{i}", "message": message})
    return errors


# ----------------------------------------------------------------------------------- public
def check_run_config(cfg: RunConfig, *, team_id: int, team_name: str) -> None:
    """Raise ``ValidationFailed`` listing every field of ``cfg`` this team may not use here."""
    from webapp.runs.models import Run

    def owns_run(run_id: int) -> bool:
        return 0 < run_id < 2**63 and Run.objects.filter(pk=run_id, team_id=team_id).exists()

    errors = _path_errors(cfg, team_name=team_name, owns_run=owns_run) + _launcher_errors(cfg)
    if errors:
        summary = "; ".join(f"{e['path']}: {e['message']}" for e in errors)
        raise ValidationFailed(f"not allowed on this deployment: {summary}", fields=errors)


def ray_head(name: str) -> tuple[str, dict[str, str]]:
    """(address, deployment variables) of the configured head ``name``; ValidationFailed when unknown."""
    heads: dict[str, dict[str, Any]] = settings.FIPO_RAY_HEADS
    if name not in heads:
        raise ValidationFailed("unknown Ray head", fields=[{"path": "launcher.ray.head", "message": "unknown Ray head"}])
    return str(heads[name]["address"]), dict(heads[name].get("env_vars", {}))
