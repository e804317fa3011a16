"""The per-token channel catalog: every array a ``sample`` event may carry beside its tokens.

The companion of ``fipo_engine.metrics_catalog`` for per-token values. One list read by the trainer
(which loss output fills a channel), the OpenRLHF forwarder (what it sends), the ingest protocol
(``fipo_engine.tracking.protocol`` documents these names in its JSON Schema), the API
(``GET /api/v1/tracking/channels``, the per-position summary) and the samples page's heatmap
(label, help text and colour scale). Add a channel here before sending it.

A sample may carry other lists of numbers too: the server keeps them, and the page shows them in
the token tooltip but offers no colouring for them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

#: ``diverging``: values on both sides of ``neutral`` mean opposite things (two hues around white);
#: ``sequential``: values lie on one side of ``neutral`` and only their distance matters.
Scale = Literal["diverging", "sequential"]


@dataclass(frozen=True)
class TokenChannel:
    """One per-token channel: what it means and how the heatmap colours it.

    ``neutral`` is the value drawn white (the colour scale's centre). ``palette`` names an
    11-class ColorBrewer palette the page knows (``RdBu``: blue below neutral, red above).
    ``colour``: offered as a colouring on the samples page (otherwise tooltip only).
    ``position``: summarised by token position over a step (``samples/positions/``).
    ``loss_output``: the ``PolicyLossOutput`` attribute that holds it, for channels the policy loss
    computes (None: the trainer has it before the loss runs).
    """

    name: str
    label: str
    meaning: str
    unit: str
    scale: Scale
    neutral: float
    palette: str = "RdBu"
    colour: bool = True
    position: bool = False
    loss_output: str | None = None


_C = TokenChannel
#: In display order: the samples page offers the colourings in this order, the first by default.
CHANNELS: tuple[TokenChannel, ...] = (
    _C("future_kl", "future-KL", "Discounted sum of future log-ratios (red: the policy moved up on what follows).",
       "nats", "diverging", 0.0, position=True, loss_output="future_kl"),
    _C("influence", "influence weight", "FIPO weight exp(F) after clipping (red: > 1, amplified).",
       "ratio", "diverging", 1.0, position=True, loss_output="influence_weights"),
    _C("advantage", "advantage", "Outcome advantage of the token (red: reinforced, blue: penalised).",
       "advantage", "diverging", 0.0),
    _C("weighted_advantage", "weighted advantage", "Advantage × influence weight: what the update uses.",
       "advantage", "diverging", 0.0, loss_output="weighted_advantages"),
    _C("ratio", "ratio", "Importance ratio π/π_old (red: > 1).", "ratio", "diverging", 1.0, loss_output="ratio"),
    _C("log_ratio", "log-ratio", "Clamped log π − log π_old: what future-KL sums (red: the policy moved up).",
       "nats", "diverging", 0.0, loss_output="log_ratio"),
    _C("logprob", "logprob", "Log-probability under the current policy (blue: surprising tokens).",
       "nats", "sequential", 0.0),
    _C("old_logprob", "old logprob", "Log-probability under the sampling policy.", "nats", "sequential", 0.0,
       colour=False),
    _C("entropy", "entropy", "Entropy of the next-token distribution (red: uncertain).", "nats", "sequential", 0.0),
)

BY_NAME: dict[str, TokenChannel] = {c.name: c for c in CHANNELS}
if len(BY_NAME) != len(CHANNELS):  # pragma: no cover - guarded by a test too
    raise RuntimeError("duplicate channel name in the catalog")

#: Every catalog name, in display order.
NAMES: tuple[str, ...] = tuple(BY_NAME)
#: The channels the per-position summary averages.
POSITION_NAMES: tuple[str, ...] = tuple(c.name for c in CHANNELS if c.position)


def get(name: str) -> TokenChannel | None:
    return BY_NAME.get(name)


def names(*, exclude: tuple[str, ...] = ()) -> tuple[str, ...]:
    """Catalog names in display order without ``exclude`` (each must be a catalog name: a typo fails here)."""
    unknown = set(exclude) - BY_NAME.keys()
    if unknown:
        raise KeyError(f"not in the token-channel catalog: {sorted(unknown)}")
    return tuple(name for name in NAMES if name not in exclude)


def loss_outputs() -> dict[str, str]:
    """Channel name -> ``PolicyLossOutput`` attribute, for the channels the policy loss computes."""
    return {c.name: c.loss_output for c in CHANNELS if c.loss_output is not None}


def as_dicts() -> list[dict[str, Any]]:
    """The catalog as JSON-ready dicts (served by the API, read by the heatmap)."""
    return [asdict(c) for c in CHANNELS]
