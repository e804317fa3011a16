"""A run directory belongs to one run (issue: two databases' run 1 shared ``var/runs/1/``).

The claim (``fipo_engine.rundir``), the trainer's refusal to start in another run's directory, and
checkpoint rotation that only ever deletes the run's own checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fipo_engine.rundir import OWNER_FILE, RunDirConflict, claim_run_dir, read_owner
from fipo_engine.tracking import Spool
from fipo_engine.trainer.checkpoint import list_checkpoints
from fipo_engine.trainer.loop import train
from tests.engine.test_trainer import tiny_config

SHORT = {"trainer.sft_warmup_steps": 0, "trainer.eval_every": 0, "trainer.log_samples": 1}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_claims_are_per_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "1"
    claim_run_dir(run_dir, "uid-a", run_id="1")
    assert read_owner(run_dir) == "uid-a"
    claim_run_dir(run_dir, "uid-a")  # the same run again (resume, redelivered launch): fine
    with pytest.raises(RunDirConflict, match="belongs to run uid-a"):
        claim_run_dir(run_dir, "uid-b")
    claim_run_dir(run_dir, None)  # a plain `fipo train` checks and claims nothing
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "events.jsonl").write_text("")
    with pytest.raises(RunDirConflict, match="no owner record"):
        claim_run_dir(legacy, "uid-c")
    assert not (legacy / OWNER_FILE).exists()


def test_the_trainer_refuses_another_runs_directory_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from fipo_engine.cli import main

    run_dir = tmp_path / "runs" / "1"
    config = tmp_path / "cfg.json"
    config.write_text(tiny_config(**SHORT, **{"trainer.total_steps": 1}).to_json())
    monkeypatch.setenv("FIPO_RUN_UID", "first-database-run-1")
    assert main(["train", str(config), "--out", str(run_dir), "--no-progress"]) == 0
    before = _snapshot(run_dir)
    assert "owner.json" in before and any(k.startswith("checkpoints/") for k in before)

    monkeypatch.setenv("FIPO_RUN_UID", "second-database-run-1")
    for extra in ([], ["--resume"]):
        assert main(["train", str(config), "--out", str(run_dir), "--no-progress", *extra]) == 2
        assert "belongs to run first-database-run-1" in capsys.readouterr().err
    assert _snapshot(run_dir) == before  # spool, checkpoints, config: untouched


def test_rotation_and_resume_ignore_checkpoints_another_run_left(tmp_path: Path) -> None:
    """Failed before the fix: keep_checkpoints deleted the run's own steps as "older" than a foreign
    step_000400, and --resume would have loaded the foreign weights."""
    run_dir = tmp_path / "1"
    claim_run_dir(run_dir, "mine")
    for step in (350, 400):  # what the other run left (stamped with its owner)
        foreign = run_dir / "checkpoints" / f"step_{step:06d}"
        foreign.mkdir(parents=True)
        (foreign / "trainer_state.json").write_text(json.dumps({"step": step}))
        (foreign / OWNER_FILE).write_text(json.dumps({"run_uid": "theirs"}))
    train(tiny_config(**SHORT, **{"trainer.total_steps": 3, "trainer.keep_checkpoints": 2}), run_dir,
          progress=False)
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["step_000002", "step_000003", "step_000350", "step_000400"]
    assert [p.name for p in list_checkpoints(run_dir / "checkpoints")] == ["step_000002", "step_000003"]
    resumed = train(tiny_config(**SHORT, **{"trainer.total_steps": 4, "trainer.keep_checkpoints": 2}), run_dir,
                    resume=True, progress=False)
    assert [h["step"] for h in resumed.history] == [4]  # from its own step 3, not the foreign 400
    assert (run_dir / "checkpoints" / "step_000400").is_dir()
    assert [e["step"] for e in Spool(run_dir).events() if e["type"] == "checkpoint"] == [1, 2, 3, 4]


def test_a_checkpoint_that_fills_the_disk_leaves_no_partial_copy(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Chaos "disk full": the partial step_000003 is removed (giving its space back for the failure
    report) and the newest checkpoint is still the complete step 2."""
    import errno

    import torch

    from fipo_engine.trainer import checkpoint as ckpt_module

    real_save, calls = torch.save, {"n": 0}

    def filling_save(obj: object, path: object) -> None:
        calls["n"] += 1
        if calls["n"] == 5:  # the third checkpoint's optimizer state
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, path)

    monkeypatch.setattr(ckpt_module.torch, "save", filling_save)
    with pytest.raises(OSError, match="No space left"):
        train(tiny_config(**SHORT, **{"trainer.total_steps": 3}), tmp_path, progress=False)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000001", "step_000002"]
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")][-1] == "step_000002"


def test_a_full_disk_is_named_in_the_failure_reason() -> None:
    """Chaos "disk full": torch.save's ENOSPC reads "unexpected pos 97728 vs 97620"; the run's
    reason must say the disk is full (found by bench/chaos.py)."""
    from fipo_engine.trainer.cli import failure_reason

    exc = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 97728 vs 97620")
    assert failure_reason(exc, 90 * 1024).startswith("No space left in the run directory (90 KiB free): RuntimeError")
    assert failure_reason(exc, 50 * 2**30) == f"RuntimeError: {exc}"
    assert failure_reason(exc, None) == f"RuntimeError: {exc}"
