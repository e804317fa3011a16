"""What `fipo train` writes to its log (the run page's Log card shows it): our lines, not every HTTP request."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Runs the real CLI with a stand-in for the training loop that logs the lines a run produces:
# httpx/httpcore/urllib3 report every request at INFO (the tracker posts one per event batch).
SCRIPT = r'''
import logging, sys
import fipo_engine.trainer.loop as loop
from fipo_engine.trainer.state import TrainResult

def fake_train(cfg, out, **kwargs):
    logging.getLogger("httpx").info('HTTP Request: POST http://127.0.0.1/api/v1/runs/1/events "HTTP/1.1 200 OK"')
    logging.getLogger("httpcore.connection").info("connect_tcp.started host='127.0.0.1'")
    logging.getLogger("urllib3.connectionpool").info("Starting new HTTP connection (1): 127.0.0.1:80")
    logging.getLogger("fipo_engine.models.loader").info("own module line")
    logging.getLogger("fipo.trainer").info("trainer line")
    logging.getLogger("httpx").warning("library warning")
    return TrainResult(final_step=1)

loop.train = fake_train
from fipo_engine.cli import main
sys.exit(main(["train", "cpu-demo", "--out", sys.argv[1], "--no-progress"]))
'''


def test_library_info_lines_stay_out_of_the_run_log_and_ours_stay_in(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "run")], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "INFO fipo_engine.models.loader: own module line" in log
    assert "INFO fipo.trainer: trainer line" in log
    assert "WARNING httpx: library warning" in log  # a library's warnings still show
    for noise in ("HTTP Request:", "connect_tcp", "Starting new HTTP connection"):
        assert noise not in log, noise
