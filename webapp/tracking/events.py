"""Validation of tracking-protocol events (pure functions: a raw dict in, a clean event or a reason out).

The ingest service keeps every valid event of a batch and rejects the others one by one with their
``seq`` and the reason, so one bad event never costs the good ones.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from webapp.common.parsers import UnstorableText, check_storable, number_problem

EVENT_TYPES = ("metric", "sample", "status", "checkpoint", "eval", "log")
STATUS_STATES = ("running", "succeeded", "failed")
MAX_SEQ = 2**62
MAX_STEP = 2**31 - 1
MAX_NAME = 200
MAX_TEXT = 1_000_000
MAX_VALUES_PER_EVENT = 10_000
# Per-token arrays a sample may carry (docs/api-contract.md); any other list of numbers is kept too.
KNOWN_CHANNELS = ("logprob", "old_logprob", "log_ratio", "ratio", "future_kl", "influence", "advantage",
                  "weighted_advantage", "entropy")
_SAMPLE_FIELDS = {"seq", "type", "step", "index", "prompt", "response", "reward", "correct", "tokens", "length",
                  "minibatch", "num_minibatches"}
#: Upper bound of a sample's ``num_minibatches`` (optimizer steps per rollout batch; real runs use < 100).
MAX_MINIBATCHES = 1_000_000


class Rejected(ValueError):
    """An event that cannot be stored; the message is the reason sent back to the trainer."""


@dataclass
class Event:
    seq: int
    type: str
    payload: dict[str, Any] = field(default_factory=dict)


def _int(value: Any, name: str, lo: int = 0, hi: int = MAX_STEP) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise Rejected(f"{name} must be an integer")
    if not lo <= value <= hi:
        raise Rejected(f"{name} must be between {lo} and {hi}")
    return value


def _number(value: Any, name: str) -> float | None:
    """A finite float or None (null, NaN and infinities are 'no value')."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Rejected(f"{name} must be a number or null")
    try:
        out = float(value)
    except OverflowError:
        raise Rejected(f"{name} is out of range") from None
    return out if math.isfinite(out) else None


def _text(value: Any, name: str, *, limit: int = MAX_TEXT, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise Rejected(f"{name} must be a string")
    if len(value) > limit:
        raise Rejected(f"{name} longer than {limit} characters")
    return value


_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|d[89a-f])", re.IGNORECASE)


def body_may_hold_unstorable(raw: bytes) -> bool:
    """Whether a JSON body can decode to a string with NUL or a lone surrogate.

    Both can only come from ``\\u0000`` / ``\\udXXX`` escapes (raw control bytes and invalid UTF-8
    are refused by the parser), so a body without them needs no per-string scan."""
    return _UNSTORABLE_ESCAPE.search(raw) is not None


def seq_of(raw: Any) -> int | None:
    """The event's seq if it is a valid one (used to report rejections), else None."""
    if isinstance(raw, dict):
        seq = raw.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool) and 1 <= seq <= MAX_SEQ:
            return seq
    return None


def parse_event(raw: Any, *, check_text: bool = True) -> Event:
    """Validate one raw event; raise ``Rejected`` with the reason. ``check_text=False`` skips the
    scan for unstorable strings when the caller knows the body has none (``body_may_hold_unstorable``)."""
    if not check_text and type(raw) is dict and raw.get("type") == "metric":
        event = _plain_metric(raw)
        if event is not None:
            return event
    if not isinstance(raw, dict):
        raise Rejected("an event must be an object")
    seq = seq_of(raw)
    if seq is None:
        raise Rejected(f"seq must be an integer between 1 and {MAX_SEQ}")
    if check_text:
        try:
            check_storable(raw)
        except UnstorableText as exc:
            raise Rejected(str(exc)) from None
    type_ = raw.get("type")
    if type_ not in EVENT_TYPES:
        raise Rejected(f"unknown type {type_!r}; valid: {', '.join(EVENT_TYPES)}")
    return Event(seq=seq, type=type_, payload=_PARSERS[type_](raw))


_GOOD_NAMES: set[str] = set()  # metric names already found valid (1 to MAX_NAME characters)
_GOOD_NAMES_MAX = 50_000
_FLOAT_ONLY = frozenset({float})


def _plain_metric(raw: dict[str, Any]) -> Event | None:
    """The common metric event (valid seq and step, finite float values, known-good names) checked
    with a few C-level passes instead of one Python call per value; None means "take the full path",
    which accepts or rejects with the usual reason, so both paths always agree."""
    seq, step, values = raw.get("seq"), raw.get("step"), raw.get("values")
    if (type(seq) is not int or not 1 <= seq <= MAX_SEQ or type(step) is not int or not 0 <= step <= MAX_STEP
            or type(values) is not dict or len(values) > MAX_VALUES_PER_EVENT):
        return None
    # Only floats (not int, bool, None, str...), and no infinity (``1e999`` parses as one): the sum of
    # finite floats is finite unless it overflows, and then the full path decides.
    if set(map(type, values.values())) - _FLOAT_ONLY or not math.isfinite(sum(values.values())):
        return None
    if not _GOOD_NAMES.issuperset(values):
        for name in values:
            if type(name) is not str or not 0 < len(name) <= MAX_NAME:
                return None
        if len(_GOOD_NAMES) > _GOOD_NAMES_MAX:
            _GOOD_NAMES.clear()
        _GOOD_NAMES.update(values)
    return Event(seq=seq, type="metric", payload={"step": step, "values": values})


