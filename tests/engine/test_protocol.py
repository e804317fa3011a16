"""The tracking protocol's models and the per-token channel catalog: what the Tracker builds is what
the server parses, the JSON Schema says what the models check, and the catalog is consistent."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from fipo_engine import token_channels
from fipo_engine.algorithms.losses import PolicyLossOutput
from fipo_engine.tracking import protocol
from fipo_engine.tracking.client import Tracker


def test_every_event_the_tracker_spools_parses_with_the_protocol(tmp_path: Path) -> None:
    tracker = Tracker(tmp_path)
    tracker.status("running", "started")
    tracker.metric(1, {"reward/mean": 0.5, "actor/entropy": math.nan})
    tracker.sample(1, 0, prompt=[{"role": "user", "content": "1+1?"}], response="2", reward=1.0, correct=True,
                   tokens=["2", "."], logprob=[-0.1, -0.2], entropy=[math.inf, 0.3], minibatch=0, num_minibatches=2)
    tracker.checkpoint(1, "/runs/1/checkpoints/step_1")
    tracker.eval(benchmark="aime-2024", step=1, pass_at_1=0.25, pass_at_1_ci=[0.1, 0.4], k=4, n_problems=30)
    tracker.log("done")
    tracker.close()
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [e["type"] for e in lines] == ["status", "metric", "sample", "checkpoint", "eval", "log"]
    parsed = [protocol.parse_event({k: v for k, v in e.items() if not k.startswith("_")}) for e in lines]
    sample = parsed[2].payload()
    assert sample["prompt"] == "user: 1+1?" and sample["channels"] == {"logprob": [-0.1, -0.2], "entropy": [None, 0.3]}
    assert parsed[1].payload()["values"] == {"reward/mean": 0.5}  # NaN: not measured this step
    assert lines[1]["values"] == {"reward/mean": 0.5, "actor/entropy": None}  # sent as null, as before
    assert lines[4]["pass_at_1_ci"] == [0.1, 0.4] and lines[4]["k"] == 4  # free-form keys travel as given
    assert "seq" in lines[0] and lines[0]["message"] == "started"


def test_an_event_the_protocol_refuses_is_logged_and_still_spooled(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    tracker = Tracker(tmp_path)
    with caplog.at_level(logging.WARNING, logger="fipo.tracking"):
        seq = tracker.metric(-1, {"loss": 0.1})
    tracker.close()
    assert seq == 1 and "step must be between 0 and 2147483647" in caplog.text
    assert json.loads((tmp_path / "events.jsonl").read_text())["step"] == -1  # the server answers it


@pytest.mark.parametrize(("raw", "reason"), [
    ({"seq": 1, "type": "metric", "step": True, "values": {}}, "step must be an integer"),
    ({"seq": 1, "type": "metric", "step": 1, "values": {"a": "x"}}, "values['a'] must be a number or null"),
    ({"seq": 1, "type": "metric", "step": 1, "values": {"": 1.0}}, "metric names must have 1 to 200 characters"),
    ({"seq": 1, "type": "sample", "step": 1, "index": 0, "tokens": ["a"], "ratio": [1.0, 2.0]},
     "channel 'ratio' has 2 values for 1 tokens"),
    ({"seq": 1, "type": "sample", "step": 1, "index": 0, "tokens": ["a"], "ratio": ["x"]}, "ratio[0] must be a number"),
    ({"seq": 1, "type": "sample", "step": 1, "index": 0, "prompt": [{"role": 1}]}, "prompt role must be a string"),
    ({"seq": 1, "type": "status", "state": "done"}, "state must be one of running, succeeded, failed"),
    ({"seq": 1, "type": "checkpoint", "step": 1}, "uri is required"),
    ({"seq": 1, "type": "eval", "benchmark": ""}, "benchmark must not be empty"),
    ({"seq": 1, "type": "log", "text": "x" * 100_001}, "text longer than 100000 characters"),
    ({"seq": 0, "type": "log", "text": ""}, "seq must be an integer between 1 and"),
    ({"seq": 1, "type": 3}, "unknown type 3; valid: metric, sample, status, checkpoint, eval, log"),
    ([], "an event must be an object"),
])
def test_reasons_name_the_field(raw: object, reason: str) -> None:
    with pytest.raises(protocol.EventError) as err:
        protocol.parse_event(raw)
    assert reason in str(err.value)


def test_the_json_schema_describes_the_models() -> None:
    schema = protocol.json_schema()
    assert schema["type"] == "array"
    defs = schema["$defs"]
    assert {d["properties"]["type"]["const"] for d in defs.values() if "type" in d.get("properties", {})} == set(
        protocol.EVENT_TYPES)
    metric, sample = defs["MetricEvent"], defs["SampleEvent"]
    assert metric["properties"]["step"]["maximum"] == protocol.MAX_STEP and metric["required"] == ["seq", "step", "values"]
    assert set(token_channels.NAMES) <= set(sample["properties"])  # the catalog's channels are documented
    assert defs["StatusEvent"]["properties"]["state"]["enum"] == list(protocol.STATUS_STATES)
    assert schema["items"]["discriminator"]["propertyName"] == "type"
    json.dumps(schema)  # JSON-ready


def test_eval_scores_are_stricter_than_the_eval_event() -> None:
    event = protocol.parse_event({"seq": 1, "type": "eval", "benchmark": "b", "pass_at_1": 3, "k": -1})
    assert event.payload() == {"benchmark": "b", "pass_at_1": 3.0, "k": -1}  # stored as sent
    with pytest.raises(ValidationError) as err:
        protocol.EvalScores.model_validate({"pass_at_1": 3, "k": -1, "settings": {"max_new_tokens": 1.5}})
    assert protocol.eval_scores_errors(err.value) == [
        {"path": "pass_at_1", "message": "must be a number between 0 and 1"},
        {"path": "k", "message": "must be an integer between 0 and 2147483647"},
        {"path": "max_tokens", "message": "must be an integer between 0 and 2147483647"},
    ]


def test_the_channel_catalog_is_consistent() -> None:
    assert len(set(token_channels.NAMES)) == len(token_channels.CHANNELS)
    assert token_channels.CHANNELS[0].name == "future_kl"  # the samples page's default colouring
    assert token_channels.POSITION_NAMES == ("future_kl", "influence")
    fields = set(PolicyLossOutput.__dataclass_fields__)
    assert set(token_channels.loss_outputs().values()) <= fields  # the trainer can fill each from the loss
    for channel in token_channels.CHANNELS:
        assert channel.scale in ("diverging", "sequential") and channel.palette == "RdBu" and channel.meaning
    assert [c.name for c in token_channels.CHANNELS if not c.colour] == ["old_logprob"]  # tooltip only
    with pytest.raises(KeyError):
        token_channels.names(exclude=("nope",))


def test_a_generic_json_schema_validator_agrees_on_plain_cases() -> None:
    """What a third-party trainer would do with the served schema (docs/api-contract.md)."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = protocol.json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    good = [{"seq": 1, "type": "metric", "step": 1, "values": {"a": 0.5}},
            {"seq": 2, "type": "sample", "step": 1, "index": 0, "tokens": ["a"], "future_kl": [0.1]},
            {"seq": 3, "type": "eval", "benchmark": "aime", "k": 4}]
    assert not list(validator.iter_errors(good))
    for bad in ({"seq": 0, "type": "log", "text": ""}, {"seq": 1, "type": "metric", "step": -1, "values": {}},
                {"seq": 1, "type": "status", "state": "done"}, {"seq": 1, "type": "nope"}):
        assert list(validator.iter_errors([bad])), bad
