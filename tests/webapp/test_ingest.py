"""The ingest endpoint of the tracking protocol, through HTTP with a run token."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from webapp.runs.models import Checkpoint, Run, RunStatus, StreamItem
from webapp.tracking.models import MetricPoint, Sample
from webapp.tracking.signals import eval_ingested

pytestmark = pytest.mark.django_db


def _bearer(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def _post(client: APIClient, run: Run, body: Any, *, raw: bool = False) -> Any:
    data = body if raw else json.dumps(body)
    return client.generic("POST", f"/api/v1/runs/{run.pk}/events", data, content_type="application/json")


def _metric(seq: int, step: int, **values: float) -> dict[str, Any]:
    return {"seq": seq, "type": "metric", "step": step, "values": values}


def test_batch_is_idempotent_on_run_and_seq(started_run: tuple[Run, str]) -> None:
    run, token = started_run
    client = _bearer(token)
    batch = [_metric(1, 0, loss=1.0), _metric(2, 1, loss=0.5), {"seq": 3, "type": "log", "text": "hi"}]
    first = _post(client, run, batch)
    assert first.status_code == 200
    assert first.json() == {"acked_seq": 3, "accepted": 3, "duplicates": 0, "rejected": []}
    again = _post(client, run, batch)
    assert again.json() == {"acked_seq": 3, "accepted": 0, "duplicates": 3, "rejected": []}
    assert MetricPoint.objects.count() == 2
    assert StreamItem.objects.filter(run=run, seq__isnull=False).count() == 3
    # a duplicate inside one batch counts once
    dup = _post(client, run, [_metric(4, 2, loss=0.1), _metric(4, 2, loss=0.2)])
    assert dup.json()["accepted"] == 1 and dup.json()["duplicates"] == 1


def test_acked_seq_is_the_highest_contiguous_seq(started_run: tuple[Run, str]) -> None:
    run, token = started_run
    client = _bearer(token)
    assert _post(client, run, [_metric(1, 0, a=1), _metric(2, 1, a=1), _metric(4, 3, a=1)]).json()["acked_seq"] == 2
    assert _post(client, run, [_metric(3, 2, a=1)]).json()["acked_seq"] == 4


def test_invalid_events_are_rejected_one_by_one_and_the_valid_ones_kept(started_run: tuple[Run, str]) -> None:
    run, token = started_run
    body = [
        _metric(1, 0, loss=1.0),
        {"seq": 2, "type": "metric", "step": -1, "values": {"loss": 1}},
        {"seq": 3, "type": "nope"},
        {"type": "log", "text": "no seq"},
        "not an object",
        {"seq": 6, "type": "sample", "step": 0, "index": 0, "tokens": ["a", "b"], "logprob": [0.1]},
        {"seq": 7, "type": "status", "state": "exploded"},
        {"seq": 8, "type": "metric", "step": 1, "values": {"loss": "high"}},
        {"seq": 9, "type": "log", "text": "bad \u0000 byte"},
        _metric(10, 2, loss=0.25),
    ]
    answer = _post(_bearer(token), run, body).json()
    assert answer["accepted"] == 2
    reasons = {r["seq"]: r["reason"] for r in answer["rejected"] if r["seq"] is not None}
    unnumbered = sorted(r["reason"] for r in answer["rejected"] if r["seq"] is None)
    assert set(reasons) == {2, 3, 6, 7, 8, 9}
    assert unnumbered == ["an event must be an object", "seq must be an integer between 1 and 4611686018427387904"]
    assert "step" in reasons[2] and "unknown type" in reasons[3]
    assert "1 values for 2 tokens" in reasons[6] and "state" in reasons[7] and "number" in reasons[8]
    assert "NUL" in reasons[9]
    # rejected seqs are held (as log lines saying why), so acked_seq does not stick on them
    assert answer["acked_seq"] == 3
    assert sorted(MetricPoint.objects.values_list("step", "value")) == [(0, 1.0), (2, 0.25)]


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2", b'{"seq": 1}', b"\xff\xfe", b"[" * 50_000 + b"]" * 50_000])
def test_malformed_bodies_are_400_with_the_error_shape(started_run: tuple[Run, str], body: bytes) -> None:
    run, token = started_run
    response = _post(_bearer(token), run, body, raw=True)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert Run.objects.get(pk=run.pk).status == RunStatus.STARTING  # nothing stored


def test_oversized_body_is_413(started_run: tuple[Run, str], settings: Any) -> None:
    run, token = started_run
    settings.FIPO_INGEST_MAX_BYTES = 2000
    body = [{"seq": 1, "type": "log", "text": "x" * 3000}]
    response = _post(_bearer(token), run, body)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    assert _post(_bearer(token), run, [{"seq": 1, "type": "log", "text": "x" * 100}]).status_code == 200


def test_a_big_batch_of_long_samples_is_accepted(started_run: tuple[Run, str]) -> None:
    """20k-token samples make multi-megabyte bodies: above Django's 2.5 MB form limit, below ours."""
    run, token = started_run
    n = 20_000
    body = [{"seq": i + 1, "type": "sample", "step": 1, "index": i, "prompt": "p", "response": "r" * n,
             "tokens": ["tok"] * n, "logprob": [-0.123456] * n, "entropy": [1.654321] * n} for i in range(6)]
    raw = json.dumps(body).encode()
    assert 2_621_440 < len(raw) < 16 * 1024 * 1024
    answer = _post(_bearer(token), run, raw, raw=True)
    assert answer.status_code == 200 and answer.json()["accepted"] == 6
    assert Sample.objects.filter(run=run).count() == 6


