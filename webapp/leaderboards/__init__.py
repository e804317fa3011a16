"""Leaderboards: Pass@1 (avg@k) per benchmark for runs, checkpoints, external models and the paper."""
