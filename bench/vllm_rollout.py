"""GPU only: vLLM rollout vs transformers ``generate`` for the native trainer, same model and prompts.

    python bench/vllm_rollout.py [--preset smollm2-gsm] [--prompts 64] [--n 8] [--max-new-tokens 256]

Prints one table: generation time, tokens/s and the ratio against the HF backend measured in the
same run (the baseline), plus the cost of one ``sync_weights`` (trainer -> vLLM weight copy).
Needs a CUDA GPU and ``pip install vllm``; exits with a message otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="smollm2-gsm")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("bench/vllm_rollout.py needs a CUDA GPU; none found.", file=sys.stderr)
        return 2
    from fipo_engine.config import preset
    from fipo_engine.models.loader import load_policy
    from fipo_engine.rollout import HFRollout, SamplingParams
    from fipo_engine.rollout.vllm import VLLMRollout

    cfg = preset(args.preset)
    policy = load_policy(cfg.model, device="cuda")
    text = [f"Question {i}: what is {i} + {2 * i}? Put the final answer in \\boxed{{}}." for i in range(args.prompts)]
    prompts = [policy.tokenizer(t)["input_ids"] for t in text]
    params = SamplingParams(n=args.n, temperature=1.0, top_p=1.0, max_new_tokens=args.max_new_tokens)

    def timed(backend) -> tuple[float, int]:
        times, tokens = [], 0
        for _ in range(args.repeats):
            torch.cuda.synchronize()
            start = time.perf_counter()
            gens = backend.generate(prompts, params)
            torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
            tokens = sum(len(g.response_ids) for g in gens)
        return statistics.median(times), tokens

    hf = HFRollout(policy, generation_batch_size=args.prompts * args.n)
    timed(hf)  # warm-up
    hf_s, hf_tokens = timed(hf)
    vllm = VLLMRollout(policy, gpu_memory_utilization=0.5, max_model_len=2048)
    timed(vllm)  # warm-up (CUDA graphs)
    vllm_s, vllm_tokens = timed(vllm)
    syncs = []
    for _ in range(args.repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        vllm.sync_weights()
        torch.cuda.synchronize()
        syncs.append(time.perf_counter() - start)

    gpu = torch.cuda.get_device_name(0)
    print(f"# {args.preset} on {gpu}: {args.prompts} prompts x n={args.n}, max_new_tokens={args.max_new_tokens}, "
          f"median of {args.repeats}")
    print(f"{'backend':<10}{'seconds':>10}{'tokens':>10}{'tokens/s':>12}{'speed-up':>10}")
    for name, secs, toks in (("hf", hf_s, hf_tokens), ("vllm", vllm_s, vllm_tokens)):
        print(f"{name:<10}{secs:>10.2f}{toks:>10}{toks / secs:>12.0f}{(toks / secs) / (hf_tokens / hf_s):>10.2f}")
    print(f"sync_weights: median {statistics.median(syncs) * 1000:.1f} ms")
    vllm.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