def test_any_request_is_a_heartbeat_and_the_first_event_means_running(started_run: tuple[Run, str]) -> None:
    run, token = started_run
    assert run.last_heartbeat is None
    assert _post(_bearer(token), run, b"", raw=True).status_code == 200
    run.refresh_from_db()
    assert run.last_heartbeat is not None and run.status == RunStatus.STARTING
    _post(_bearer(token), run, [{"seq": 1, "type": "status", "state": "running", "message": "go"}])
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_final_status_ends_the_token(started_run: tuple[Run, str]) -> None:
    run, token = started_run
    client = _bearer(token)
    answer = _post(client, run, [_metric(1, 5, **{"reward/mean": 0.75}), {"seq": 2, "type": "checkpoint", "step": 5,
                                 "uri": "file:///ckpt/5"}, _metric(3, 4, **{"reward/mean": 0.1}),
                                 _metric(4, 5, **{"accuracy/mean": 0.5}), {"seq": 5, "type": "status", "state": "succeeded"}])
    assert answer.json()["accepted"] == 5
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.summary["reward/mean"] == 0.75 and run.last_step == 5
    assert run.summary["accuracy/mean"] == 0.5  # logged by another event of the same step
    assert list(Checkpoint.objects.filter(run=run).values_list("step", "uri")) == [(5, "file:///ckpt/5")]
    refused = _post(client, run, [_metric(6, 6, loss=1)])
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"


def test_run_token_scoping(started_run: tuple[Run, str], start_run: Any, member: Any, team: Any,
                           client_for: Any) -> None:
    run, _ = started_run
    from webapp.runs.services import run_create

    other = run_create(user=member, team_id=team.pk, name="other", preset="cpu-demo")
    other_token = start_run(other)
    assert _post(_bearer(other_token), run, [_metric(1, 0, a=1)]).status_code == 403  # another run's token
    assert _post(_bearer("not-a-token"), run, [_metric(1, 0, a=1)]).status_code == 401
    assert _post(APIClient(), run, [_metric(1, 0, a=1)]).status_code == 401
    # a user's session or personal token is not a run token
    assert _post(client_for(member), run, [_metric(1, 0, a=1)]).status_code == 401
    assert _post(client_for(member, token=True), run, [_metric(1, 0, a=1)]).status_code == 401
    assert not MetricPoint.objects.exists()


