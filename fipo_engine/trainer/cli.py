"""``fipo train``: run the native trainer from a preset or a config file.

    fipo train cpu-demo --out var/runs/demo
    fipo train run.json --out DIR --set trainer.lr=2e-6 --set rollout.n=8
    fipo train --resume --out DIR                      # continue from the newest checkpoint
    fipo train fipo-32b --dry-run                      # validate + one step on a tiny stand-in model
    fipo train cfg.json --out DIR --server URL --run-id 42 --token T   # stream events to the control plane

Exit codes: 0 success, 2 invalid config (nothing ran), 1 training failure, 130 stopped by SIGTERM or
Ctrl-C (after a checkpoint at the next safe point, see ``trainer/stop.py``; a second signal stops at
once). Status events (``running`` / ``succeeded`` / ``failed`` with a message) go to the spool and, when
given, the server; a stop sends no final status (the control plane that asked for it records
``cancelled``), only a ``checkpoint`` and a ``log`` event.
``--server/--run-id/--token`` default to ``$FIPO_SERVER_URL``, ``$FIPO_RUN_ID``, ``$FIPO_RUN_TOKEN``
when all three are set (keeps the token out of the process list). ``--run-uid`` (default
``$FIPO_RUN_UID``, set by the control plane) claims the run directory for that run: a directory
another run owns is refused with exit code 2 before anything in it is opened (``fipo_engine.rundir``).
Log lines go to stderr (under the control plane, the run's ``run.log``): ours from INFO up, the
libraries' from WARNING up (``configure_logging``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from fipo_engine.config import ConfigError, RunConfig, validate_config

log = logging.getLogger("fipo.trainer")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Our loggers (``fipo.*`` and ``fipo_engine.*`` by module name): their INFO lines are what a user reads.
OWN_LOGGERS = ("fipo", "fipo_engine")
#: HTTP clients log every request at INFO; the tracker posts one per event batch, so these would
#: bury our lines. Pinned to WARNING even where something else set the root logger to INFO.
NOISY_LOGGERS = ("httpx", "httpcore", "urllib3", "requests", "hpack", "h2", "filelock")


def configure_logging() -> None:
    """Our INFO lines and every library's warnings to stderr, which is the run's ``run.log``.

    The run page's Log card shows that file: at INFO for everyone it was almost all httpx
    ``HTTP Request: POST .../events`` lines, one per event batch, burying the trainer's own.
    """
    logging.basicConfig(level=logging.WARNING, format=LOG_FORMAT)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="preset name (fipo config presets) or a JSON config file; "
                        "optional with --resume (then DIR/config.json is used)")
    parser.add_argument("--out", help="run directory (config.json, events.jsonl, checkpoints/); "
                        "default var/runs/<name>-<time>")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field by dotted path, e.g. trainer.lr=2e-6 (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in --out (same data order and step numbers)")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate the config, then run one step with a tiny stand-in model and small sizes")
    parser.add_argument("--server", default=None, help="control-plane URL to stream events to")
    parser.add_argument("--run-id", default=None, help="run id on the control plane")
    parser.add_argument("--token", default=None, help="run token (Bearer) for the ingest endpoint")
    parser.add_argument("--run-uid", default=None,
                        help="the run's unique id (default $FIPO_RUN_UID): the directory must be this run's")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def dry_run_config(cfg: RunConfig) -> RunConfig:
    """The same algorithm settings on a tiny stand-in: tiny model, HF rollout, 1 step, small batches.

    The loss and advantage sections are kept exactly; what needs hardware or files (32B model, vLLM,
    parquet data) is swapped for offline stand-ins so any preset can be smoke-tested on a laptop.
    """
    data = cfg.model_dump(mode="json")
    data["model"] = {"source": "tiny", "tiny": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                                "intermediate_size": 64, "max_position_embeddings": 128}}
    if cfg.data.source == "file" and not (cfg.data.path and Path(cfg.data.path).is_file()):
        data["data"] = {"source": "reasoning_gym", "task": "basic_arithmetic", "prompt_suffix": ""}
        data["reward"]["name"] = "reasoning_gym"
    data["data"].update({"train_size": 64, "eval_size": 4, "max_prompt_length": 64})
    data["rollout"].update({"backend": "hf", "n": min(cfg.rollout.n, 4), "max_new_tokens": 16,
                            "generation_batch_size": 64})
    data["reward"]["overlong_buffer"]["length"] = 4
    data["trainer"].update({"total_steps": 1, "train_batch_size": 4, "gen_batch_size": 4, "max_num_gen_batches": 1,
                            "ppo_mini_batch_size": 2, "micro_batch_size": 8, "sft_warmup_steps": 0,
                            "eval_every": 1, "eval_k": 1, "save_every": 0, "log_samples": 1, "device": "cpu",
                            "cpu_threads": 1})
    data["launcher"] = {"backend": "local"}
    return validate_config(data)


def _resolve_config(args: argparse.Namespace) -> RunConfig:
    from fipo_engine.config import load_config

    if args.config:
        return load_config(args.config, args.overrides)
    if args.resume and args.out and (Path(args.out) / "config.json").is_file():
        return load_config(str(Path(args.out) / "config.json"), args.overrides)
    raise ConfigError([{"path": "config", "message": "a preset or config file is required "
                        "(or --resume with an --out that holds config.json)"}])


def _tracking_args(args: argparse.Namespace) -> tuple[str | None, str | None, str | None]:
    env = (os.environ.get("FIPO_SERVER_URL"), os.environ.get("FIPO_RUN_ID"), os.environ.get("FIPO_RUN_TOKEN"))
    if args.server or args.run_id or args.token:
        return args.server, args.run_id, args.token
    return env if all(env) else (None, None, None)


LOW_DISK_BYTES = 16 * 1024 * 1024


def failure_reason(exc: BaseException, free_bytes: int | None) -> str:
    """The reason a failed run shows. A full disk surfaces as whatever the writer raised (torch.save
    says "unexpected pos ..."), so when the run directory's disk is nearly full, say that first."""
    reason = f"{type(exc).__name__}: {exc}"
    if free_bytes is not None and free_bytes < LOW_DISK_BYTES:
        reason = f"No space left in the run directory ({free_bytes // 1024} KiB free): {reason}"
    return reason[:1000]


