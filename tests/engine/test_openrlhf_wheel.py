"""OpenRLHF 0.11.2's own source, fetched at test time, never committed.

OpenRLHF cannot be installed on a CPU machine (flash-attn needs CUDA), but its 0.2 MB wheel can be
downloaded without dependencies. It is cached in ``~/.cache/fipo-test/`` and extracted into a temp
dir; tests import single files from it (``openrlhf/models/loss.py``, ``openrlhf/cli/train_ppo_ray.py``)
with the GPU-only imports replaced by stubs, inside the test only. Offline without a cache: skip.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

VERSION = "0.11.2"
CACHE = Path.home() / ".cache" / "fipo-test"


def wheel_path() -> Path:
    """The cached wheel, downloading it once with pip (no dependencies); skip when impossible."""
    CACHE.mkdir(parents=True, exist_ok=True)
    found = sorted(CACHE.glob(f"openrlhf-{VERSION}-*.whl"))
    if not found:
        proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                               f"openrlhf=={VERSION}", "-d", str(CACHE)], capture_output=True, text=True, timeout=120)
        found = sorted(CACHE.glob(f"openrlhf-{VERSION}-*.whl"))
        if proc.returncode != 0 or not found:
            pytest.skip(f"cannot download the openrlhf=={VERSION} wheel (offline?): {proc.stderr.strip()[-300:]}")
    return found[0]


def extract(dest: Path) -> Path:
    """Extract the wheel; return the directory that holds the ``openrlhf`` package."""
    with zipfile.ZipFile(wheel_path()) as zf:
        zf.extractall(dest)
    roots = [p.parent for p in dest.rglob("openrlhf/__init__.py") if p.parent.parent.name != "tests"]
    if not roots:
        pytest.fail("no openrlhf package inside the wheel")
    return min(roots, key=lambda p: len(p.parts)).parent


def package(name: str, path: Path | None = None, **attrs: object) -> types.ModuleType:
    """A stub module; with ``path`` a package whose submodules load from the real directory."""
    mod = types.ModuleType(name)
    if path is not None:
        mod.__path__ = [str(path)]
    mod.__dict__.update(attrs)
    return mod


@contextmanager
def stubbed_modules(stubs: dict[str, types.ModuleType]) -> Iterator[None]:
    """Put ``stubs`` in ``sys.modules`` and take them (and anything imported under them) out afterwards."""
    saved = {name: sys.modules.get(name) for name in stubs}
    before = set(sys.modules)
    sys.modules.update(stubs)
    try:
        yield
    finally:
        for name in set(sys.modules) - before:
            if name.split(".")[0] in {s.split(".")[0] for s in stubs}:
                del sys.modules[name]
        for name, mod in saved.items():
            if mod is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = mod


@pytest.fixture(scope="session")
def openrlhf_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract(tmp_path_factory.mktemp("openrlhf-wheel"))


def load_loss_module(root: Path) -> types.ModuleType:
    """OpenRLHF's real ``openrlhf/models/loss.py``. The package ``__init__`` files (which import
    flash-attn, peft, transformers models) are bypassed, and ``deepspeed`` (imported by
    ``models/utils.py`` but unused by the losses) is an empty stub. The stubs leave ``sys.modules``
    again before this returns; the module object keeps working (its globals hold what it imported)."""
    pkg = root / "openrlhf"
    stubs = {"openrlhf": package("openrlhf", pkg), "openrlhf.models": package("openrlhf.models", pkg / "models")}
    if importlib.util.find_spec("deepspeed") is None:
        stubs["deepspeed"] = package("deepspeed")
    with stubbed_modules(stubs):
        return importlib.import_module("openrlhf.models.loss")


@pytest.fixture(scope="session")
def openrlhf_loss(openrlhf_root: Path) -> types.ModuleType:
    return load_loss_module(openrlhf_root)


def load_experience_module(root: Path) -> types.ModuleType:
    """OpenRLHF's real ``openrlhf/trainer/ppo_utils/experience.py`` (``Experience``,
    ``balance_experiences``, ``split_experience_batch``, ``make_experience_batch``) with the package
    ``__init__`` files bypassed; it needs only torch and ``openrlhf/utils/utils.py`` (torch, transformers)."""
    pkg = root / "openrlhf"
    stubs = {"openrlhf": package("openrlhf", pkg), "openrlhf.utils": package("openrlhf.utils", pkg / "utils"),
             "openrlhf.trainer": package("openrlhf.trainer", pkg / "trainer"),
             "openrlhf.trainer.ppo_utils": package("openrlhf.trainer.ppo_utils", pkg / "trainer" / "ppo_utils")}
    with stubbed_modules(stubs):
        return importlib.import_module("openrlhf.trainer.ppo_utils.experience")


@pytest.fixture(scope="session")
def openrlhf_experience(openrlhf_root: Path) -> types.ModuleType:
    return load_experience_module(openrlhf_root)


def load_samples_generator(root: Path) -> types.ModuleType:
    """OpenRLHF's real ``openrlhf/trainer/ppo_utils/samples_generator.py`` (it turns each vLLM response
    into an ``Experience``) with ``vllm`` and the vLLM engine module stubbed."""
    pkg = root / "openrlhf"
    stubs = {"openrlhf": package("openrlhf", pkg), "openrlhf.utils": package("openrlhf.utils", pkg / "utils"),
             "openrlhf.trainer": package("openrlhf.trainer", pkg / "trainer"),
             "openrlhf.trainer.ppo_utils": package("openrlhf.trainer.ppo_utils", pkg / "trainer" / "ppo_utils"),
             "openrlhf.trainer.ray": package("openrlhf.trainer.ray", pkg / "trainer" / "ray"),
             "openrlhf.trainer.ray.vllm_engine": package("openrlhf.trainer.ray.vllm_engine",
                                                         batch_vllm_engine_call=None),
             "vllm": package("vllm", SamplingParams=object)}
    with stubbed_modules(stubs):
        return importlib.import_module("openrlhf.trainer.ppo_utils.samples_generator")


def test_the_wheel_is_the_pinned_release(openrlhf_root: Path) -> None:
    bases = (openrlhf_root, *list(openrlhf_root.parents)[:2])  # the package sits in <wheel>.data/purelib
    dist = next(d for base in bases for d in base.glob("openrlhf-*.dist-info"))
    assert f"\nVersion: {VERSION}\n" in (dist / "METADATA").read_text()
    assert (openrlhf_root / "openrlhf" / "models" / "loss.py").is_file()
    assert (openrlhf_root / "openrlhf" / "cli" / "train_ppo_ray.py").is_file()


STANDIN_MODELS_INIT = '''"""Test stand-in for openrlhf/models/__init__.py (the real one imports flash-attn and peft)."""
from .loss import PolicyLoss, aggregate_loss
'''
STANDIN_PPO_ACTOR = '''"""Test stand-in for openrlhf/trainer/ray/ppo_actor.py: the same import and the same two methods."""
from openrlhf.models import PolicyLoss


class ActorPPOTrainer:
    tokenizer = None

    def __init__(self):
        self.actor_loss_fn = PolicyLoss(clip_eps_low=0.2, clip_eps_high=0.28, dual_clip=10.0)

    def training_step(self, experience, kl_ctl, step, loss_batch_info=None):
        loss, clip_ratio, ppo_kl, _, _ = self.actor_loss_fn(*experience)
        return {"metrics": {"policy_loss": loss.detach()}, "weights": {"policy_loss": "token"}}

    def ppo_train(self, kl_ctl):
        return {}
'''


def standin_site(root: Path, dest: Path) -> Path:
    """A directory to put on ``sys.path``/``PYTHONPATH`` holding OpenRLHF's real ``models/loss.py`` and
    ``models/utils.py`` under test stand-ins for the package files that need a GPU stack."""
    pkg = dest / "openrlhf"
    for sub in ("models", "trainer/ray"):
        (pkg / sub).mkdir(parents=True, exist_ok=True)
    for name in ("loss.py", "utils.py"):
        (pkg / "models" / name).write_bytes((root / "openrlhf" / "models" / name).read_bytes())
    (pkg / "__init__.py").write_text("")
    (pkg / "models" / "__init__.py").write_text(STANDIN_MODELS_INIT)
    (pkg / "trainer" / "__init__.py").write_text("")
    (pkg / "trainer" / "ray" / "__init__.py").write_text("")
    (pkg / "trainer" / "ray" / "ppo_actor.py").write_text(STANDIN_PPO_ACTOR)
    if importlib.util.find_spec("deepspeed") is None:
        (dest / "deepspeed").mkdir(exist_ok=True)
        (dest / "deepspeed" / "__init__.py").write_text("")
    return dest
