"""The native trainer: ``train(cfg, out_dir)`` and the ``fipo train`` command (``trainer.cli``).

Imports are lazy so ``import fipo_engine.trainer`` stays cheap (no torch until training starts).
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainResult", "train"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from fipo_engine.trainer import loop

        return getattr(loop, name)
    raise AttributeError(name)
