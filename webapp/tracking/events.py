"""Server side of the tracking protocol: a raw event in, a clean event or the reason it is refused out.

The event types themselves are ``fipo_engine.tracking.protocol`` (pydantic models shared with the
trainer's ``Tracker``). This module adds what only the server needs:

* the storage rules of PostgreSQL (no NUL or lone surrogate in any string; in an ``eval`` event's
  free-form keys no number a JSON column cannot hold), which the protocol leaves out;
* a fast path for the common metric event (valid ``seq`` and ``step``, finite float values, names
  already seen), checked with a few C-level passes; it answers exactly as the models do
  (``tests/webapp/test_protocol_fastpath.py`` runs both on the same inputs) and is what keeps
  ingest speed with pydantic on the rest.

The ingest service keeps every valid event of a batch and rejects the others one by one with their
``seq`` and the reason, so one bad event never costs the good ones.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from fipo_engine.tracking import protocol
from fipo_engine.tracking.protocol import MAX_NAME, MAX_SEQ, MAX_STEP, MAX_VALUES_PER_EVENT
from webapp.common.parsers import UnstorableText, check_storable, number_problem


class Rejected(ValueError):
    """An event that cannot be stored; the message is the reason sent back to the trainer."""


@dataclass
class Event:
    seq: int
    type: str
    payload: dict[str, Any] = field(default_factory=dict)


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
        raise Rejected(f"seq {protocol.SEQ_RULE}")
    if check_text:
        try:
            check_storable(raw)
        except UnstorableText as exc:
            raise Rejected(str(exc)) from None
    try:
        model = protocol.parse_event(raw)
    except protocol.EventError as exc:
        raise Rejected(str(exc)) from None
    payload = model.payload()
    if model.type == "eval":
        # Stored as sent (JSON): a number no JSON column holds makes the event unstorable for good,
        # so it is rejected on its own (the client drops it) instead of failing the whole batch.
        problem = number_problem(payload)
        if problem is not None:
            raise Rejected(f"{problem[0]}: {problem[1]}")
    return Event(seq=seq, type=model.type, payload=payload)


_GOOD_NAMES: set[str] = set()  # metric names already found valid (1 to MAX_NAME characters)
_GOOD_NAMES_MAX = 50_000
_FLOAT_ONLY = frozenset({float})


def _plain_metric(raw: dict[str, Any]) -> Event | None:
    """The common metric event (valid seq and step, finite float values, known-good names) checked
    with a few C-level passes instead of one Python call per value; None means "take the full path"
    (the protocol's ``MetricEvent``), which accepts or rejects with the usual reason."""
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
