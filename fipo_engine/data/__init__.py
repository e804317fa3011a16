"""Datasets: the ``Problem`` record, file readers, sources and the seeded prompt stream."""

from fipo_engine.data.problem import Problem
from fipo_engine.data.sources import PromptStream, load_problems, render_prompt

__all__ = ["Problem", "PromptStream", "load_problems", "render_prompt"]
