"""Hooks for other apps. ``eval_ingested`` is sent inside the ingest transaction for every stored
``eval`` event (kwargs: ``run`` (the locked Run), ``event`` (the clean payload dict), ``seq``), so a
receiver (the leaderboards app) writes its rows atomically with the event. Receivers are called with
``send_robust``: an exception is logged and does not reject the batch."""

from django.dispatch import Signal

eval_ingested = Signal()
