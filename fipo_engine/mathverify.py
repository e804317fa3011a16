"""math-verify's verdict on two answer strings, importing nothing but math-verify.

Kept out of ``fipo_engine.rewards`` (whose package imports torch through the grader registry) so that
the grading worker processes of ``fipo_engine.rewards.pool`` start in about a second.
"""

from __future__ import annotations

import functools
import threading
from typing import Any


def _timeout() -> int | None:
    """math-verify's timeouts use signal.alarm, which only works in the main thread."""
    return 5 if threading.current_thread() is threading.main_thread() else None


@functools.lru_cache(maxsize=4096)
def parse_gold(answer: str) -> tuple[Any, ...]:
    from math_verify import parse

    text = answer.strip()
    if not text:
        return ()
    wrapped = text if "\\boxed" in text or text.startswith("$") else f"${text}$"
    return tuple(parse(wrapped, parsing_timeout=_timeout()))


def verify_equal(predicted: str, gold: str) -> bool:
    """math-verify's verdict (no quick path). Its timeouts work only in a main thread, and not at all
    inside C code that holds the GIL: call it through ``rewards.pool.verify_many`` unless in-process
    is wanted."""
    from math_verify import parse, verify

    try:
        gold_parsed = list(parse_gold(gold))
        pred_parsed = parse(f"${predicted}$", parsing_timeout=_timeout())
        if not gold_parsed or not pred_parsed:
            return False
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=_timeout()))
    except Exception:  # math-verify raises on pathological input or timeouts: count as wrong
        return False


def verify_chunk(pairs: list[tuple[str, str]]) -> list[bool]:
    """In a pool worker: each (predicted, gold) pair (its main thread, so math-verify's timeouts work)."""
    return [verify_equal(predicted, gold) for predicted, gold in pairs]
