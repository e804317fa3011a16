"""Tracking: the ingest endpoint, metric/sample storage, the per-run stream and its websockets."""
