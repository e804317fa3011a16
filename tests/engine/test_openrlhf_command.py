"""`fipo openrlhf-command`: every preset's command parses with OpenRLHF 0.11.2's own argument parser.

``openrlhf/cli/train_ppo_ray.py`` builds its parser inside ``if __name__ == "__main__":`` and then
validates the arguments (its asserts) before calling ``train(args)``. We run that file as
``__main__`` with Ray and the GPU-only OpenRLHF modules stubbed (inside the test only), capture the
parsed namespace from ``hierarchize`` (OpenRLHF's real one), and stop at the first Ray call in
``train``: so both the parser and OpenRLHF's own validation accept the command.
"""

from __future__ import annotations

import importlib.util
import runpy
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import fipo_engine.integrations.openrlhf.reward_func as reward_module
from fipo_engine.cli import main as fipo_main
from fipo_engine.config import apply_overrides, preset, preset_names
from fipo_engine.integrations.openrlhf.command import (
    REWARD_FILE_EXPR,
    RUN_DIR_EXPR,
    command_notes,
    openrlhf_argv,
    openrlhf_command,
    optimizer_steps,
    warmup_ratio,
)
from tests.engine.test_openrlhf_wheel import openrlhf_root, package, stubbed_modules  # noqa: F401

REWARD_FILE = reward_module.__file__


class _ReachedTrain(Exception):
    """Raised by the stubbed ``ray.is_initialized``: parsing and validation are over."""


def parse_with_openrlhf(root: Path, argv: list[str]) -> SimpleNamespace:
    """Run OpenRLHF's train_ppo_ray.py as __main__ on ``argv``; return its hierarchized args."""
    pkg = root / "openrlhf"
    spec = importlib.util.spec_from_file_location("_openrlhf_config", pkg / "utils" / "config.py")
    real_config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(real_config)
    captured: dict[str, SimpleNamespace] = {}

    def hierarchize(args):
        captured["args"] = real_config.hierarchize(args)
        return captured["args"]

    def stop(*_a, **_k):
        raise _ReachedTrain

    def unused(*_a, **_k):
        raise AssertionError("train() went past ray.is_initialized()")

    stubs = {
        "ray": package("ray", is_initialized=stop, init=unused, get=unused),
        "ray.util": package("ray.util"),
        "ray.util.placement_group": package("ray.util.placement_group", placement_group=unused),
        "openrlhf": package("openrlhf", pkg),
        "openrlhf.trainer": package("openrlhf.trainer", pkg / "trainer"),
        "openrlhf.trainer.ray": package("openrlhf.trainer.ray", create_vllm_engines=unused),
        "openrlhf.trainer.ray.launcher": package("openrlhf.trainer.ray.launcher", RayActorGroup=unused,
                                                 ReferenceModelActor=unused, RewardModelActor=unused),
        "openrlhf.trainer.ray.ppo_actor": package("openrlhf.trainer.ray.ppo_actor", PolicyModelActor=unused),
        "openrlhf.trainer.ray.ppo_critic": package("openrlhf.trainer.ray.ppo_critic", CriticModelActor=unused),
        "openrlhf.utils": package("openrlhf.utils", pkg / "utils", get_strategy=unused),
        "openrlhf.utils.config": package("openrlhf.utils.config", hierarchize=hierarchize),
    }
    saved_argv = sys.argv
    sys.argv = ["train_ppo_ray.py", *argv]
    try:
        with stubbed_modules(stubs), pytest.raises(_ReachedTrain):
            runpy.run_path(str(pkg / "cli" / "train_ppo_ray.py"), run_name="__main__")
    finally:
        sys.argv = saved_argv
    return captured["args"]


