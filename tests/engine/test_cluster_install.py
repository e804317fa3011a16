"""The GPU-node install resolves (docs/ray-cluster.md): OpenRLHF 0.11.2 with its pins, plus
``requirements/openrlhf-node.txt``, and this package with ``--no-deps``.

The dry run resolves OpenRLHF's own Requires-Dist (read from its wheel's METADATA, the ``vllm`` extra
included) together with our node requirements, against the package index. flash-attn 2.8.3 is left
out of the dry run only: it is an sdist whose metadata build needs CUDA (``CUDA_HOME``), so pip cannot
even read its requirements on a CPU machine; its pin is checked from the METADATA instead.
Cost: pip downloads the wheels whose metadata the index does not serve separately (vLLM alone is
316 MB): 30 s with a warm pip cache, 3-5 min cold on a loaded 2-core machine. So a green resolution is
remembered in ``~/.cache/fipo-test/`` under a hash of its inputs (OpenRLHF's requirements and ours) for
7 days: a changed requirement file always resolves afresh, and ``FIPO_FRESH_RESOLVE=1`` forces it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.engine.test_openrlhf_wheel import CACHE, wheel_path

ROOT = Path(__file__).resolve().parents[2]
NODE_REQUIREMENTS = ROOT / "requirements" / "openrlhf-node.txt"
OPENRLHF_PINNED = {"transformers", "tokenizers", "torch", "ray", "vllm", "deepspeed", "flash-attn"}


def openrlhf_requirements() -> list[Requirement]:
    """Requires-Dist of the openrlhf 0.11.2 wheel, with the ``vllm`` extra's requirement, markers dropped."""
    with zipfile.ZipFile(wheel_path()) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(name).decode()
    out = []
    for line in metadata.splitlines():
        if line.startswith("Requires-Dist: "):
            req = Requirement(line.removeprefix("Requires-Dist: "))
            if req.marker is None or req.marker.evaluate({"extra": "vllm"}):
                req.marker = None
                out.append(req)
    return out


def node_requirements() -> list[Requirement]:
    lines = [line.split("#")[0].strip() for line in NODE_REQUIREMENTS.read_text().splitlines()]
    return [Requirement(line) for line in lines if line]


def test_no_extra_of_ours_tries_to_hold_openrlhf() -> None:
    """``pip install '.[cluster]'`` had no solution (openrlhf pins transformers==5.15.0, we need >=5.24)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    assert not [r for reqs in extras.values() for r in reqs if Requirement(r).name == "openrlhf"]


def test_node_requirements_leave_openrlhfs_pins_alone() -> None:
    pins = {r.name: r for r in openrlhf_requirements()}
    assert str(pins["transformers"].specifier) == "==5.15.0" and str(pins["flash-attn"].specifier) == "==2.8.3"
    assert str(pins["vllm"].specifier) == "==0.29.0" and str(pins["ray"].specifier) == "==2.55.0"
    assert not {r.name for r in node_requirements()} & OPENRLHF_PINNED
    docs = (ROOT / "docs" / "ray-cluster.md").read_text()
    assert "pip install 'openrlhf[vllm]==0.11.2' -r requirements/openrlhf-node.txt" in docs
    assert "pip install --no-deps ." in docs


def resolve(reqs: list[str], workdir: Path) -> dict[str, str]:
    """``pip install --dry-run`` of ``reqs`` against the index: {canonical name: version}."""
    report = workdir / "report.json"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--report", str(report), *reqs], capture_output=True, text=True, timeout=580)
    if proc.returncode != 0:
        err = proc.stderr
        if any(s in err for s in ("Failed to establish", "Temporary failure", "Network is unreachable",
                                  "Could not fetch URL", "ConnectTimeout", "Name or service not known")):
            pytest.skip(f"package index unreachable: {err.strip()[-300:]}")
        pytest.fail(f"the node install does not resolve:\n{err[-3000:]}")
    return {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
            for item in json.loads(report.read_text())["install"]}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_documented_node_install_resolves(tmp_path: Path) -> None:
    reqs = [str(r) for r in openrlhf_requirements() if r.name != "flash-attn"]
    reqs += [str(r) for r in node_requirements()]
    key = hashlib.sha256("\n".join(sorted(reqs)).encode()).hexdigest()[:16]
    remembered = CACHE / f"node-resolve-{key}.json"
    fresh = os.environ.get("FIPO_FRESH_RESOLVE") == "1" or not remembered.exists() or (
        time.time() - remembered.stat().st_mtime > 7 * 86400)
    resolved = resolve(reqs, tmp_path) if fresh else json.loads(remembered.read_text())
    assert resolved["transformers"] == "5.15.0" and resolved["ray"] == "2.55.0"
    assert resolved["vllm"] == "0.29.0" and resolved["deepspeed"] == "0.19.6"
    assert resolved["torch"].split("+")[0] == "2.13.0"
    for req in node_requirements():
        version = resolved[canonicalize_name(req.name)]
        assert req.specifier.contains(version, prereleases=True), (req, version)
    if fresh:
        remembered.write_text(json.dumps(resolved, indent=1, sort_keys=True))
