"""Tracking: a local JSONL spool plus a background sender to the control plane (never blocks training)."""

from fipo_engine.tracking.client import Tracker
from fipo_engine.tracking.spool import ACK_NAME, SPOOL_NAME, Spool

__all__ = ["ACK_NAME", "SPOOL_NAME", "Spool", "Tracker"]