def flags_of(command: str) -> list[str]:
    """The argv OpenRLHF sees: the shell words of the command after ``python3 -m <module>``."""
    words = shlex.split(command)
    assert words[:3] == ["python3", "-m", "openrlhf.cli.train_ppo_ray"]
    return words[3:]


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_parses_with_openrlhfs_parser(openrlhf_root: Path, name: str) -> None:  # noqa: F811
    cfg = preset(name)
    args = parse_with_openrlhf(openrlhf_root, flags_of(openrlhf_command(cfg, reward_file=REWARD_FILE)))
    assert args.reward.remote_url == [REWARD_FILE]
    assert args.rollout.n_samples_per_prompt == cfg.rollout.n
    assert args.actor.eps_clip_low_high == [cfg.algorithm.loss.clip_ratio_low, cfg.algorithm.loss.clip_ratio_high]


def test_fipo_32b_recipe_values(openrlhf_root: Path) -> None:  # noqa: F811
    args = parse_with_openrlhf(openrlhf_root, flags_of(openrlhf_command(preset("fipo-32b"), reward_file=REWARD_FILE)))
    expected = {
        "algo.advantage.estimator": "group_norm", "rollout.n_samples_per_prompt": 16, "rollout.batch_size": 512,
        "train.batch_size": 1024, "actor.eps_clip_low_high": [0.2, 0.28], "actor.dual_clip": 10.0,
        "actor.loss_agg_mode": "token-mean", "algo.kl.init_coef": 0.0, "algo.kl.use_loss": False,
        "actor.entropy_coef": None, "reward.overlong_buffer_len": 4096.0, "reward.overlong_penalty_factor": 1.0,
        "algo.dynamic_filtering_enable": True, "algo.dynamic_filtering_range": [0.0, 1.0],
        "rollout.max_new_tokens": 20480, "data.max_len": 2048 + 20480, "actor.adam.lr": 1e-6,
        "actor.lr_scheduler": "constant_with_warmup", "actor.adam.weight_decay": 0.1, "actor.max_norm": 1.0,
        "rollout.temperature": 1.0, "rollout.top_p": 1.0, "train.max_epochs": 1,
        "actor.num_nodes": 16, "actor.num_gpus_per_node": 8, "vllm.tensor_parallel_size": 4, "vllm.num_engines": 32,
        "train.colocate_all": True, "actor.model_name_or_path": "Qwen/Qwen2.5-32B",
        "data.prompt_dataset": "data/dapo-math-17k.parquet", "eval.dataset": "data/aime-2024.parquet",
        "eval.steps": 5, "eval.temperature": 1.0,
    }
    got = {}
    for dotted in expected:
        node = args
        for part in dotted.split("."):
            node = getattr(node, part)
        got[dotted] = list(node) if isinstance(node, tuple | list) else node
    assert got == expected
    # 10 warm-up optimizer steps out of 575 x 8: OpenRLHF's ceil(max_steps * ratio) gives back exactly 10
    max_steps = 575 * 8
    assert optimizer_steps(preset("fipo-32b")) == max_steps
    import math
    assert math.ceil(max_steps * args.actor.lr_warmup_ratio) == 10


def test_entropy_flag_only_when_the_coefficient_is_not_zero(openrlhf_root: Path) -> None:  # noqa: F811
    """0.11.2 computes the full-vocabulary entropy whenever the flag is not None (0 included)."""
    assert "--actor.entropy_coef" not in openrlhf_argv(preset("fipo-32b"))
    cfg = apply_overrides(preset("fipo-32b"), {"algorithm.entropy_coeff": 0.001})
    args = parse_with_openrlhf(openrlhf_root, flags_of(openrlhf_command(cfg, reward_file=REWARD_FILE)))
    assert args.actor.entropy_coef == 0.001


def test_warmup_ratio_never_rounds_up() -> None:
    import math
    for warm in range(1, 60):
        for steps in (97, 1000, 4600, 12345):
            assert math.ceil(steps * warmup_ratio(warm, steps)) == warm


