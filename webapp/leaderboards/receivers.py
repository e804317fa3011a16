"""Signal receivers: the tracking ingest's ``eval_ingested`` -> the run's leaderboard entry.

Called inside the ingest transaction with the run row locked, so the entry and the stored event
commit together. An invalid payload raises ``ValidationFailed`` (logged by the sender's
``send_robust``; the event itself stays in the run's stream).
"""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from webapp.leaderboards.services import entry_record_eval
from webapp.tracking.signals import eval_ingested


@receiver(eval_ingested, dispatch_uid="leaderboards.record_eval")
def record_ingested_eval(sender: Any, *, run: Any, event: dict[str, Any], **_: Any) -> None:
    entry_record_eval(run=run, data=event)
