"""``fipo eval --report-lines``: progress, responses and the result as lines of the job's own log.

Why: a launcher that only sees a job's log (a Ray job: the control plane reads its driver log over
the Jobs REST API, never the node's disk) still has to show live progress and record the entry with
every response. Each report is one line, ``fipo-eval <kind> <compact JSON>``, printed whole and
flushed, so a reader that gets the log in arbitrary chunks (and with tqdm or warnings around it)
parses exactly the lines that are complete:

    fipo-eval progress {"done": 3, "total": 30, "samples": 12, "correct": 5, "pass_at_1": 0.41}
    fipo-eval responses {"id": "p1", "responses": [...], "lengths": [...], "truncated": [...]}
    fipo-eval result {... the --json result ...}

The local eval job uses the same lines (from its log file), so one reader serves every launcher.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

PREFIX = "fipo-eval "
KINDS = ("progress", "responses", "result")


def report_line(kind: str, data: dict[str, Any]) -> str:
    """The log line of one report (no newline)."""
    if kind not in KINDS:
        raise ValueError(f"unknown report kind {kind!r}")
    return f"{PREFIX}{kind} {json.dumps(data, separators=(',', ':'), ensure_ascii=True)}"


def emit(kind: str, data: dict[str, Any], stream: TextIO | None = None) -> None:
    """Print one report line, whole, and flush it (the reader may be polling the log right now)."""
    out = stream or sys.stdout
    out.write(report_line(kind, data) + "\n")
    out.flush()


def parse_reports(text: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(kind, data) of every complete report line in ``text``; anything else is skipped.

    A line may carry a progress bar's carriage-return prefix (tqdm on the same terminal): only what
    follows the last ``\\r`` counts."""
    for raw in text.split("\n"):
        line = raw.rsplit("\r", 1)[-1]
        if not line.startswith(PREFIX):
            continue
        kind, _, payload = line[len(PREFIX):].partition(" ")
        if kind not in KINDS:
            continue
        try:
            data = json.loads(payload)
        except ValueError:
            continue
        if isinstance(data, dict):
            yield kind, data


def encode_file(content: bytes) -> str:
    """A file as one environment string (gzip + base64): how an eval job on Ray carries a stored
    benchmark to ``fipo eval --benchmark-env`` (``decode_file`` reads it back)."""
    return base64.b64encode(gzip.compress(content, mtime=0)).decode("ascii")


def decode_file(encoded: str) -> bytes:
    """The bytes ``encode_file`` wrote; ``ValueError`` naming the problem when ``encoded`` is not that."""
    try:
        return gzip.decompress(base64.b64decode(encoded, validate=True))
    except (binascii.Error, OSError, EOFError) as exc:
        raise ValueError(f"not gzip + base64 ({exc})") from None


@dataclass
class ReportReader:
    """Follows a growing log: ``feed`` each new chunk; the newest progress, every problem's
    responses and the result accumulate. A line split across two chunks is held until it ends."""

    progress: dict[str, Any] | None = None
    responses: dict[str, dict[str, Any]] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    _partial: str = ""

    def feed(self, chunk: str) -> bool:
        """Add a chunk of log text; True when the progress changed."""
        text = self._partial + chunk
        complete, _, self._partial = text.rpartition("\n")
        changed = False
        for kind, data in parse_reports(complete):
            if kind == "progress":
                changed = changed or data != self.progress
                self.progress = data
            elif kind == "responses" and "id" in data:
                self.responses[str(data["id"])] = data
            elif kind == "result":
                self.result = data
        return changed