def _metric(raw: dict[str, Any]) -> dict[str, Any]:
    step = _int(raw.get("step"), "step")
    values = raw.get("values")
    if not isinstance(values, dict):
        raise Rejected("values must be an object of name: number")
    if len(values) > MAX_VALUES_PER_EVENT:
        raise Rejected(f"at most {MAX_VALUES_PER_EVENT} values per event")
    clean: dict[str, float] = {}
    for name, value in values.items():
        if not name or len(name) > MAX_NAME:
            raise Rejected(f"metric names must have 1 to {MAX_NAME} characters")
        number = _number(value, f"values[{name!r}]")
        if number is not None:
            clean[name] = number
    return {"step": step, "values": clean}


def _prompt_text(value: Any) -> str:
    """Prompts are text, or chat messages ``[{"role", "content"}]`` shown one per line."""
    if isinstance(value, list):
        lines = []
        for message in value:
            if not isinstance(message, dict):
                raise Rejected("prompt messages must be objects with role and content")
            lines.append(f"{_text(message.get('role', ''), 'prompt role', limit=100)}: "
                         f"{_text(message.get('content', ''), 'prompt content')}")
        return "\n".join(lines)
    return _text(value, "prompt")


def _sample(raw: dict[str, Any]) -> dict[str, Any]:
    step = _int(raw.get("step"), "step")
    index = _int(raw.get("index"), "index", hi=1_000_000)
    tokens = raw.get("tokens", [])
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise Rejected("tokens must be a list of strings")
    correct = raw.get("correct")
    if correct is not None and not isinstance(correct, bool):
        raise Rejected("correct must be true, false or null")
    channels: dict[str, list[float | None]] = {}
    for name, values in raw.items():
        if name in _SAMPLE_FIELDS or not isinstance(values, list):
            continue
        if len(name) > MAX_NAME:
            raise Rejected(f"channel names must have at most {MAX_NAME} characters")
        if len(values) != len(tokens):
            raise Rejected(f"channel {name!r} has {len(values)} values for {len(tokens)} tokens")
        channels[name] = [_number(v, f"{name}[{i}]") for i, v in enumerate(values)]
    length = raw.get("length")
    return {
        "step": step, "index": index, "prompt": _prompt_text(raw.get("prompt", "")),
        "response": _text(raw.get("response", ""), "response"), "reward": _number(raw.get("reward"), "reward"),
        "correct": correct, "tokens": tokens, "channels": channels,
        "length": _int(length, "length", hi=10**9) if length is not None else len(tokens),
        **_minibatch(raw.get("minibatch"), raw.get("num_minibatches")),
    }


def _minibatch(minibatch: Any, num_minibatches: Any) -> dict[str, int | None]:
    """Optional: which mini-batch of the rollout batch trained the sample (0-based) and how many there were.

    FIPO's future-KL is 0 in mini-batch 0 (the policy has not moved yet), so the samples page says it."""
    total = None if num_minibatches is None else _int(num_minibatches, "num_minibatches", lo=1, hi=MAX_MINIBATCHES)
    which = None if minibatch is None else _int(minibatch, "minibatch", hi=MAX_MINIBATCHES - 1)
    if which is not None and total is not None and which >= total:
        raise Rejected(f"minibatch must be below num_minibatches ({total}), got {which}")
    return {"minibatch": which, "num_minibatches": total}


def _status(raw: dict[str, Any]) -> dict[str, Any]:
    state = raw.get("state")
    if state not in STATUS_STATES:
        raise Rejected(f"state must be one of {', '.join(STATUS_STATES)}")
    return {"state": state, "message": _text(raw.get("message"), "message", limit=2000, required=False)}


def _checkpoint(raw: dict[str, Any]) -> dict[str, Any]:
    return {"step": _int(raw.get("step"), "step"), "uri": _text(raw.get("uri"), "uri", limit=4000)}


def _eval(raw: dict[str, Any]) -> dict[str, Any]:
    benchmark = _text(raw.get("benchmark"), "benchmark", limit=MAX_NAME)
    if not benchmark:
        raise Rejected("benchmark must not be empty")
    payload = {k: v for k, v in raw.items() if k not in {"seq", "type"}}
    payload["benchmark"] = benchmark
    if "step" in raw:
        payload["step"] = _int(raw["step"], "step")
    for key in ("pass_at_1", "pass_at_k", "cons_at_k"):
        if key in raw:
            payload[key] = _number(raw[key], key)
    # The rest is stored as sent (JSON): a number no JSON column holds makes the event unstorable for
    # good, so it is rejected on its own (the client drops it) instead of failing the whole batch.
    problem = number_problem(payload)
    if problem is not None:
        raise Rejected(f"{problem[0]}: {problem[1]}")
    return payload


def _log(raw: dict[str, Any]) -> dict[str, Any]:
    return {"text": _text(raw.get("text"), "text", limit=100_000)}


_PARSERS = {"metric": _metric, "sample": _sample, "status": _status, "checkpoint": _checkpoint,
            "eval": _eval, "log": _log}