def test_default_reward_file_is_resolved_by_the_shell_on_the_node() -> None:
    command = openrlhf_command(preset("fipo-32b"))
    words = flags_of(command)
    assert words[words.index("--reward.remote_url") + 1] == REWARD_FILE_EXPR[:]
    assert f'"{REWARD_FILE_EXPR}"' in command
    assert openrlhf_argv(preset("fipo-32b"))[3:] == words
    # checkpoints go to the run directory, expanded on the driver node like the reward file
    assert words[words.index("--ckpt.path") + 1] == f"{RUN_DIR_EXPR}/checkpoints"
    assert f'"{RUN_DIR_EXPR}/checkpoints"' in command


def test_notes_name_what_openrlhf_cannot_express() -> None:
    notes = "\n".join(command_notes(preset("fipo-32b")))
    for needle in ("decay_rate=32", "safety_thresh=10.0", "gen_batch_size=2048", "eval_top_p=0.7", "total_steps=575"):
        assert needle in notes
    demo = "\n".join(command_notes(apply_overrides(preset("cpu-demo"), {"rollout.top_k": 5})))
    assert "data.source=reasoning_gym" in demo and "rollout.top_k=5" in demo and "model.source=tiny" in demo


def test_cli_prints_the_command_and_the_ray_submit_form(capsys: pytest.CaptureFixture[str]) -> None:
    assert fipo_main(["openrlhf-command", "fipo-32b", "--reward-file", "/opt/r.py"]) == 0
    printed = capsys.readouterr().out
    assert " ".join(printed.replace("\\\n", " ").split()) == " ".join(
        openrlhf_command(preset("fipo-32b"), reward_file="/opt/r.py").split())
    assert fipo_main(["openrlhf-command", "fipo-7b", "--ray-submit", "--notes"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ray job submit --address http://127.0.0.1:8265 --runtime-env-json ")
    submitted = shlex.split(out)
    assert submitted[-3:-1] == ["sh", "-c"]
    assert shlex.split(submitted[-1])[:3] == ["python3", "-m", "openrlhf.cli.train_ppo_ray"]
    assert "worker_process_setup_hook" in out and "safety_thresh=3.0" in err
    with pytest.raises(SystemExit, match="neither a preset"):
        fipo_main(["openrlhf-command", "nope"])


STUB_PYTHON3 = """#!/bin/sh
# test stand-in for the node's python3: `-c` runs the real interpreter (the reward-file lookup),
# anything else records its argv as JSON and exits 0
if [ "$1" = "-c" ]; then exec "$REAL_PYTHON" "$@"; fi
exec "$REAL_PYTHON" -c 'import json, sys; json.dump(sys.argv[1:], open(sys.argv[1], "w"))' "$ARGV_OUT" "$@"
"""


def run_entrypoint(entrypoint: str, tmp_path: Path) -> list[str]:
    """Run a Ray job entrypoint the way the job supervisor does (``/bin/sh -c``), with a stub python3."""
    import json
    import os
    import subprocess

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    stub = bin_dir / "python3"
    stub.write_text(STUB_PYTHON3)
    stub.chmod(0o755)
    out = tmp_path / "argv.json"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "REAL_PYTHON": sys.executable,
           "ARGV_OUT": str(out), "FIPO_RUNS_DIR": "/shared/runs", "FIPO_RUN_ID": "42"}
    proc = subprocess.run(["/bin/sh", "-c", entrypoint], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    return json.loads(out.read_text())[1:]  # drop the argv.json path


def test_ray_submit_line_runs_on_the_head(tmp_path: Path, monkeypatch, capsys) -> None:
    """The printed line, parsed by the local shell and handed to Ray's real `ray job submit` (its
    entrypoint join), then run by /bin/sh as the job supervisor does; also with list2cmdline (older Ray)."""
    import subprocess as sp

    from click.testing import CliRunner
    from ray.dashboard.modules.job import cli as ray_job_cli

    assert fipo_main(["openrlhf-command", "fipo-7b", "--ray-submit"]) == 0
    line = capsys.readouterr().out.strip()
    words = shlex.split(line)
    assert words[:3] == ["ray", "job", "submit"]
    submitted: dict = {}

    class Client:
        def submit_job(self, **kwargs):
            submitted.update(kwargs)
            return "job-1"

        def get_version(self) -> str:
            return "1"

    monkeypatch.setattr(ray_job_cli, "_get_sdk_client", lambda *a, **k: Client())
    result = CliRunner().invoke(ray_job_cli.submit, [*words[3:words.index("--")], "--no-wait",
                                                     *words[words.index("--"):]])
    assert result.exit_code == 0, result.output
    expected = [*openrlhf_argv(preset("fipo-7b"), reward_file=REWARD_FILE)[1:]]
    expected = [w.replace("${FIPO_RUNS_DIR:-/tmp/fipo-runs}/${FIPO_RUN_ID:-manual}", "/shared/runs/42") for w in expected]
    for entrypoint in (submitted["entrypoint"], sp.list2cmdline(words[words.index("--") + 1:])):
        assert run_entrypoint(entrypoint, tmp_path) == expected


def driver_env_keys(root: Path) -> set[str]:
    """The keys OpenRLHF's own ``train()`` passes to ``ray.init(runtime_env={"env_vars": {...}})``."""
    import ast

    tree = ast.parse((root / "openrlhf" / "cli" / "train_ppo_ray.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "env_vars" and isinstance(value, ast.Dict):
                    return {k.value for k in value.keys}
    raise AssertionError("no ray.init env_vars in train_ppo_ray.py")


def test_env_vars_openrlhfs_driver_sets_are_refused_naming_the_field(openrlhf_root: Path) -> None:  # noqa: F811
    from fipo_engine.config import OPENRLHF_DRIVER_ENV_VARS, ConfigError

    assert driver_env_keys(openrlhf_root) == set(OPENRLHF_DRIVER_ENV_VARS)
    for key in OPENRLHF_DRIVER_ENV_VARS:
        with pytest.raises(ConfigError) as exc:
            apply_overrides(preset("fipo-32b"), {"launcher.ray.env_vars": {key: "1", "FIPO_RUNS_DIR": "/s"}})
        assert [e["path"] for e in exc.value.errors] == [f"launcher.ray.env_vars.{key}"]
        assert "OpenRLHF" in exc.value.errors[0]["message"]
    # the native engine runs no OpenRLHF driver: allowed there
    native = apply_overrides(preset("fipo-32b"), {"launcher.ray.engine": "native",
                                                  "launcher.ray.env_vars": {"NCCL_DEBUG": "INFO"}})
    assert native.launcher.ray.env_vars == {"NCCL_DEBUG": "INFO"}


def test_the_gpu_smoke_runs_parse_with_openrlhfs_parser(openrlhf_root: Path) -> None:  # noqa: F811
    """bench/gpu_smoke.py's OpenRLHF run is checked here, on CPU, before a GPU day spends minutes on it."""
    spec = importlib.util.spec_from_file_location("gpu_smoke", Path(__file__).resolve().parents[2] / "bench" / "gpu_smoke.py")
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    cfg = apply_overrides(preset("smollm2-gsm"), smoke.two_steps("openrlhf", {
        "model.source": "hf", "model.path": "/tmp/smollm2-hf", "data.source": "file", "data.path": "/tmp/a.jsonl",
        "reward.name": "math"}))
    args = parse_with_openrlhf(openrlhf_root, flags_of(openrlhf_command(cfg, reward_file=REWARD_FILE)))
    assert (args.actor.num_gpus_per_node, args.vllm.num_engines, args.rollout.batch_size) == (1, 1, 8)
    assert args.train.batch_size == 16 and args.actor.lr_warmup_ratio == 0.0  # 2 optimizer steps per rollout
    assert not args.algo.dynamic_filtering_enable
    native = apply_overrides(preset("smollm2-gsm"), smoke.two_steps("native", {}))
    assert native.rollout.backend == "vllm" and native.trainer.total_steps == 2
