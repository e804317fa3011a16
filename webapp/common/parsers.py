"""JSON parsing that refuses what the database cannot store (imported by DRF settings, so it must
not import the error module, which imports DRF's views)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser


class UnstorableText(ValueError):
    """A string PostgreSQL cannot store (NUL, or a lone surrogate that is not valid UTF-8)."""


def check_storable(value: Any, _depth: int = 0) -> None:
    """Raise ``UnstorableText`` if any string (key or value) in a JSON value cannot be stored.

    PostgreSQL rejects NUL in text and jsonb, and psycopg cannot encode lone surrogates that
    ``json.loads`` happily produces from ``"\\ud800"``; checking here turns both into a 400
    instead of a database error.
    """
    if _depth > 200:
        raise UnstorableText("nested too deeply")
    if isinstance(value, str):
        if "\x00" in value:
            raise UnstorableText("strings must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise UnstorableText("strings must be valid unicode (no lone surrogates)") from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            check_storable(key, _depth + 1)
            check_storable(item, _depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            check_storable(item, _depth + 1)


BIGINT_MAX = 2**63 - 1


def number_problem(value: Any, path: str = "", _depth: int = 0) -> tuple[str, str] | None:
    """The first (dotted path, reason) of a number no column or JSON reader can hold: a non-finite
    float (``1e999`` parses as infinity) or an integer beyond 64 bits. None when there is none."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, "numbers must be finite")
    if isinstance(value, int) and not isinstance(value, bool):
        return None if -BIGINT_MAX - 1 <= value <= BIGINT_MAX else (path, "integer out of range (64-bit)")
    if _depth > 200:
        return None  # check_storable refuses such nesting
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = number_problem(item, f"{path}.{key}" if path else str(key), _depth + 1)
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = number_problem(item, f"{path}.{i}" if path else str(i), _depth + 1)
            if found:
                return found
    return None


def loads_lenient(raw: bytes, *, check: bool = True) -> Any:
    """Parse a JSON body; NaN/Infinity become None (the tracking client sends null, others may not).

    Raises ``ValueError`` (for unstorable strings too, unless ``check`` is off because the caller
    checks item by item) with a message.
    """
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=lambda _c: None)
    except UnicodeDecodeError:
        raise ValueError("body is not UTF-8") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON: {exc}") from None
    if check:
        check_storable(data)
    return data


class StrictJSONParser(JSONParser):
    """DRF's JSON parser (NaN/Infinity refused) that also refuses strings the database cannot store."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
        try:
            check_storable(data)
        except UnstorableText as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        problem = number_problem(data)
        if problem is not None:  # a 400 naming the field, e.g. overrides.trainer.lr: numbers must be finite
            raise ValidationError({problem[0]: [problem[1]]} if problem[0] else [problem[1]])
        return data
