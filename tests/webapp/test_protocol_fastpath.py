"""The ingest's hand-written metric fast path against the protocol's pydantic model, on the same inputs.

``webapp.tracking.events._plain_metric`` accepts the common metric event without pydantic (ingest
speed); whenever it answers, the model (``fipo_engine.tracking.protocol``) must accept the event too
and normalise it to the same payload, and ``parse_event`` as a whole must answer exactly what the
model answers (accept or reject, the same reason, the same stored values).
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from fipo_engine.tracking import protocol
from webapp.tracking import events as ev

# storable text only: NUL and lone surrogates are the server's storage rule, not the protocol's
_storable = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_names = st.one_of(st.sampled_from(["loss", "reward/mean", "", "x" * 200, "x" * 201]), st.text(_storable, max_size=6))
_values = st.one_of(st.floats(), st.floats(allow_nan=False, allow_infinity=False), st.just(1e308), st.just(-1e308),
                    st.integers(min_value=-(2**1100), max_value=2**1100), st.booleans(), st.none(),
                    st.text(_storable, max_size=3), st.lists(st.floats(), max_size=2))
_ints = st.one_of(st.integers(min_value=-2, max_value=2**63), st.sampled_from([0, 1, 2**31 - 1, 2**31, 2**62, 2**62 + 1]),
                  st.booleans(), st.floats(), st.none(), st.text(_storable, max_size=2))
_metric_events = st.fixed_dictionaries(
    {"seq": st.one_of(st.integers(min_value=1, max_value=1000), _ints),
     "type": st.just("metric"),
     "step": st.one_of(st.integers(min_value=0, max_value=1000), _ints),
     "values": st.one_of(st.dictionaries(_names, _values, max_size=6),
                         st.dictionaries(_names, st.floats(allow_nan=False, allow_infinity=False), max_size=6),
                         st.lists(st.floats(), max_size=2), st.none(), st.text(_storable, max_size=2))},
    optional={"extra": st.one_of(st.none(), st.integers(), st.text(_storable, max_size=2))},
)


def _model(raw: dict[str, Any]) -> Any:
    """What the protocol model alone answers: the reason, or (seq, type, stored payload)."""
    try:
        event = protocol.parse_event(raw)
    except protocol.EventError as exc:
        return ("rejected", str(exc))
    return ("ok", event.seq, event.type, json.dumps(event.payload(), sort_keys=True))


def _ingest(raw: dict[str, Any]) -> Any:
    try:
        event = ev.parse_event(raw, check_text=False)  # the ingest's usual call: fast path first
    except ev.Rejected as exc:
        return ("rejected", str(exc))
    return ("ok", event.seq, event.type, json.dumps(event.payload, sort_keys=True))


@hsettings(max_examples=600, deadline=None)
@given(raw=_metric_events)
@example(raw={"seq": 1, "type": "metric", "step": 0, "values": {"a": 1e308, "b": 1e308}})  # finite, sum overflows
@example(raw={"seq": 1, "type": "metric", "step": 0, "values": {"a": math.inf, "b": math.nan, "c": None}})
@example(raw={"seq": 1, "type": "metric", "step": 0, "values": {"a": 1, "b": 2.5, "c": 2**1100}})
@example(raw={"seq": 2**62, "type": "metric", "step": 2**31 - 1, "values": {"x" * 200: -0.0}})
@example(raw={"seq": 1, "type": "metric", "step": 0, "values": {f"k{i}": 0.5 for i in range(10_001)}})
def test_fast_path_and_model_accept_and_normalise_alike(raw: dict[str, Any]) -> None:
    model = _model(raw)
    fast = ev._plain_metric(raw)
    if fast is not None:  # the fast path answered: the model accepts the same event, the same way
        assert model == ("ok", fast.seq, fast.type, json.dumps(fast.payload, sort_keys=True))
    assert _ingest(raw) == model


def test_the_fast_path_answers_the_common_event_and_leaves_the_rest() -> None:
    raw = {"seq": 3, "type": "metric", "step": 7, "values": {"loss": 0.5, "reward/mean": -1.25}}
    assert ev._plain_metric(raw) is not None
    for odd in ({"loss": 1}, {"loss": None}, {"loss": math.inf}, {"": 1.0}, {"x" * 201: 1.0}, {"a": True}):
        assert ev._plain_metric({**raw, "values": odd}) is None
        assert _ingest({**raw, "values": odd}) == _model({**raw, "values": odd})


_other_events = st.sampled_from([
    {"seq": 1, "type": "sample", "step": 1, "index": 0, "tokens": ["a", "b"], "logprob": [-0.5, math.nan],
     "prompt": [{"role": "user", "content": "hi"}], "reward": 1, "correct": True, "minibatch": 0, "num_minibatches": 2},
    {"seq": 1, "type": "sample", "step": 1, "index": 0, "tokens": ["a"], "logprob": [True]},
    {"seq": 1, "type": "sample", "step": 1, "index": 0, "tokens": ["a"], "entropy": [1.0, 2.0]},
    {"seq": 1, "type": "sample", "step": 1, "index": 0, "minibatch": 2, "num_minibatches": 2},
    {"seq": 1, "type": "status", "state": "succeeded", "message": None},
    {"seq": 1, "type": "status", "state": "done"},
    {"seq": 1, "type": "checkpoint", "step": 4, "uri": "x" * 4001},
    {"seq": 1, "type": "eval", "benchmark": "aime", "pass_at_1": math.inf, "k": 4, "pass_at_1_ci": [0.1, 0.2]},
    {"seq": 1, "type": "eval", "benchmark": ""},
    {"seq": 1, "type": "log", "text": 3},
    {"seq": 1, "type": "nope"},
])


@hsettings(max_examples=50, deadline=None)
@given(raw=_other_events)
def test_every_other_event_is_parsed_by_the_model(raw: dict[str, Any]) -> None:
    """Without the fast path (any event but a plain metric) the ingest answers what the model answers."""
    assert _ingest(raw) == _model(raw)
