"""The launcher interface and registry: how a run's training job is started, watched and stopped.

A launcher is stateless between calls: everything needed to find the job again is in the
``handle`` string it returned (a pid, a Ray submission id), which the control plane stores in the
run row. That is what lets a restarted worker keep watching and cancelling jobs it did not start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from fipo_engine.registry import LAUNCHERS, RegistryError

JobState = Literal["pending", "running", "succeeded", "failed", "stopped", "unknown"]


@dataclass(frozen=True)
class LaunchSpec:
    """What a launcher needs to start one run. ``config`` is the run's exact config (JSON-ready).

    ``run_uid`` is the run's deployment-unique id: the job's directory is claimed for it
    (``fipo_engine.rundir``) and the trainer gets it as ``FIPO_RUN_UID``. ``resume`` continues the
    run from its newest checkpoint (``fipo train --resume``) instead of starting it.
    """

    run_id: str
    config: dict[str, Any]
    server_url: str
    token: str
    workdir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    # The Ray head to submit to, chosen by the control plane from its settings (None: the CLI's
    # ``launcher.ray.address``). A user's config never names an address the worker calls.
    address: str | None = None
    run_uid: str | None = None  # the run's uid: its directory belongs to it (fipo_engine/rundir.py)
    resume: bool = False        # continue from the newest checkpoint (Resume on the run page)


@dataclass(frozen=True)
class JobStatus:
    state: JobState
    message: str = ""
    exit_code: int | None = None


class LauncherError(RuntimeError):
    """A launcher could not do what was asked; the message is shown to the user as the reason."""


class Launcher(Protocol):
    name: str
    # True when start() of a LaunchSpec with resume=True continues the run from its newest
    # checkpoint (the run page offers Resume only then). Optional: missing means False.

    def start(self, spec: LaunchSpec) -> str:
        """Start the job and return its handle. Must be idempotent for the same run where possible."""
        ...

    def poll(self, handle: str) -> JobStatus:
        """Current state of the job."""
        ...

    def cancel(self, handle: str, *, grace_s: float = 10.0) -> JobStatus:
        """Stop the job (graceful first, forced after ``grace_s``) and return the final state."""
        ...

    def read_log(self, handle: str, spec_log_path: Path, offset: int = 0, max_bytes: int | None = None
                 ) -> tuple[str, int]:
        """Log text from byte ``offset`` on (at most ``max_bytes`` of it; the launcher's own bound when
        None), and the new offset."""
        ...


# The registry is ``fipo_engine.registry.LAUNCHERS``, the one ``launcher.backend`` is checked against;
# it declares the built-in names, and each launcher module registers its implementation at import.
def register_launcher(launcher: Launcher) -> Launcher:
    """Add ``launcher`` under its ``name`` (the built-ins at import of their module; tests add fakes)."""
    try:
        return LAUNCHERS.register(launcher.name)(launcher)
    except RegistryError as exc:
        raise LauncherError(str(exc)) from None


def get_launcher(name: str) -> Launcher:
    import worker.launchers  # noqa: F401  (imports and registers every built-in launcher)

    try:
        return LAUNCHERS[name]
    except RegistryError as exc:
        raise LauncherError(str(exc)) from None


def launcher_names() -> list[str]:
    import worker.launchers  # noqa: F401

    return LAUNCHERS.names()
