"""The GPU-node install resolves (docs/ray-cluster.md): OpenRLHF 0.11.2 with its pins, plus
``requirements/openrlhf-node.txt``, and this package with ``--no-deps``.

The dry run resolves OpenRLHF's own Requires-Dist (read from its wheel's METADATA, the ``vllm`` extra
included) together with our node requirements, against the package index. flash-attn 2.8.3 is left
out of the dry run only: it is an sdist whose metadata build needs CUDA (``CUDA_HOME``), so pip cannot
even read its requirements on a CPU machine; its pin is checked from the METADATA instead.
Measured: about 30 s on a 2-core machine (pip fetches ~240 packages' metadata), hence ``slow``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.engine.test_openrlhf_wheel import wheel_path

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


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_documented_node_install_resolves(tmp_path: Path) -> None:
    reqs = [str(r) for r in openrlhf_requirements() if r.name != "flash-attn"]
    reqs += [str(r) for r in node_requirements()]
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--report", str(report), *reqs], capture_output=True, text=True, timeout=280)
    if proc.returncode != 0:
        err = proc.stderr
        if any(s in err for s in ("Failed to establish", "Temporary failure", "Network is unreachable",
                                  "Could not fetch URL", "ConnectTimeout", "Name or service not known")):
            pytest.skip(f"package index unreachable: {err.strip()[-300:]}")
        pytest.fail(f"the node install does not resolve:\n{err[-3000:]}")
    resolved = {canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert resolved["transformers"] == "5.15.0" and resolved["ray"] == "2.55.0"
    assert resolved["vllm"] == "0.29.0" and resolved["deepspeed"] == "0.19.6"
    assert resolved["torch"].split("+")[0] == "2.13.0"
    for req in node_requirements():
        version = resolved[canonicalize_name(req.name)]
        assert req.specifier.contains(version, prereleases=True), (req, version)
