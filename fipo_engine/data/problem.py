"""The one record every data source produces: a problem with a verifiable answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """A prompt and its ground truth, whatever the source (reasoning-gym, JSONL/Parquet, CHAMP).

    ``prompt`` is plain text or a list of chat messages (``{"role", "content"}``) as in the
    DAPO-Math parquet layout. ``metadata`` keeps what a grader may need (for reasoning-gym, the
    generator's entry so its own ``score_answer`` can be called).
    """

    id: str
    prompt: str | list[dict[str, str]]
    answer: str
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)