def test_samples_are_stored_compactly_and_served(started_run: tuple[Run, str], client_for: Any,
                                                 member: Any) -> None:
    run, token = started_run
    tokens = ["The", " answer", " is", " 4"]
    sample = {"seq": 1, "type": "sample", "step": 3, "index": 0, "prompt": "2+2?" * 200, "response": "4",
              "reward": 1.0, "correct": True, "tokens": tokens, "logprob": [-0.5, -1.0, None, -0.25],
              "influence": [1.0, 0.8, 1.2, 1.0]}
    second = {**sample, "seq": 2, "index": 1, "reward": -1.0, "correct": False, "tokens": tokens[:2],
              "logprob": [-2.0, -3.0], "influence": [1.0, 1.0]}
    duplicate = {**sample, "seq": 3}
    answer = _post(_bearer(token), run, [sample, second, duplicate]).json()
    assert answer["accepted"] == 2 and answer["rejected"][0]["seq"] == 3
    assert "already stored" in answer["rejected"][0]["reason"]
    client = client_for(member)
    listing = client.get(f"/api/v1/runs/{run.pk}/samples/?order=-length").json()
    assert listing["steps"] == [3]
    assert [s["index"] for s in listing["results"]] == [0, 1]
    assert listing["results"][0]["length"] == 4 and len(listing["results"][0]["prompt"]) == 300
    worst = client.get(f"/api/v1/runs/{run.pk}/samples/?step=3&max_reward=0").json()["results"]
    assert [s["index"] for s in worst] == [1]
    detail = client.get(f"/api/v1/samples/{listing['results'][0]['id']}/").json()
    assert detail["tokens"] == tokens and detail["run"] == run.pk and detail["prompt"] == sample["prompt"]
    assert detail["channels"]["logprob"] == [-0.5, -1.0, None, -0.25]
    assert detail["channels"]["influence"] == pytest.approx([1.0, 0.8, 1.2, 1.0], abs=1e-3)
    assert Sample.objects.get(pk=detail["id"]).arrays.__len__() < 200


def test_samples_carry_their_mini_batch_and_bad_values_are_rejected_per_event(
        started_run: tuple[Run, str], client_for: Any, member: Any) -> None:
    run, token = started_run
    base = {"type": "sample", "step": 2, "prompt": "p", "response": "ab", "tokens": ["a", "b"],
            "future_kl": [0.5, 0.25], "influence": [1.2, 1.0]}
    good = [{**base, "seq": 1, "index": 0, "minibatch": 0, "num_minibatches": 4},
            {**base, "seq": 2, "index": 1, "minibatch": 3, "num_minibatches": 4},
            {**base, "seq": 3, "index": 2}]  # optional: older trainers do not send them
    bad = {4: {"minibatch": 4, "num_minibatches": 4}, 5: {"minibatch": -1}, 6: {"num_minibatches": 0},
           7: {"minibatch": 1.5}, 8: {"minibatch": True}, 9: {"num_minibatches": "4"},
           10: {"num_minibatches": 10**7}}
    events = good + [{**base, "seq": seq, "index": 10 + seq, **fields} for seq, fields in bad.items()]
    answer = _post(_bearer(token), run, events).json()
    assert answer["accepted"] == 3
    reasons = {r["seq"]: r["reason"] for r in answer["rejected"]}
    assert sorted(reasons) == sorted(bad)
    assert "below num_minibatches" in reasons[4] and "minibatch must be between" in reasons[5]
    assert "num_minibatches must be between" in reasons[6] and "must be an integer" in reasons[7]
    assert "must be an integer" in reasons[8] and "must be an integer" in reasons[9]
    stored = {s.index: (s.minibatch, s.num_minibatches) for s in Sample.objects.filter(run=run)}
    assert stored == {0: (0, 4), 1: (3, 4), 2: (None, None)}

    client = client_for(member)
    listing = client.get(f"/api/v1/runs/{run.pk}/samples/?step=2").json()
    assert [(s["minibatch"], s["num_minibatches"]) for s in listing["results"]] == [(0, 4), (3, 4), (None, None)]
    detail = client.get(f"/api/v1/samples/{listing['results'][1]['id']}/").json()
    assert (detail["minibatch"], detail["num_minibatches"]) == (3, 4)
    # the live stream's sample items carry them too
    items = [i.data for i in StreamItem.objects.filter(run=run, type="sample").order_by("pos")]
    assert [(i["minibatch"], i["num_minibatches"]) for i in items] == [(0, 4), (3, 4), (None, None)]


