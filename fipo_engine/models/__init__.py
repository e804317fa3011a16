"""Policy models that work offline: a tiny Llama, SmolLM2-135M (GGUF), or a local HF directory."""

from fipo_engine.models.loader import (
           Policy,
           load_hf_dir,
           load_policy,
           resolve_device,
           save_policy,
           smollm2_dir,
)
from fipo_engine.models.tokenizer import build_char_tokenizer

__all__ = ["Policy", "build_char_tokenizer", "load_hf_dir", "load_policy", "resolve_device", "save_policy",
           "smollm2_dir"]
