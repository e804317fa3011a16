"""Step time and reward of the ``smollm2-arith`` preset on this CPU: N training steps, one table.

The machine may be shared, so each step's wall time comes with the CPU time the process spent on
it (user + system, all threads) and the 1-minute load average when it ended: on a busy machine the
CPU time (divided by the threads the preset uses) is the better estimate of an idle machine's
wall time. Prints one row per step, then the first-5 / last-5 means.

    PYTHONPATH=. .venv/bin/python bench/smollm2_steps.py --steps 20 --out var/bench/smollm2-arith
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path
from typing import Any

from fipo_engine.config import apply_overrides, preset
from fipo_engine.tracking import Tracker
from fipo_engine.trainer.loop import train


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class TimedTracker(Tracker):
    """A tracker that notes the process CPU time and the load average at each step's metric event."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__(run_dir)
        self.marks: dict[int, tuple[float, float]] = {}
        self.last_cpu = _cpu_s()
        self.rows: list[dict[str, Any]] = []

    def metric(self, step: int, values: dict[str, float | None]) -> int:
        now = _cpu_s()
        if "timing/step_s" in values:
            self.rows.append({"step": step, "cpu_s": now - self.last_cpu, "load": os.getloadavg()[0], **values})
            self.last_cpu = now
        elif step == 0:
            self.last_cpu = now  # warm start / first eval: not part of step 1
        return super().metric(step, values)

    def eval(self, **fields: Any) -> int:
        seq = super().eval(**fields)
        print(f"  eval step {fields['step']}: pass@1 {fields['pass_at_1']:.3f} ({fields['n_problems']} problems)",
              flush=True)
        self.last_cpu = _cpu_s()  # evaluation time is not a training step's
        return seq


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="smollm2-arith")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--out", default="var/bench/smollm2-arith")
    ap.add_argument("--set", action="append", default=[], help="key.path=value overrides")
    args = ap.parse_args()
    overrides: dict[str, Any] = {"trainer.total_steps": args.steps, "trainer.save_every": 0}
    overrides.update(dict(item.split("=", 1) for item in args.set))
    cfg = apply_overrides(preset(args.preset), overrides)
    out = Path(args.out)
    tracker = TimedTracker(out)
    t0 = time.perf_counter()
    print(f"{'step':>4} {'wall s':>7} {'cpu s':>7} {'load':>5} {'gen s':>6} {'upd s':>6} {'acc':>5} {'reward':>7} "
          f"{'kept':>5} {'fill':>5} {'len':>6}", flush=True)

    orig = tracker.metric

    def metric(step: int, values: dict[str, float | None]) -> int:
        seq = orig(step, values)
        if "timing/step_s" in values:
            r = tracker.rows[-1]
            print(f"{step:4d} {r['timing/step_s']:7.1f} {r['cpu_s']:7.1f} {r['load']:5.1f} "
                  f"{r['timing/generate_s']:6.1f} {r.get('timing/update_s', 0.0):6.1f} {r['accuracy/gen_mean']:5.2f} "
                  f"{r['reward/gen_mean']:7.3f} {r.get('sampling/kept_group_fraction', 1.0):5.2f} "
                  f"{r.get('sampling/fill_fraction', 1.0):5.2f} {r.get('response_length/mean', 0.0):6.1f}", flush=True)
        return seq

    tracker.metric = metric  # type: ignore[method-assign]
    train(cfg, out, tracker=tracker, progress=False)
    tracker.close()
    rows = tracker.rows
    head, tail = rows[:5], rows[-5:]

    def mean(part: list[dict[str, Any]], key: str) -> float:
        return sum(r[key] for r in part) / len(part)

    print(f"total {time.perf_counter() - t0:.0f} s wall; threads {cfg.trainer.cpu_threads or 'default'}")
    for label, part in (("first 5", head), ("last 5", tail)):
        print(f"{label}: wall {mean(part, 'timing/step_s'):.1f} s, cpu {mean(part, 'cpu_s'):.1f} s, "
              f"load {mean(part, 'load'):.1f}, accuracy {mean(part, 'accuracy/gen_mean'):.3f}, "
              f"reward {mean(part, 'reward/gen_mean'):.3f}")


if __name__ == "__main__":
    main()
