"""The tracking client against a real HTTP server on 127.0.0.1 that is down, slow, then up."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from fipo_engine.tracking import Spool, Tracker


class IngestServer:
    """A minimal control-plane ingest endpoint: stores each (seq) once, answers acked_seq.

    ``received`` lists every event body it was sent (duplicates included) so a test can prove
    exactly-once delivery; ``hold`` (an Event) blocks request handling until set; events whose
    type is ``"poison"`` make a multi-event batch fail with 400 and are refused alone with 400.
    """

    def __init__(self, port: int, run_id: str = "7", token: str = "tok") -> None:
        self.stored: dict[int, dict] = {}
        self.received: list[dict] = []
        self.hold = threading.Event()
        self.hold.set()
        self.auth_failures = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

            def do_POST(self) -> None:
                outer.hold.wait(10)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != f"/api/v1/runs/{run_id}/events":
                    return self._answer(404, {"error": {"code": "not_found"}})
                if self.headers.get("Authorization") != f"Bearer {token}":
                    outer.auth_failures += 1
                    return self._answer(401, {"error": {"code": "not_authenticated"}})
                if any(e.get("type") == "poison" for e in body):
                    return self._answer(400, {"error": {"code": "validation_error"}})
                outer.received.extend(body)
                for event in body:
                    outer.stored.setdefault(event["seq"], event)
                acked = 0
                while acked + 1 in outer.stored:
                    acked += 1
                self._answer(200, {"acked_seq": acked, "accepted": len(body), "duplicates": 0, "rejected": []})

            def _answer(self, code: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> IngestServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fast_tracker(run_dir: Path, port: int, **kw) -> Tracker:
    return Tracker(run_dir, server=f"http://127.0.0.1:{port}", run_id="7", token="tok",
                   backoff_initial=0.02, backoff_max=0.1, max_batch_events=16, **kw)


def test_down_then_up_every_event_arrives_exactly_once_in_order(tmp_path: Path) -> None:
    port = free_port()
    tracker = fast_tracker(tmp_path, port)
    # Server down: training goes on, everything lands in the spool.
    for step in range(1, 41):
        tracker.metric(step, {"reward/mean": step / 10})
    assert tracker.spool.last_seq == 40
    assert tracker.acked_seq == 0
    deadline = time.monotonic() + 10
    while tracker.stats["failures"] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert tracker.stats["failures"] >= 2  # it did try (and retry) in the background, and failed

    with IngestServer(port) as server:
        for step in range(41, 81):
            tracker.metric(step, {"reward/mean": step / 10})
        tracker.sample(80, 0, prompt="1+1", response="2", reward=1.0, correct=True, tokens=["2"],
                       logprob=[-0.1], entropy=[float("nan")])
        assert tracker.close(timeout=20)

    seqs = [e["seq"] for e in server.received]
    assert seqs == list(range(1, 82))  # exactly once, in order
    assert [e["step"] for e in server.received[:80]] == list(range(1, 81))
    assert server.received[-1]["entropy"] == [None]  # NaN travels as null
    assert all("_time" not in e for e in server.received)  # local-only keys stay in the spool
    assert Spool(tmp_path).read_ack() == 81


def test_training_never_waits_on_a_hanging_server(tmp_path: Path) -> None:
    port = free_port()
    with IngestServer(port) as server:
        server.hold.clear()  # the server accepts connections but does not answer
        tracker = fast_tracker(tmp_path, port)
        tracker.metric(0, {"reward/mean": 0.0})
        for step in range(1, 200):
            tracker.metric(step, {"reward/mean": 0.0})
        # All 200 events are on disk while the first request is still stuck in the server.
        assert tracker.spool.last_seq == 200
        assert server.received == []
        server.hold.set()
        assert tracker.close(timeout=20)
    assert [e["seq"] for e in server.received] == list(range(1, 201))


def test_resume_continues_seq_and_does_not_resend(tmp_path: Path) -> None:
    port = free_port()
    with IngestServer(port) as server:
        first = fast_tracker(tmp_path, port)
        for step in range(5):
            first.metric(step, {"reward/mean": 0.0})
        assert first.close(timeout=10)
        second = fast_tracker(tmp_path, port)  # a resumed process on the same run directory
        seq = second.status("running", "resumed")
        assert seq == 6
        assert second.close(timeout=10)
    assert [e["seq"] for e in server.received] == [1, 2, 3, 4, 5, 6]


def test_undelivered_events_are_sent_by_the_next_process(tmp_path: Path) -> None:
    port = free_port()
    offline = fast_tracker(tmp_path, port)
    for step in range(3):
        offline.metric(step, {"reward/mean": 0.0})
    assert not offline.close(timeout=0.2)  # server down: not delivered, kept in the spool
    with IngestServer(port) as server:
        again = fast_tracker(tmp_path, port)
        again.metric(3, {"reward/mean": 0.0})
        assert again.close(timeout=10)
    assert [e["seq"] for e in server.received] == [1, 2, 3, 4]


def test_a_refused_event_is_dropped_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    with IngestServer(port) as server:
        tracker = fast_tracker(tmp_path, port)
        server.hold.clear()  # queue everything up so the poison shares a batch with good events
        tracker.metric(1, {"reward/mean": 0.0})
        tracker.emit("poison", step=2)
        tracker.metric(3, {"reward/mean": 0.0})
        server.hold.set()
        with caplog.at_level("WARNING", logger="fipo.tracking"):
            assert tracker.close(timeout=10)
    assert [e["seq"] for e in server.received] == [1, 3]
    assert "seq=2" in caplog.text


def test_a_refused_token_stops_sending_but_keeps_the_spool(tmp_path: Path) -> None:
    port = free_port()
    with IngestServer(port, token="other") as server:
        tracker = fast_tracker(tmp_path, port)
        tracker.metric(1, {"reward/mean": 0.0})
        assert not tracker.close(timeout=10)
        assert server.auth_failures == 1
    assert [e["seq"] for e in Spool(tmp_path).events()] == [1]


def test_a_torn_last_line_is_cut_on_reopen(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.append({"type": "log", "text": "a"})
    spool.close()
    with open(tmp_path / "events.jsonl", "a") as fh:
        fh.write('{"seq": 2, "type": "lo')  # a crash mid-write
    reopened = Spool(tmp_path)
    assert reopened.last_seq == 1
    assert reopened.append({"type": "log", "text": "b"}) == 2
    reopened.close()
    assert [e["text"] for e in Spool(tmp_path).events()] == ["a", "b"]
