"""The run configuration (fipo_engine/config.py) and PolicyLossConfig: recipe defaults, presets,
JSON Schema, dotted overrides, and errors that name the field path."""

from __future__ import annotations

import json
import math

import pydantic
import pytest

from fipo_engine.algorithms import PolicyLossConfig
from fipo_engine.algorithms.config import FIPO_7B_LOSS
from fipo_engine.config import (
    SCHEMA_VERSION,
    ConfigError,
    RewardConfig,
    RunConfig,
    apply_overrides,
    json_schema,
    preset,
    preset_dict,
    preset_names,
    validate_config,
)
from fipo_engine.registry import (
    ADVANTAGE_ESTIMATORS,
    AGGREGATIONS,
    DATA_SOURCES,
    GRADERS,
    LAUNCHERS,
    POLICY_LOSSES,
    Registry,
)


# ------------------------------------------------------------------------------ PolicyLossConfig
def test_policy_loss_defaults_are_the_32b_recipe() -> None:
    """docs/spec.md §7 / §11.3."""
    cfg = PolicyLossConfig()
    assert (cfg.clip_ratio_low, cfg.clip_ratio_high, cfg.clip_ratio_c) == (0.2, 0.28, 10.0)
    assert (cfg.decay_rate, cfg.future_kl_clip_ratio, cfg.future_kl_clip_high_only) == (32.0, 0.2, True)
    assert (cfg.safety_thresh, cfg.loss_agg_mode, cfg.chunk_size) == (10.0, "token-mean", 128)
    assert (cfg.future_kl_start, cfg.future_kl_window, cfg.future_kl_average) == ("include_current", -1, False)
    assert cfg.participation_filter == "all_tokens"
    assert cfg.gamma == pytest.approx(0.97857, abs=1e-5) and cfg.gamma ** 32 == pytest.approx(0.5)


def test_policy_loss_presets() -> None:
    assert PolicyLossConfig.preset("fipo-32b") == PolicyLossConfig()
    seven = PolicyLossConfig.preset("fipo-7b")
    assert (seven.future_kl_clip_high_only, seven.safety_thresh, seven.decay_rate) == (False, 3.0, 32.0)
    assert PolicyLossConfig.fipo_7b(safety_thresh=None).safety_thresh is None  # overrides win
    assert PolicyLossConfig.preset("dapo-32b").clip_ratio_high == 0.28
    with pytest.raises(KeyError, match="valid: fipo-32b, fipo-7b, dapo-32b"):
        PolicyLossConfig.preset("fipo-70b")


def test_policy_loss_config_is_frozen_and_strict() -> None:
    cfg = PolicyLossConfig()
    with pytest.raises(pydantic.ValidationError):
        cfg.decay_rate = 8.0  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="extra"):
        PolicyLossConfig(clip_ratio=0.2)  # type: ignore[call-arg]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"clip_ratio_c": 1.2}, "clip_ratio_c must exceed 1 \\+ clip_ratio_high"),
    ({"decay_rate": 0.5}, "greater than or equal to 1"),
    ({"loss_agg_mode": "mean"}, "unknown loss_agg_mode 'mean'; valid: seq-mean-token-mean"),
    ({"future_kl_start": "middle"}, "include_current"),
    ({"participation_filter": "positive"}, "negative_advantage_only"),
    ({"future_kl_window": -2}, "greater than or equal to -1"),
    ({"safety_thresh": 0.0}, "greater than 0"),
    ({"clip_ratio_low": 1.0}, "less than 1"),
])
def test_policy_loss_config_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=message):
        PolicyLossConfig(**kwargs)


