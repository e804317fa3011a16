"""Small helpers shared by the apps: iso timestamps, query-parameter parsing (JSON: ``parsers``)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime

from webapp.common.errors import ValidationFailed
from webapp.common.parsers import check_storable, loads_lenient

__all__ = ["check_storable", "float_param", "int_param", "iso", "loads_lenient", "parse_int", "parse_int_list"]

# ASCII digits only: ``str.isdigit()`` and ``int()`` also take "²" or "١٢" (and int("²") then fails).
_INT = re.compile(r"^-?[0-9]{1,19}$")
_FLOAT = re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")
BIGINT_MAX = 2**63 - 1


def parse_int(raw: str | None, *, lo: int = -BIGINT_MAX - 1, hi: int = BIGINT_MAX) -> int | None:
    """The one parser of integer query parameters: ASCII digits within [lo, hi], else None."""
    if raw is None or not _INT.match(raw):
        return None
    value = int(raw)
    return value if lo <= value <= hi else None


def parse_int_list(raw: str | None, *, lo: int = 1, hi: int = BIGINT_MAX, limit: int = 100) -> list[int]:
    """Comma-separated integers (``?runs=1,2``); parts that are not integers in range are skipped."""
    values = (parse_int(part.strip(), lo=lo, hi=hi) for part in (raw or "").split(",")[:limit])
    return [v for v in values if v is not None]


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z suffix (what every API field of type iso uses)."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def int_param(params: Mapping[str, str], name: str, *, default: int | None = None, lo: int | None = None,
              hi: int | None = None) -> int | None:
    """An integer query parameter, with the error naming it when it is not an integer in range."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    value = parse_int(raw)
    if value is None:
        raise ValidationFailed(f"{name} must be an integer", fields=[{"path": name, "message": "an integer"}])
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValidationFailed(f"{name} out of range", fields=[{"path": name, "message": f"between {lo} and {hi}"}])
    return value


def float_param(params: Mapping[str, str], name: str) -> float | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    value = float(raw) if _FLOAT.match(raw) else math.nan
    if not math.isfinite(value):  # not a plain decimal, NaN, or beyond a double
        raise ValidationFailed(f"{name} must be a number", fields=[{"path": name, "message": "a finite number"}])
    return value
