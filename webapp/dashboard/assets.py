"""plotly.js served from the file bundled in the ``plotly`` Python package (no CDN, works offline).

The 4.8 MB file is never copied into the repository. Its URL carries the plotly.js version, so the
browser may cache it for a year (``immutable``); a new plotly package gives a new URL.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from importlib.util import find_spec
from pathlib import Path


@cache
def plotly_js_path() -> Path:
    """Path of ``plotly/package_data/plotly.min.js`` inside the installed plotly package."""
    spec = find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the plotly package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the plotly package")
    return path


@cache
def plotly_js_version() -> str:
    """The plotly.js version from the bundle's banner (``plotly.js v4.1.1``), else a content hash."""
    path = plotly_js_path()
    with path.open("rb") as fh:
        head = fh.read(512).decode("latin-1")
    match = re.search(r"plotly\.js v([0-9][\w.\-]*)", head)
    if match:
        return match.group(1)
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
