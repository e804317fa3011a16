"""The ingest path of the tracking protocol: one batch of events from a trainer, in one transaction.

* idempotent on (run, seq): a seq already held is a duplicate, counted and skipped;
* every valid event is kept; each invalid one is answered with its seq and the reason, and recorded
  as a ``log`` stream item so that it still counts as held (``acked_seq`` never sticks on it);
* metric points are bulk-upserted into the narrow (key, step) -> value table, samples compressed;
* any request counts as a heartbeat; the first event moves a starting (or lost) run to running;
  ``status`` events finish the run; after a cancel request, a ``failed`` report means ``cancelled``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from fipo_engine.metrics_catalog import RUN_SUMMARY_KEYS
from webapp.common.auth import token_hash
from webapp.common.errors import NotAuthenticated, PayloadTooLarge, PermissionDeniedError, ValidationFailed
from webapp.common.fastsql import insert_rows
from webapp.runs.models import FINAL_STATUSES, Checkpoint, Run, RunStatus, StreamItem
from webapp.runs.services import run_lock, run_transition_locked
from webapp.runs.stream import stream_append
from webapp.tracking.codec import pack_sample_arrays
from webapp.tracking.events import Event, Rejected, parse_event, seq_of
from webapp.tracking.models import MetricKey, MetricPoint, Sample
from webapp.tracking.signals import eval_ingested
from webapp.tracking.tiles import ingest_points_sql, refresh_tiles

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_BATCH = 20_000
PROMPT_PREVIEW = 300


@dataclass
class IngestResult:
    acked_seq: int
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"acked_seq": self.acked_seq, "accepted": self.accepted, "duplicates": self.duplicates,
                "rejected": self.rejected}


def sample_summary(sample: Sample, prompt: str | None = None) -> dict[str, Any]:
    """The list-endpoint shape of a sample (also the ``sample`` stream item's data)."""
    text = sample.prompt if prompt is None else prompt
    return {"id": sample.pk, "step": sample.step, "index": sample.index, "prompt": text[:PROMPT_PREVIEW],
            "reward": sample.reward, "correct": sample.correct, "length": sample.length,
            "minibatch": sample.minibatch, "num_minibatches": sample.num_minibatches}


def _split(raw_events: Iterable[Any], held: set[int], check_text: bool
           ) -> tuple[list[Event], list[tuple[int | None, str]], int]:
    """Valid new events (seq order), rejections (seq, reason), and the number of duplicates."""
    valid: list[Event] = []
    rejected: list[tuple[int | None, str]] = []
    duplicates = 0
    seen: set[int] = set()
    for raw in raw_events:
        seq = seq_of(raw)
        if seq is not None and (seq in held or seq in seen):
            duplicates += 1
            continue
        try:
            event = parse_event(raw, check_text=check_text)
        except Rejected as exc:
            rejected.append((seq, str(exc)))
        else:
            valid.append(event)
        if seq is not None:
            seen.add(seq)
    valid.sort(key=lambda e: e.seq)
    return valid, rejected, duplicates


def events_ingest(*, run_id: int, events: Any, check_text: bool = True) -> IngestResult:
    """Store one batch of events for a run (see the module docstring). ``check_text=False`` when the
    caller proved the raw body holds no NUL/surrogate escapes (``events.body_may_hold_unstorable``)."""
    _check_batch(events)
    with transaction.atomic():
        return _ingest_locked(run_lock(run_id), events, check_text)


def events_ingest_with_token(*, run_id: int, token: str, events: Any = None, check_text: bool = True,
                             body_error: Exception | None = None) -> IngestResult:
    """The ingest endpoint: authenticate the run token and lock its run in one query, then ingest.

    Answers in the order the API promises: unknown token (401), another run's token or a finished run
    (403), then ``body_error`` (the view's 413 / malformed JSON, raised only once the token is known
    good), then the batch checks of ``events_ingest``."""
    with transaction.atomic():
        run = (Run.objects.select_for_update().defer("config").filter(token_hash=token_hash(token)).first()
               if token else None)
        if run is None:
            raise NotAuthenticated("invalid run token")
        if run.pk != run_id:
            raise PermissionDeniedError("this run token belongs to another run")
        _check_open(run)
        if body_error is not None:
            raise body_error
        _check_batch(events)
        return _ingest_locked(run, events, check_text)


def metric_value_count(events: list[Any]) -> int:
    """Metric values in a batch (what the points cap counts)."""
    return sum(len(e["values"]) for e in events
               if type(e) is dict and e.get("type") == "metric" and type(e.get("values")) is dict)


def _check_batch(events: Any) -> None:
    if not isinstance(events, list):
        raise ValidationFailed("the body must be a JSON list of events",
                               fields=[{"path": "", "message": "expected a list"}])
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise ValidationFailed(f"at most {MAX_EVENTS_PER_BATCH} events per request",
                               fields=[{"path": "", "message": "too many events"}])
    # One batch is one transaction holding the run's lock (and on SQLite the database's write lock):
    # bounded, so one team's big batch cannot keep another team's writes waiting for long.
    limit = settings.FIPO_INGEST_MAX_POINTS
    points = metric_value_count(events)
    if points > limit:
        raise PayloadTooLarge(f"at most {limit} metric values per request (this one has {points}); "
                              "send them in smaller batches")


def _check_open(run: Run) -> None:
    if run.status in FINAL_STATUSES or run.status == RunStatus.DRAFT:
        raise PermissionDeniedError(f"run {run.pk} is {run.status}: its token no longer accepts events")


def _ingest_locked(run: Run, events: list[Any], check_text: bool) -> IngestResult:
    """The batch, with ``run`` locked (``select_for_update``) inside the caller's transaction."""
    _check_open(run)
    seqs = [s for s in (seq_of(raw) for raw in events) if s is not None]
    held = _held(run, seqs)
    valid, rejected, duplicates = _split(events, held, check_text)
    result = IngestResult(acked_seq=run.acked_seq, duplicates=duplicates)
    pending: list[tuple[str, dict[str, Any]]] = []
    _store(run, valid, rejected, result, pending)
    run.last_heartbeat = timezone.now()
    stored = {e.seq for e in valid} | {seq for seq, _ in rejected if seq is not None}
    run.acked_seq, run.max_seq = _acked(run, stored)
    _save_progress(run, pending)
    result.acked_seq = run.acked_seq  # (stream_append sent the websocket notice after commit)
    return result


_PROGRESS_FIELDS = ("last_heartbeat", "acked_seq", "max_seq", "stream_pos", "last_step", "summary", "updated_at")
_progress_sql: str | None = None


def _save_progress(run: Run, pending: list[tuple[str, dict[str, Any]]]) -> None:
    """What ``run.save(update_fields=_PROGRESS_FIELDS)`` writes (``updated_at`` is ``auto_now``), as
    one precompiled UPDATE sent in the same execute as the statements still ``pending`` (PostgreSQL's
    points statement): the batch's last round trip before COMMIT. Runs have no save signals."""
    global _progress_sql
    fields = [Run._meta.get_field(name) for name in _PROGRESS_FIELDS]
    if _progress_sql is None:
        q = connection.ops.quote_name
        _progress_sql = (f"UPDATE {q(Run._meta.db_table)} SET "
                         + ", ".join(f"{q(f.column)} = %(run_{f.attname})s" for f in fields)
                         + f" WHERE {q(Run._meta.pk.column)} = %(run_pk)s")
    run.updated_at = timezone.now()
    params: dict[str, Any] = {f"run_{f.attname}": f.get_db_prep_save(getattr(run, f.attname), connection)
                              for f in fields}
    params["run_pk"] = run.pk
    statements = [sql for sql, _ in pending] + [_progress_sql]
    for _, more in pending:  # distinct parameter names (tiles.ingest_points_sql uses none of run_*)
        params.update(more)
    with connection.cursor() as cursor:
        cursor.execute(";\n".join(statements), params)


def _held(run: Run, seqs: list[int]) -> set[int]:
    """Which of these seqs the run already holds (none, without a query, when all are new)."""
    if not seqs:
        return set()
    lo, hi = min(seqs), max(seqs)
    if lo > run.max_seq:
        return set()
    qs = StreamItem.objects.filter(run_id=run.pk)
    qs = qs.filter(seq__gte=lo, seq__lte=hi) if hi - lo < 2 * len(seqs) else qs.filter(seq__in=set(seqs))
    return set(qs.values_list("seq", flat=True))


def _acked(run: Run, stored: set[int]) -> tuple[int, int]:
    """(highest contiguous seq held, highest seq held) after storing ``stored``.

    The usual batch continues the sequence with no gap before or inside it: that needs no query."""
    top = max(stored, default=0)
    max_seq = max(run.max_seq, top)
    if run.max_seq == run.acked_seq and (not stored or (min(stored) == run.acked_seq + 1
                                                        and top - run.acked_seq == len(stored))):
        return max_seq, max_seq
    return _contiguous(run), max_seq


def _contiguous(run: Run) -> int:
    """Highest seq such that every seq from 1 to it is held (one short query)."""
    acked = run.acked_seq
    above = StreamItem.objects.filter(run_id=run.pk, seq__gt=acked).order_by("seq").values_list("seq", flat=True)
    for seq in above.iterator(chunk_size=2000):
        if seq != acked + 1:
            break
        acked = seq
    return acked


def _store(run: Run, valid: list[Event], rejected: list[tuple[int | None, str]], result: IngestResult,
           pending: list[tuple[str, dict[str, Any]]]) -> None:
    items: list[tuple[str, dict[str, Any], int | None]] = []
    if valid and run.status in {RunStatus.STARTING, RunStatus.LOST}:
        reason = "first event received" if run.status == RunStatus.STARTING else "events arrived again"
        run_transition_locked(run=run, to=RunStatus.RUNNING, reason=reason)

    _store_metrics(run, [e for e in valid if e.type == "metric"], pending)
    samples = _store_samples(run, [e for e in valid if e.type == "sample"], rejected)
    rejected_seqs = {seq for seq, _ in rejected}
    for event in valid:
        if event.seq in rejected_seqs:  # rejected while storing (duplicate sample)
            continue
        result.accepted += 1
        if event.type == "status":
            items.extend(_status_items(run, event, flush=items))
        elif event.type == "metric":
            items.append(("metric", event.payload, event.seq))
        elif event.type == "sample":
            items.append(("sample", sample_summary(samples[event.seq]), event.seq))
        elif event.type == "checkpoint":
            Checkpoint.objects.create(run=run, step=event.payload["step"], uri=event.payload["uri"])
            items.append(("checkpoint", event.payload, event.seq))
        elif event.type == "eval":
            items.append(("eval", event.payload, event.seq))
            for receiver, response in eval_ingested.send_robust(sender=Run, run=run, event=event.payload, seq=event.seq):
                if isinstance(response, Exception):
                    logger.error("eval_ingested receiver %s failed for run %s: %r", receiver, run.pk, response)
        else:
            items.append(("log", event.payload, event.seq))
    for seq, reason in rejected:
        result.rejected.append({"seq": seq, "reason": reason})
        if seq is not None:  # held as a log line, so acked_seq moves past it and the UI shows why
            items.append(("log", {"text": f"event seq {seq} rejected: {reason}", "rejected": True}, seq))
    stream_append(run=run, items=items)


def _status_items(run: Run, event: Event, flush: list[tuple[str, dict[str, Any], int | None]]
                  ) -> list[tuple[str, dict[str, Any], int | None]]:
    """Apply a ``status`` event. A real transition appends its own status item (carrying the seq), so
    the items gathered so far are appended first to keep stream order == seq order."""
    state, message = event.payload["state"], event.payload["message"]
    target = state
    if state == RunStatus.FAILED and run.cancel_requested_at is not None:
        target = RunStatus.CANCELLED
        message = f"cancelled (trainer reported: {message or 'failed'})"
    if target == run.status:
        return [("log", {"text": f"status {state}" + (f": {message}" if message else "")}, event.seq)]
    stream_append(run=run, items=flush)
    flush.clear()
    run_transition_locked(run=run, to=target, reason=message or f"trainer reported {state}", seq=event.seq)
    return []


def _store_metrics(run: Run, events: list[Event], pending: list[tuple[str, dict[str, Any]]]) -> None:
    """Points, tiles, and the run's summary. On PostgreSQL the points statement is appended to
    ``pending`` (sent with the run's UPDATE at the end of the batch; nothing in between reads points)."""
    if not events:
        return
    if connection.vendor == "postgresql":
        _store_points_pg(run, events, pending)
    else:
        _store_points(run, events)
    # The run's summary: each headline metric at the newest step it was logged (events of one step
    # may carry different metrics, so walk them all in (step, seq) order).
    summary = dict(run.summary or {})
    for event in sorted(events, key=lambda e: (e.payload["step"], e.seq)):
        step = event.payload["step"]
        if run.last_step is None or step >= run.last_step:
            run.last_step = step
            summary.update({k: event.payload["values"][k] for k in RUN_SUMMARY_KEYS if k in event.payload["values"]})
    run.summary = summary


def _store_points_pg(run: Run, events: list[Event], pending: list[tuple[str, dict[str, Any]]]) -> None:
    """PostgreSQL: keys, points and both tile widths as one statement (``tiles.ingest_points_sql``)."""
    points: dict[tuple[str, int], float] = {}
    for event in events:  # seq order: a later event for the same (name, step) wins
        step = event.payload["step"]
        for name, value in event.payload["values"].items():
            points[(name, step)] = value
    if not points:
        return
    pending.append(ingest_points_sql(run.pk, points))


def _store_points(run: Run, events: list[Event], pending: list[tuple[str, dict[str, Any]]] | None = None) -> None:
    """Any database (SQLite): key lookup, multi-row upsert of the points, then the tiles."""
    names = sorted({name for e in events for name in e.payload["values"]})
    keys = dict(MetricKey.objects.filter(run_id=run.pk, name__in=names).values_list("name", "id"))
    missing = [MetricKey(run_id=run.pk, name=name) for name in names if name not in keys]
    if missing:
        for key in MetricKey.objects.bulk_create(missing):
            keys[key.name] = key.pk
    points: dict[tuple[int, int], float] = {}
    for event in events:  # seq order: a later event for the same (key, step) wins
        step = event.payload["step"]
        for name, value in event.payload["values"].items():
            points[(keys[name], step)] = value
    insert_rows(MetricPoint._meta.db_table, ["key_id", "step", "value"], [(k, s, v) for (k, s), v in points.items()],
                suffix="ON CONFLICT (key_id, step) DO UPDATE SET value = excluded.value",
                pg_types=["bigint", "integer", "double precision"])
    touched: dict[int, set[int]] = {}
    for key_id, step in points:
        touched.setdefault(key_id, set()).add(step)
    refresh_tiles(touched)


def _store_samples(run: Run, events: list[Event], rejected: list[tuple[int | None, str]]) -> dict[int, Sample]:
    if not events:
        return {}
    wanted = {(e.payload["step"], e.payload["index"]) for e in events}
    steps = {s for s, _ in wanted}
    taken = set(Sample.objects.filter(run_id=run.pk, step__in=steps).values_list("step", "index"))
    rows: dict[int, Sample] = {}
    for event in events:
        p = event.payload
        where = (p["step"], p["index"])
        if where in taken:
            rejected.append((event.seq, f"a sample for step {where[0]} index {where[1]} is already stored"))
            continue
        taken.add(where)
        rows[event.seq] = Sample(
            run_id=run.pk, step=p["step"], index=p["index"], prompt=p["prompt"], response=p["response"],
            reward=p["reward"], correct=p["correct"], length=p["length"], minibatch=p["minibatch"],
            num_minibatches=p["num_minibatches"], arrays=pack_sample_arrays(p["tokens"], p["channels"]),
        )
    Sample.objects.bulk_create(list(rows.values()))
    return rows
