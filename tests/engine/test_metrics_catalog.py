"""The metric catalog: well-formed entries, every §6 loss metric present, and only catalog names emitted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from fipo_engine import metrics_catalog as catalog
from fipo_engine.algorithms import PolicyLossConfig, policy_loss

OFFICIAL_LOSS_METRICS = [  # docs/spec.md §6, with the actor/ prefix
    "pg_loss", "pg_clipfrac", "ppo_kl", "pg_clipfrac_lower",
    "influence_weights_mean", "influence_weights_min", "influence_weights_max",
    "IW_upper_clip_ratio", "IW_lower_clip_ratio", "IW_overall_clip_ratio",
    "influence_weights_mean_raw", "raw_influence_weights_min", "raw_influence_weights_max",
    "neg_ratio_2_3", "neg_ratio_3_4", "neg_ratio_4_10", "neg_is_max", "neg_is_p995", "neg_is_p999", "neg_is_p75",
    "pos_is_max", "pos_is_median", "pos_is_p75", "pos_is_p995", "pos_is_p999", "pos_is_p25", "pos_is_min",
    "pos_mini_frac", "grad_norm",
]


def test_entries_are_well_formed_and_unique() -> None:
    names = [m.name for m in catalog.METRICS]
    assert len(names) == len(set(names))
    for metric in catalog.METRICS:
        assert re.fullmatch(r"[a-z_]+/[A-Za-z0-9_]+", metric.name), metric.name
        assert metric.group in catalog.GROUPS, metric.name
        assert metric.unit.strip() and metric.meaning.strip(), metric.name
        assert "\n" not in metric.meaning and len(metric.meaning) <= 120, metric.name


def test_lookup_helpers_and_json_export() -> None:
    assert catalog.get("actor/pg_loss").unit == "loss"
    assert catalog.get("actor/nope") is None
    assert catalog.is_known("actor/IW_upper_clip_ratio") and not catalog.is_known("IW_upper_clip_ratio")
    rows = json.loads(json.dumps(catalog.as_dicts()))
    assert rows[0].keys() == {"name", "group", "unit", "meaning"} and len(rows) == len(catalog.METRICS)


def test_every_official_loss_metric_is_documented() -> None:
    missing = [n for n in OFFICIAL_LOSS_METRICS if not catalog.is_known(f"actor/{n}")]
    assert missing == []
    assert catalog.is_known("actor/invalidated_seq_frac")


@pytest.mark.parametrize("name", ["ppo", "dapo", "fipo"])
def test_the_losses_emit_only_catalog_names(name: str) -> None:
    gen = torch.Generator().manual_seed(0)
    log_prob = torch.randn(4, 30, generator=gen)
    old = log_prob + torch.randn(4, 30, generator=gen)
    adv = torch.tensor([[1.0], [-1.0], [0.5], [-0.5]]).expand(4, 30)
    out = policy_loss(name, log_prob, old, adv, torch.ones(4, 30, dtype=torch.bool), PolicyLossConfig())
    assert [k for k in out.metrics if not catalog.is_known(k)] == []


def test_the_trainer_logs_only_catalog_names() -> None:
    """Every metric-like string literal in the trainer's source must be a catalog name."""
    prefixes = sorted({m.name.split("/")[0] for m in catalog.METRICS})
    pattern = re.compile(r"[\"']((?:" + "|".join(prefixes) + r")/[A-Za-z0-9_]+)[\"']")
    trainer = Path(catalog.__file__).parent / "trainer"
    found = {name for path in trainer.glob("*.py") for name in pattern.findall(path.read_text())}
    assert [n for n in sorted(found) if not catalog.is_known(n)] == []


def test_run_summary_keys_are_catalog_metrics() -> None:
    """The runs list shows these; a renamed metric would leave its column empty without this check."""
    assert all(catalog.is_known(k) for k in catalog.RUN_SUMMARY_KEYS)
