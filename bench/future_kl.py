"""Benchmark: our O(L) future KL and FIPO loss against the official O(B·L²) chunked formulation.

    .venv/bin/python bench/future_kl.py [--quick] [--seed N] [--threads N]

The baseline is the official formulation (docs/spec.md §3 step 5, App. G), written here from the
spec: for each chunk of 128 columns, build the [L, 128] decay block γ^(k−t)·[k ≥ t] and add
``x[:, chunk] @ block.T`` to F, all in float32. ``baseline loss`` is the whole official forward pass
(chunked F, weights, safety rule, dual clip, sequence invalidation, token-mean, and the §6 metrics
with ``torch.quantile``); ``ours`` is ``fipo_engine.algorithms.future_kl`` and
``policy_loss("fipo")`` with the 32B recipe config.

Reported per (B, L): median wall and process-CPU time of each (after warm-up), the ratios, the max
abs difference of F (ours vs baseline, and both vs a float64 reference), the difference of the
loss, and the peak memory of one call. Peak memory is the high-water mark of torch's CPU
allocations during one call, read from torch.profiler's memory events (profile_memory=True;
tracemalloc does not see torch tensors); it is measured in a separate, untimed call.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fipo_engine.algorithms import PolicyLossConfig, future_kl, policy_loss
from fipo_engine.algorithms.future_kl import discounted_suffix_sum

CHUNK = 128


# ------------------------------------------------------------------------------------ baseline
def baseline_future_kl(log_prob: torch.Tensor, old_log_prob: torch.Tensor, mask: torch.Tensor, *, gamma: float,
                       clip_ratio_c: float) -> torch.Tensor:
    """Official: clamp, filter δ > ln c, then O(L²) decay products in column chunks of 128."""
    delta = torch.clamp(log_prob - old_log_prob, -20.0, 20.0)
    keep = ~(delta > math.log(clip_ratio_c))
    x = delta * mask.to(delta.dtype) * keep.to(delta.dtype)
    _, length = x.shape
    out = torch.zeros_like(x)
    rows = torch.arange(length)[:, None]
    g = torch.tensor(gamma, dtype=x.dtype)
    for start in range(0, length, CHUNK):
        cols = torch.arange(start, min(length, start + CHUNK))[None, :]
        dist = cols - rows
        block = torch.pow(g, dist.clamp(min=0)) * (dist >= 0).to(x.dtype)
        out += x[:, start:start + CHUNK] @ block.t()
    return out


def _mmean(v: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return (v * m).sum() / (m.sum() + 1e-8)


def baseline_loss(log_prob: torch.Tensor, old_log_prob: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor,
                  cfg: PolicyLossConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """The official FIPO forward pass (32B recipe: high-only weights, token-mean), with its metrics."""
    m = mask.to(log_prob.dtype)
    delta = torch.clamp(log_prob - old_log_prob, -20.0, 20.0)
    ratio = torch.exp(delta)
    fkl = baseline_future_kl(log_prob, old_log_prob, mask, gamma=cfg.gamma, clip_ratio_c=cfg.clip_ratio_c)
    raw = torch.exp(fkl)
    upper, lower = 1.0 + cfg.future_kl_clip_ratio, 1.0
    w = torch.clamp(raw, min=lower, max=upper).detach()
    w = torch.where((adv < 0) & (ratio > cfg.safety_thresh), torch.clamp(w, 0.8, 1.0), w)
    a_w = adv * w
    l1, l2 = -a_w * ratio, -a_w * torch.clamp(ratio, 1 - cfg.clip_ratio_low, 1 + cfg.clip_ratio_high)
    l_clip = torch.maximum(l1, l2)
    l3 = -a_w * cfg.clip_ratio_c
    dual = (adv < 0) & (l_clip > l3) & mask.bool()
    final = m * (dual.sum(dim=1) <= 1).to(m.dtype)[:, None]
    per_token = torch.where(a_w < 0, torch.minimum(l3, l_clip), l_clip)
    loss = (per_token * final).sum() / (final.sum() + 1e-8)
    valid = mask.bool()
    neg, pos = ratio[(adv < 0) & valid], ratio[(adv > 0) & valid]
    metrics = {
        "pg_clipfrac": _mmean((l2 > l1).float(), m), "ppo_kl": _mmean(-delta, m),
        "pg_clipfrac_lower": _mmean(dual.float(), m), "iw_mean": _mmean(w, m),
        "iw_min": w[valid].min(), "iw_max": w[valid].max(), "upper": _mmean((w >= upper - 1e-7).float(), m),
        "lower": _mmean((w <= lower + 1e-7).float(), m), "raw_mean": _mmean(raw, m),
        "raw_min": raw[valid].min(), "raw_max": raw[valid].max(),
        **{f"neg_{q}": torch.quantile(neg, q) for q in (0.75, 0.995, 0.999)}, "neg_max": neg.max(),
        **{f"pos_{q}": torch.quantile(pos, q) for q in (0.25, 0.5, 0.75, 0.995, 0.999)},
        "pos_max": pos.max(), "pos_min": pos.min(),
    }
    return loss, {k: float(v) for k, v in metrics.items()}


# --------------------------------------------------------------------------------- measurement
def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of this process) over ``repeats`` calls after warm-up.

    CPU time is the steadier number on a shared machine: it leaves out the time spent waiting for
    a core (with one torch thread it is close to the wall time of an idle machine).
    """
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def peak_bytes(fn: Callable[[], object]) -> int:
    """High-water mark of torch CPU allocations during one call (profiler memory events)."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak


def float64_reference(log_prob: torch.Tensor, old_log_prob: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """F in float64 (our scan on float64 inputs is exact to ~1e-13; checked by the tests against a loop)."""
    delta = torch.clamp(log_prob.double() - old_log_prob.double(), -20.0, 20.0)
    x = torch.where(mask & ~(delta > math.log(10.0)), delta, 0.0)
    return discounted_suffix_sum(x, gamma)


def make_inputs(batch: int, length: int, seed: int):
    """Log-probs of a realistic mini-batch 2..8: |δ| ~ 0.1, a few spikes above ln c, right padding."""
    gen = torch.Generator().manual_seed(seed)
    old = -torch.rand(batch, length, generator=gen) * 3.0
    delta = 0.1 * torch.randn(batch, length, generator=gen)
    spikes = torch.rand(batch, length, generator=gen) < 1e-3
    delta = torch.where(spikes, 2.5 + torch.rand(batch, length, generator=gen), delta)
    lengths = torch.randint(length // 4, length + 1, (batch,), generator=gen)
    mask = torch.arange(length)[None, :] < lengths[:, None]
    adv = torch.where(torch.rand(batch, 1, generator=gen) < 0.5, -1.0, 1.0).expand(batch, length)
    return old + delta, old, adv * mask, mask


def run_case(batch: int, length: int, *, quick: bool, seed: int) -> dict[str, float]:
    cfg = PolicyLossConfig()
    log_prob, old, adv, mask = make_inputs(batch, length, seed)
    base_reps = 1 if quick or length >= 20480 else 3
    our_reps = 5 if quick else 20

    def ours_f() -> torch.Tensor:
        return future_kl(log_prob, old, mask, decay_rate=cfg.decay_rate, clip_ratio_c=cfg.clip_ratio_c)

    def base_f() -> torch.Tensor:
        return baseline_future_kl(log_prob, old, mask, gamma=cfg.gamma, clip_ratio_c=cfg.clip_ratio_c)

    def ours_loss():
        return policy_loss("fipo", log_prob, old, adv, mask, cfg)

    def base_loss():
        return baseline_loss(log_prob, old, adv, mask, cfg)

    f_ours, f_base = ours_f(), base_f()
    exact = float64_reference(log_prob, old, mask, cfg.gamma)
    loss_ours, (loss_base, _) = ours_loss().loss.item(), base_loss()
    (base_f_s, base_f_cpu), (ours_f_s, ours_f_cpu) = median_seconds(base_f, base_reps), median_seconds(ours_f, our_reps, 2)
    (base_l_s, base_l_cpu), (ours_l_s, ours_l_cpu) = (median_seconds(base_loss, base_reps),
                                                      median_seconds(ours_loss, our_reps, 2))
    return {
        "B": batch, "L": length,
        "base_f_s": base_f_s, "ours_f_s": ours_f_s, "base_f_cpu": base_f_cpu, "ours_f_cpu": ours_f_cpu,
        "base_loss_s": base_l_s, "ours_loss_s": ours_l_s, "base_loss_cpu": base_l_cpu, "ours_loss_cpu": ours_l_cpu,
        "diff_f": (f_ours - f_base)[mask].abs().max().item(),
        "err_ours": (f_ours.double() - exact)[mask].abs().max().item(),
        "err_base": (f_base.double() - exact)[mask].abs().max().item(),
        "diff_loss": abs(loss_ours - loss_base.item()),
        "mem_base_f": peak_bytes(base_f), "mem_ours_f": peak_bytes(ours_f),
        "mem_base_loss": peak_bytes(base_loss), "mem_ours_loss": peak_bytes(ours_loss),
    }


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:.0f} ms" if seconds >= 0.1 else f"{seconds * 1e3:.3f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="B=8 only, L in {2048, 20480}, fewer repeats")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch intra-op threads for both sides (0: torch's default); 1 is steadier on a busy machine")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = [(8, 2048), (8, 20480)] if args.quick else [(b, n) for b in (8, 32) for n in (2048, 8192, 20480)]
    print(f"# future KL benchmark: torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, load avg "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}, fp32, decay_rate 32, chunk {CHUNK}")
    rows = []
    for b, n in cases:
        started = time.perf_counter()
        rows.append(run_case(b, n, quick=args.quick, seed=args.seed))
        print(f"  measured B={b} L={n} in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    print()
    print("## future_kl alone: official chunked O(B·L²) vs our blocked O(B·L) scan (medians)")
    print("|  B |     L | baseline wall | ours wall | ratio wall | baseline CPU | ours CPU | ratio CPU | ours CPU ns/token "
          "| max abs diff | err ours | err baseline | peak mem baseline | peak mem ours |")
    print("|---:|------:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['B']} | {r['L']} | {fmt_time(r['base_f_s'])} | {fmt_time(r['ours_f_s'])} | "
              f"{r['base_f_s'] / r['ours_f_s']:.0f}x | {fmt_time(r['base_f_cpu'])} | {fmt_time(r['ours_f_cpu'])} | "
              f"{r['base_f_cpu'] / max(r['ours_f_cpu'], 1e-9):.0f}x | {r['ours_f_cpu'] / (r['B'] * r['L']) * 1e9:.1f} | "
              f"{r['diff_f']:.1e} | {r['err_ours']:.1e} | {r['err_base']:.1e} | "
              f"{r['mem_base_f'] / 2**20:.1f} MiB | {r['mem_ours_f'] / 2**20:.1f} MiB |")
    print()
    print("## whole FIPO forward pass with all metrics: official formulation vs policy_loss('fipo') (medians)")
    print("|  B |     L | baseline wall | ours wall | ratio wall | baseline CPU | ours CPU | ratio CPU | abs diff loss "
          "| peak mem baseline | peak mem ours |")
    print("|---:|------:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['B']} | {r['L']} | {fmt_time(r['base_loss_s'])} | {fmt_time(r['ours_loss_s'])} | "
              f"{r['base_loss_s'] / r['ours_loss_s']:.0f}x | {fmt_time(r['base_loss_cpu'])} | "
              f"{fmt_time(r['ours_loss_cpu'])} | {r['base_loss_cpu'] / max(r['ours_loss_cpu'], 1e-9):.0f}x | "
              f"{r['diff_loss']:.1e} | {r['mem_base_loss'] / 2**20:.1f} MiB | {r['mem_ours_loss'] / 2**20:.1f} MiB |")
    print()
    print("err ours / err baseline: max abs error of F against a float64 evaluation. ns/token = ours CPU / (B·L):")
    print("flat across L when the time grows linearly. CPU = process CPU time (steadier on a shared machine;")
    print("with one thread it is close to the wall time of an idle machine). Peak mem = torch CPU allocations.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
