"""Built-in launchers; importing this package registers them (see ``base.get_launcher``)."""

from worker.launchers import (
    local,  # noqa: F401  (registers the ``local`` launcher)
    ray,  # noqa: F401  (registers the ``ray`` launcher: Ray Jobs REST)
)
from worker.launchers.base import JobStatus, Launcher, LauncherError, LaunchSpec, get_launcher, launcher_names

__all__ = ["JobStatus", "LaunchSpec", "Launcher", "LauncherError", "get_launcher", "launcher_names"]