# --------------------------------------------------------------------------------------- RunConfig
def test_run_config_defaults_reproduce_the_32b_recipe() -> None:
    cfg = RunConfig()
    assert (cfg.algorithm.advantage_estimator, cfg.algorithm.policy_loss) == ("grpo", "fipo")
    assert cfg.algorithm.loss == PolicyLossConfig()
    assert (cfg.algorithm.kl_coef, cfg.algorithm.entropy_coeff) == (0.0, 0.0)
    t = cfg.trainer
    assert (t.train_batch_size, t.gen_batch_size, t.ppo_mini_batch_size, t.ppo_epochs, t.shuffle) == (512, 2048, 64, 1,
                                                                                                      False)
    assert t.train_batch_size // t.ppo_mini_batch_size == 8  # 8 optimizer steps per rollout batch (§11.7)
    assert (t.lr, t.warmup_steps, t.weight_decay, t.grad_clip) == (1e-6, 10, 0.1, 1.0)
    assert (t.dynamic_sampling, t.max_num_gen_batches, t.eval_every, t.save_every) == (True, 10, 5, 5)
    assert (t.eval_temperature, t.eval_top_p) == (1.0, 0.7)
    r = cfg.rollout
    assert (r.n, r.temperature, r.top_p, r.top_k, r.max_new_tokens) == (16, 1.0, 1.0, -1, 20480)
    assert cfg.data.max_prompt_length == 2048
    buf = cfg.reward.overlong_buffer
    assert (buf.enable, buf.length, buf.penalty_factor) == (True, 4096, 1.0)
    assert (cfg.reward.correct_score, cfg.reward.incorrect_score) == (1.0, -1.0)


def test_every_preset_validates_and_records_its_name() -> None:
    assert preset_names() == ["fipo-32b", "fipo-7b", "dapo-32b", "cpu-demo", "cot-demo", "smollm2-gsm",
                              "smollm2-arith"]
    for name in preset_names():
        cfg = preset(name)
        assert cfg.preset == name
        assert validate_config(json.loads(cfg.to_json())) == cfg  # JSON round trip


def test_7b_and_dapo_presets_follow_the_paper() -> None:
    seven = preset("fipo-7b")
    assert seven.algorithm.loss == PolicyLossConfig.fipo_7b()
    assert (seven.rollout.n, seven.rollout.max_new_tokens, seven.reward.overlong_buffer.length) == (32, 10240, 2048)
    dapo = preset("dapo-32b")
    assert dapo.algorithm.policy_loss == "dapo"
    assert (dapo.trainer.gen_batch_size, dapo.trainer.ppo_mini_batch_size) == (1536, 32)
    big = preset("fipo-32b")
    assert (big.launcher.backend, big.launcher.ray.num_nodes, big.launcher.ray.gpus_per_node) == ("ray", 16, 8)
    assert big.rollout.tensor_parallel_size == 4


def test_cpu_demo_is_small() -> None:
    demo = preset("cpu-demo")
    assert demo.model.source == "tiny" and demo.rollout.max_new_tokens <= 64
    assert demo.trainer.train_batch_size // demo.trainer.ppo_mini_batch_size > 1  # FIPO needs >1 update (§11.7)


def test_smollm2_arith_is_sized_for_a_cpu() -> None:
    cfg = preset("smollm2-arith")
    assert cfg.model.source == "smollm2" and cfg.trainer.device == "auto" and cfg.rollout.backend == "hf"
    assert cfg.trainer.train_batch_size * cfg.rollout.n <= 32 and cfg.rollout.max_new_tokens <= 64
    assert cfg.trainer.train_batch_size // cfg.trainer.ppo_mini_batch_size > 1  # FIPO needs >1 update (§11.7)
    assert cfg.rollout.temperature < 1.0 and cfg.trainer.max_num_gen_batches <= 2


def test_unknown_preset_fails_with_the_path() -> None:
    with pytest.raises(ConfigError) as err:
        preset_dict("fipo-1t")
    assert err.value.errors == [{"path": "preset", "message": "unknown preset 'fipo-1t'; valid: fipo-32b, fipo-7b, "
                                 "dapo-32b, cpu-demo, cot-demo, smollm2-gsm, smollm2-arith"}]


