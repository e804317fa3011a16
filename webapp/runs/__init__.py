"""Runs: the stored run config, its lifecycle (guarded transitions), launch/cancel tasks, checkpoints."""