def _free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def _report_failure(tracker: Any, exc: BaseException, out: Path) -> None:
    """Send ``failed`` with the error as the reason. When even that cannot be written (the disk is
    full, and the spool is on it), say so on stderr: the launcher records the exit code 1."""
    try:
        tracker.log(traceback.format_exc()[-4000:])
        tracker.status("failed", failure_reason(exc, _free_bytes(out)))
    except OSError as report_error:
        print(f"fipo train: could not record the failure in the spool ({report_error})", file=sys.stderr)
    with contextlib.suppress(OSError):
        tracker.close(timeout=10)


def run(args: argparse.Namespace) -> int:
    configure_logging()
    try:
        cfg = _resolve_config(args)
        if args.dry_run:
            cfg = dry_run_config(cfg)
    except ConfigError as exc:
        print(f"fipo train: invalid config: {exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # load_config's "neither a preset nor a file"
        print(exc, file=sys.stderr)
        return 2
    if args.resume and not args.out:
        print("fipo train: --resume needs --out DIR", file=sys.stderr)
        return 2
    name = cfg.preset or (Path(args.config).stem if args.config else "run")
    if args.out:
        out = Path(args.out)
    elif args.dry_run:
        out = Path(tempfile.mkdtemp(prefix=f"fipo-dry-run-{name}-"))
    else:
        out = Path("var/runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"

    from fipo_engine.rundir import RunDirConflict, claim_run_dir

    server, run_id, token = _tracking_args(args)
    try:  # before the spool is opened: another run's events must not be re-sent as ours
        claim_run_dir(out, args.run_uid or os.environ.get("FIPO_RUN_UID"), run_id=run_id)
    except RunDirConflict as exc:
        print(f"fipo train: {exc}", file=sys.stderr)
        return 2

    from transformers.utils import logging as hf_logging

    from fipo_engine.tracking import Tracker
    from fipo_engine.trainer.loop import train
    from fipo_engine.trainer.stop import StopRequest

    hf_logging.disable_progress_bar()
    try:
        tracker = Tracker(out, server=server, run_id=run_id, token=token)
    except ValueError as exc:
        print(f"fipo train: {exc}", file=sys.stderr)
        return 2

    print(f"fipo train: run directory {out}", file=sys.stderr)
    try:
        with StopRequest() as stop:  # SIGTERM/SIGINT: checkpoint at the next safe point, then exit 130
            result = train(cfg, out, resume=args.resume, tracker=tracker, progress=not args.no_progress, stop=stop)
    except KeyboardInterrupt as exc:  # a second signal (or Ctrl-C before the handler): stop now, keep the spool
        tracker.log(f"stopped: {exc or 'interrupted'} (no checkpoint written)")
        tracker.close(timeout=5)
        return 130
    except ConfigError as exc:
        tracker.status("failed", f"invalid config: {exc}")
        tracker.close(timeout=10)
        print(f"fipo train: invalid config: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        traceback.print_exc()
        _report_failure(tracker, exc, out)
        return 1
    if result.stopped:  # cancelled: the control plane already knows; no final status
        tracker.close(timeout=5)  # inside the launcher's grace period (FIPO_CANCEL_GRACE_S, 10 s)
        print(f"fipo train: stopped by {result.stopped} after step {result.final_step}; "
              f"checkpoint {result.last_checkpoint}; continue with --resume --out {out}", file=sys.stderr)
        return 130
    summary = {"final_step": result.final_step, **(result.last_eval or {})}
    tracker.status("succeeded", json.dumps(summary))
    delivered = tracker.close(timeout=30)
    if server and not delivered:
        log.warning("some events were not delivered; they stay in %s/events.jsonl", out)
    print(f"fipo train: done, step {result.final_step}; run directory {out}", file=sys.stderr)
    return 0