def test_samples_listing_explains_fipo_settings_and_summarises_positions(
        started_run: tuple[Run, str], client_for: Any, member: Any) -> None:
    import math

    from fipo_engine.config import RunConfig

    run, token = started_run
    events = [
        {"seq": 1, "type": "sample", "step": 1, "index": 0, "tokens": ["a", "b", "c"],
         "future_kl": [0.5, 0.25, None], "influence": [1.2, 1.0, 1.0]},
        {"seq": 2, "type": "sample", "step": 1, "index": 1, "tokens": ["a"], "future_kl": [0.25],
         "influence": [1.1]},
        {"seq": 3, "type": "sample", "step": 2, "index": 0, "tokens": ["z"], "future_kl": [9.0], "influence": [1.2]},
    ]
    assert _post(_bearer(token), run, events).json()["accepted"] == 3
    listing = client_for(member).get(f"/api/v1/runs/{run.pk}/samples/?step=1&min_reward=5").json()
    loss = RunConfig.model_validate(run.config).algorithm.loss
    fipo = listing["fipo"]
    assert fipo["policy_loss"] == run.config["algorithm"]["policy_loss"]
    assert fipo["gamma"] == pytest.approx(2 ** (-1 / loss.decay_rate))
    assert fipo["ln_c"] == pytest.approx(math.log(loss.clip_ratio_c))
    assert (fipo["weight_low"], fipo["weight_high"]) == (1.0, 1.0 + loss.future_kl_clip_ratio)
    assert fipo["safety_thresh"] == loss.safety_thresh and fipo["safety_band"] == [0.8, 1.0]
    assert listing["results"] == [] and listing["step"] == 1  # none passes min_reward=5
    # the position summary covers every sample of the step (default: the latest step)
    positions = client_for(member).get(f"/api/v1/runs/{run.pk}/samples/positions/?step=1").json()
    assert positions["step"] == 1 and positions["samples"] == 2
    assert positions["channels"]["future_kl"] == {"start": [0, 1, 2], "mean": [0.375, 0.25, None],
                                                  "count": [2, 1, 0]}
    assert positions["channels"]["influence"]["mean"] == pytest.approx([1.15, 1.0, 1.0], abs=1e-3)
    latest = client_for(member).get(f"/api/v1/runs/{run.pk}/samples/positions/").json()
    assert latest["step"] == 2 and latest["channels"]["future_kl"]["mean"] == [9.0]
    bad = client_for(member).get(f"/api/v1/runs/{run.pk}/samples/positions/?step=x")
    assert bad.status_code == 400 and "step" in bad.text


def test_position_profile_buckets_long_samples() -> None:
    import numpy as np

    from webapp.tracking.selectors import position_profile

    out = position_profile([np.ones(20_480), np.full(100, 3.0)], max_buckets=128)
    assert len(out["start"]) == 128 and out["start"][1] == 160
    assert out["mean"][0] == pytest.approx((160 + 300) / 260) and out["mean"][-1] == 1.0
    assert out["count"][0] == 260
    assert position_profile([]) == {"start": [], "mean": [], "count": []}


def test_fipo_settings_of_the_7b_setting_and_of_a_config_without_one() -> None:
    from fipo_engine.config import preset
    from webapp.tracking.fipo import fipo_settings

    seven = fipo_settings(preset("fipo-7b").model_dump(mode="json"))
    assert seven is not None and (seven["weight_low"], seven["weight_high"]) == (0.8, 1.2)
    assert seven["safety_thresh"] == 3.0
    assert fipo_settings({}) is None and fipo_settings(None) is None
    assert fipo_settings({"algorithm": {"loss": {"decay_rate": -1}}}) is None