# ------------------------------------------------------------------------------------------ errors
def test_invalid_values_fail_with_every_field_path_and_reason() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config({
            "algorithm": {"advantage_estimator": "gae", "loss": {"decay_rate": 0.5}},
            "trainer": {"train_batch_size": 10, "ppo_mini_batch_size": 4},
            "model": {"source": "hf"},
            "launcher": {"backend": "slurm"},
        })
    errors = {e["path"]: e["message"] for e in err.value.errors}
    assert errors["algorithm.advantage_estimator"] == "unknown advantage_estimator 'gae'; valid: dr_grpo, grpo, rloo"
    assert "greater than or equal to 1" in errors["algorithm.loss.decay_rate"]
    assert errors["trainer"] == "train_batch_size must be a multiple of ppo_mini_batch_size"
    assert errors["model"] == "model.path is required when model.source is 'hf'"
    assert errors["launcher.backend"] == "unknown backend 'slurm'; valid: local, ray"
    assert "algorithm.advantage_estimator: unknown" in str(err.value)


def test_cross_section_and_version_checks() -> None:
    with pytest.raises(ConfigError, match=r"overlong_buffer\.length must be smaller"):
        validate_config({"rollout": {"max_new_tokens": 100}, "reward": {"overlong_buffer": {"length": 100}}})
    with pytest.raises(ConfigError, match=f"this build reads {SCHEMA_VERSION}"):
        validate_config({"schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(ConfigError, match="unknown policy_loss 'grpo'; valid: dapo, fipo, ppo"):
        validate_config({"algorithm": {"policy_loss": "grpo"}})
    with pytest.raises(ConfigError, match="Extra inputs"):
        validate_config({"trainer": {"learning_rate": 1e-6}})


# --------------------------------------------------------------------------------------- overrides
def test_dotted_overrides_parse_command_line_strings() -> None:
    base = preset("cpu-demo")
    cfg = apply_overrides(base, {"trainer.lr": "2e-6", "algorithm.loss.decay_rate": "64",
                                 "algorithm.loss.safety_thresh": "null", "trainer.betas": "[0.9, 0.95]",
                                 "model.path": "runs/ckpt", "algorithm.policy_loss": "dapo"})
    assert cfg.trainer.lr == 2e-6 and cfg.algorithm.loss.decay_rate == 64.0
    assert cfg.algorithm.loss.safety_thresh is None and cfg.trainer.betas == (0.9, 0.95)
    assert cfg.model.path == "runs/ckpt" and cfg.algorithm.policy_loss == "dapo"
    assert base.trainer.lr == 3e-4  # the base is untouched
    assert cfg.preset == "cpu-demo"


def test_overrides_on_a_partial_dict_are_applied_before_validation() -> None:
    cfg = apply_overrides({"trainer": {"lr": -1.0, "seed": 5}}, {"trainer.lr": 1e-5})
    assert cfg.trainer.lr == 1e-5 and cfg.trainer.seed == 5 and cfg.trainer.train_batch_size == 512
    with pytest.raises(ConfigError) as err:  # still invalid: a ConfigError with the path, not pydantic's error
        apply_overrides({"trainer": {"lr": -1.0}}, {"trainer.seed": 3})
    assert err.value.errors == [{"path": "trainer.lr", "message": "Input should be greater than 0"}]


def test_unknown_override_paths_are_named() -> None:
    with pytest.raises(ConfigError) as err:
        apply_overrides(RunConfig(), {"trainer.nope": 1, "foo.bar": 2})
    assert err.value.errors == [{"path": "trainer.nope", "message": "no such config field"},
                                {"path": "foo", "message": "no such config section"}]
    with pytest.raises(ConfigError, match=r"algorithm\.loss\.decay_rate"):
        apply_overrides(RunConfig(), {"algorithm.loss.decay_rate": "0.1"})


# ------------------------------------------------------------------------------------------ schema
def test_json_schema_documents_every_leaf_field() -> None:
    schema = json_schema()
    assert set(schema["properties"]) == {"schema_version", "preset", "algorithm", "model", "data", "rollout",
                                         "reward", "trainer", "launcher"}
    loss = schema["$defs"]["PolicyLossConfig"]["properties"]
    assert loss["decay_rate"]["default"] == 32.0 and "half-life" in loss["decay_rate"]["description"]
    assert loss["participation_filter"]["enum"] == ["all_tokens", "negative_advantage_only", "none"]
    for name, model in schema["$defs"].items():
        for field, spec in model["properties"].items():
            if "$ref" not in spec:
                assert spec.get("description"), f"{name}.{field} has no description"
    json.dumps(schema)  # serialisable as is


def test_the_loss_config_inside_the_run_config_is_the_algorithm_one() -> None:
    cfg = apply_overrides(RunConfig(), {"algorithm.loss.decay_rate": 1e9})
    assert isinstance(cfg.algorithm.loss, PolicyLossConfig)
    assert math.isclose(cfg.algorithm.loss.gamma, 2 ** (-1e-9))


# Every config field whose value names a registry entry: (dotted path, registry).
def _registry_fields() -> list[tuple[str, Registry]]:
    return [("algorithm.advantage_estimator", ADVANTAGE_ESTIMATORS), ("algorithm.policy_loss", POLICY_LOSSES),
            ("algorithm.loss.loss_agg_mode", AGGREGATIONS), ("reward.name", GRADERS),
            ("data.source", DATA_SOURCES), ("launcher.backend", LAUNCHERS)]


def _schema_property(schema: dict, dotted: str) -> dict:
    """The JSON Schema of the field at ``dotted``, following ``$ref``s into ``$defs``."""
    node = schema
    for part in dotted.split("."):
        node = node["properties"][part]
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def test_schema_lists_registry_names_as_enums() -> None:
    """The web form renders enums as selects: the choices must be exactly what validation accepts."""
    schema = json_schema()
    for dotted, registry in _registry_fields():
        spec = _schema_property(schema, dotted)
        assert spec["enum"] == registry.names() and spec["type"] == "string", dotted
        assert spec["description"] and "default" in spec, dotted  # Field() metadata is kept
    assert _schema_property(schema, "reward.name")["enum"] == ["exact", "math", "reasoning_gym",
                                                               "reasoning_gym_last_number"]
    assert _schema_property(schema, "data.source")["enum"] == ["chain_sum", "champ", "file", "reasoning_gym"]
    assert _schema_property(schema, "launcher.backend")["enum"] == ["local", "ray"]


@pytest.mark.parametrize("dotted", [path for path, _ in _registry_fields()])
def test_an_unknown_registry_name_fails_validation_naming_the_field(dotted: str) -> None:
    """Not at train time: ``reward.name: "nope"`` used to validate and fail only in the trainer."""
    registry = dict(_registry_fields())[dotted]
    with pytest.raises(ConfigError) as err:
        apply_overrides(RunConfig(), {dotted: "nope"})
    leaf = dotted.rsplit(".", 1)[-1]
    assert err.value.errors == [{"path": dotted,
                                 "message": f"unknown {leaf} 'nope'; valid: {', '.join(registry.names())}"}]
    for name in registry.names():  # and every listed name is accepted
        cfg = apply_overrides(RunConfig(), {dotted: name, "data.path": "p.jsonl", "model.path": "m"})
        node: object = cfg
        for part in dotted.split("."):
            node = getattr(node, part)
        assert node == name


def test_reward_name_nope_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"reward\.name: unknown name 'nope'; valid: exact, math"):
        validate_config({"reward": {"name": "nope"}})
    with pytest.raises(pydantic.ValidationError) as err:
        RewardConfig(name="nope")
    assert err.value.errors()[0]["loc"] == ("name",) and err.value.errors()[0]["type"] == "unknown_name"


def test_the_7b_loss_preset_has_one_definition() -> None:
    assert preset_dict("fipo-7b")["algorithm"] == {"loss": dict(FIPO_7B_LOSS)}
    assert PolicyLossConfig.fipo_7b().model_dump(exclude_defaults=True) == dict(FIPO_7B_LOSS)
