"""Small helpers shared by the apps: iso timestamps, query-parameter parsing (JSON: ``parsers``)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from webapp.common.errors import ValidationFailed
from webapp.common.parsers import check_storable, loads_lenient

__all__ = ["check_storable", "float_param", "int_param", "iso", "loads_lenient"]


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z suffix (what every API field of type iso uses)."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def int_param(params: Mapping[str, str], name: str, *, default: int | None = None, lo: int | None = None,
              hi: int | None = None) -> int | None:
    """An integer query parameter, with the error naming it when it is not an integer in range."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValidationFailed(f"{name} must be an integer", fields=[{"path": name, "message": "an integer"}]) from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValidationFailed(f"{name} out of range", fields=[{"path": name, "message": f"between {lo} and {hi}"}])
    return value


def float_param(params: Mapping[str, str], name: str) -> float | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValidationFailed(f"{name} must be a number", fields=[{"path": name, "message": "a number"}]) from None
    if value != value:  # NaN
        raise ValidationFailed(f"{name} must be a number", fields=[{"path": name, "message": "a number"}])
    return value
