"""fipo_engine.fsutil: the one atomic file write used by the job wrapper, run dirs, the spool and eval."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fipo_engine import fsutil
from fipo_engine.fsutil import atomic_write_bytes, atomic_write_text


def test_writes_and_replaces_leaving_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "exit"
    atomic_write_text(target, "0\n")
    atomic_write_text(target, "ünïcode ✓\n")
    assert target.read_bytes() == "ünïcode ✓\n".encode()
    assert os.listdir(tmp_path) == ["exit"]
    atomic_write_bytes(str(target), b"\x00\xff")    # a str path works too
    assert target.read_bytes() == b"\x00\xff"


def test_a_failed_write_leaves_the_old_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The reader's guarantee: whatever happens before the rename, the file holds the old whole content."""
    target = tmp_path / "events.acked"
    atomic_write_text(target, "41\n")

    def crash(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(fsutil.os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_text(target, "42\n")
    assert target.read_text() == "41\n"
