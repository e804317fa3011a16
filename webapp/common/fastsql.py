"""Multi-row INSERTs for the hot ingest path, same SQL on PostgreSQL and SQLite.

Django's ``bulk_create`` spends ~0.1-0.3 ms of Python per row preparing values; a tracking batch
is thousands of rows, so the two hot tables (metric points, stream items) are written with plain
``INSERT ... VALUES (...), (...)`` statements here. Values must already be database-ready.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from django.db import connection

_MAX_PARAMS = 30_000  # below SQLite's 32,766 variables per statement; PostgreSQL allows 65,535


def insert_rows(table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, suffix: str = "",
                placeholders: Sequence[str] | None = None, pg_types: Sequence[str] | None = None) -> None:
    """``INSERT INTO table (columns) VALUES ... <suffix>`` in chunks; ``placeholders`` lets a column
    use e.g. ``%s::jsonb``. On PostgreSQL, with ``pg_types`` (one SQL type per column), the rows go
    as one array per column through ``unnest``: a handful of parameters instead of thousands, which
    saves most of the driver's per-statement work."""
    if not rows:
        return
    q = connection.ops.quote_name
    if pg_types is not None and connection.vendor == "postgresql" and not suffix:
        # Plain appends: COPY, whose row encoding runs in psycopg's C code (no SQL text to build).
        cols = ", ".join(q(c) for c in columns)
        with connection.cursor() as cursor, cursor.cursor.copy(f"COPY {q(table)} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    if pg_types is not None and connection.vendor == "postgresql":
        arrays = [list(col) for col in zip(*rows, strict=True)]
        sources = ", ".join(f"%s::{t}[]" for t in pg_types)
        sql = f"INSERT INTO {q(table)} ({', '.join(q(c) for c in columns)}) SELECT * FROM unnest({sources}) {suffix}"
        with connection.cursor() as cursor:  # (measured: 3x faster than VALUES rows for 500 points)
            cursor.execute(sql, arrays)
        return
    marks = "(" + ", ".join(placeholders or ["%s"] * len(columns)) + ")"
    head = f"INSERT INTO {q(table)} ({', '.join(q(c) for c in columns)}) VALUES "
    per_chunk = max(1, _MAX_PARAMS // len(columns))
    with connection.cursor() as cursor:
        for start in range(0, len(rows), per_chunk):
            chunk = rows[start : start + per_chunk]
            cursor.execute(head + ", ".join([marks] * len(chunk)) + (" " + suffix if suffix else ""),
                           [value for row in chunk for value in row])


# PostgreSQL array literals, passed as one text parameter and cast (``%s::integer[]``): building the
# literal is one C-level join, where the driver would adapt every element through Python.
def int_array(values: Iterable[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


def float_array(values: Iterable[float]) -> str:
    """Finite floats only; ``repr`` is the shortest text that reads back as the same double."""
    return "{" + ",".join(map(float.__repr__, values)) + "}"


def text_array(values: Iterable[str]) -> str:
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


def json_placeholder() -> str:
    """Placeholder of a JSON value passed as text (jsonb needs a cast on PostgreSQL)."""
    return "%s::jsonb" if connection.vendor == "postgresql" else "%s"


def json_param(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def datetime_param(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)