def test_eval_events_reach_the_stream_and_the_hook(started_run: tuple[Run, str]) -> None:
    run, token = started_run
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any, run: Run, event: dict[str, Any], seq: int, **_: Any) -> None:
        seen.append(event)

    def broken(**_: Any) -> None:
        raise RuntimeError("a broken receiver must not reject the batch")

    eval_ingested.connect(receiver)
    eval_ingested.connect(broken)
    try:
        body = [{"seq": 1, "type": "eval", "benchmark": "aime-2024", "step": 10, "pass_at_1": 0.5, "k": 4}]
        assert _post(_bearer(token), run, body).json()["accepted"] == 1
    finally:
        eval_ingested.disconnect(receiver)
        eval_ingested.disconnect(broken)
    assert seen and seen[0]["benchmark"] == "aime-2024" and seen[0]["pass_at_1"] == 0.5
    item = StreamItem.objects.get(run=run, seq=1)
    assert item.type == "eval" and item.data["k"] == 4


def test_nan_and_infinity_literals_are_no_value(started_run: tuple[Run, str]) -> None:
    run, token = started_run
    body = b'[{"seq": 1, "type": "metric", "step": 0, "values": {"a": NaN, "b": Infinity, "c": 1.5}}]'
    assert _post(_bearer(token), run, body, raw=True).json()["accepted"] == 1
    assert list(MetricPoint.objects.values_list("value", flat=True)) == [1.5]


# ---------------------------------------------------------------------------------- fuzzing
_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                     st.floats(allow_nan=False), st.text(max_size=12))
_json = st.recursive(_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                     max_leaves=12)
_event = st.fixed_dictionaries(
    {"seq": st.one_of(st.integers(min_value=-3, max_value=40), _scalars),
     "type": st.sampled_from(["metric", "sample", "status", "checkpoint", "eval", "log", "x"])},
    optional={"step": st.one_of(st.integers(min_value=-2, max_value=2**33), _scalars),
              "index": st.one_of(st.integers(min_value=0, max_value=3), _scalars),
              "values": st.one_of(st.dictionaries(st.text(max_size=6), _scalars, max_size=4), _json),
              "tokens": st.one_of(st.lists(st.text(max_size=3), max_size=4), _json),
              "logprob": st.one_of(st.lists(_scalars, max_size=4), _json),
              "state": st.one_of(st.sampled_from(["running", "failed", "succeeded"]), _scalars),
              "uri": _scalars, "text": _scalars, "benchmark": _scalars, "prompt": _json, "reward": _scalars},
)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(body=st.one_of(st.lists(_event, max_size=6), _json))
def test_fuzzed_batches_never_500(started_run: tuple[Run, str], body: Any) -> None:
    run, token = started_run
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)  # a fuzzed "succeeded" must not end the run
    response = _post(_bearer(token), run, body)
    assert response.status_code in (200, 400), response.content
    data = response.json()
    if response.status_code == 200:
        assert set(data) == {"acked_seq", "accepted", "duplicates", "rejected"}
        assert data["accepted"] + data["duplicates"] + len(data["rejected"]) <= len(body)
    else:
        assert data["error"]["code"] == "validation_error"


def test_unstorable_text_is_found_by_the_body_prefilter(started_run: tuple[Run, str]) -> None:
    from webapp.tracking.events import body_may_hold_unstorable

    assert body_may_hold_unstorable(json.dumps({"a": "x\x00"}).encode())
    assert body_may_hold_unstorable(b'{"a": "\\uDC00"}')
    assert not body_may_hold_unstorable(json.dumps({"a": "caf\u00e9 \u20ac"}).encode())
    run, token = started_run
    body = b'[{"seq": 1, "type": "log", "text": "\\ud800 lone"}, {"seq": 2, "type": "log", "text": "fine"}]'
    answer = _post(_bearer(token), run, body, raw=True).json()
    assert answer["accepted"] == 1 and answer["rejected"][0]["seq"] == 1 and "surrogate" in answer["rejected"][0]["reason"]
