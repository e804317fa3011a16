"""``fipo eval --report-lines``: the log protocol an eval job is followed by, whatever its launcher.

The reader gets the log in arbitrary chunks (a local file read 1 MiB at a time, a Ray driver log
sliced by byte offset), so a line split between two reads must be held, not parsed half."""

from __future__ import annotations

import pytest

from fipo_engine.eval.report import ReportReader, parse_reports, report_line


def test_lines_round_trip_and_noise_is_skipped() -> None:
    progress = {"done": 1, "total": 3, "pass_at_1": 0.5}
    text = "\n".join([
        "Loading weights...",
        "\rsampling:  33%|###     " + "\r" + report_line("progress", progress),  # a bar's leftovers before it
        "fipo-eval progress {not json",
        "fipo-eval unknown {}",
        report_line("result", {"pass_at_1": 0.25, "text": "a\nb"}),  # a newline inside a value stays escaped
    ])
    assert list(parse_reports(text)) == [("progress", progress), ("result", {"pass_at_1": 0.25, "text": "a\nb"})]
    with pytest.raises(ValueError, match="unknown report kind"):
        report_line("other", {})


def test_reader_holds_a_line_split_between_reads() -> None:
    log = "\n".join([report_line("progress", {"done": 1}), report_line("responses", {"id": "p1", "responses": ["x"]}),
                     report_line("progress", {"done": 2}), report_line("result", {"pass_at_1": 1.0})]) + "\n"
    for cut in range(1, len(log), 7):  # every way of splitting the log in two
        reader = ReportReader()
        reader.feed(log[:cut])
        assert reader.result is None or cut >= len(log) - 1
        reader.feed(log[cut:])
        assert (reader.progress, reader.result) == ({"done": 2}, {"pass_at_1": 1.0})
        assert reader.responses == {"p1": {"id": "p1", "responses": ["x"]}}
    reader = ReportReader()
    assert reader.feed(report_line("progress", {"done": 1}) + "\n") is True
    assert reader.feed(report_line("progress", {"done": 1}) + "\n") is False  # unchanged
