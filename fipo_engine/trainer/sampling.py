"""DAPO dynamic sampling (FIPO_SPEC.md §2.2): keep only groups whose outcome varies.

A group whose responses are all correct or all wrong has zero advantage everywhere under GRPO,
so it only dilutes the batch. The recipe filters on the unpenalised correctness (``acc``), not on
the penalised score, and keeps groups of size 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GroupFilter:
    """Which groups (by index) survive, and why the others did not."""

    kept: list[int]
    all_correct: list[int]
    all_wrong: list[int]

    @property
    def total(self) -> int:
        return len(self.kept) + len(self.all_correct) + len(self.all_wrong)


def filter_groups(correct: Sequence[bool], group_size: int) -> GroupFilter:
    """Split ``len(correct) / group_size`` contiguous groups into kept / all-correct / all-wrong.

    ``correct[i]`` belongs to group ``i // group_size``; a group is kept when its correctness has
    non-zero population std (some right, some wrong) or when it has a single member.
    """
    if group_size < 1 or len(correct) % group_size:
        raise ValueError(f"{len(correct)} responses do not form groups of {group_size}")
    kept, all_correct, all_wrong = [], [], []
    for g in range(len(correct) // group_size):
        members = correct[g * group_size: (g + 1) * group_size]
        if group_size == 1 or 0 < sum(members) < group_size:
            kept.append(g)
        elif all(members):
            all_correct.append(g)
        else:
            all_wrong.append(g)
    return GroupFilter(kept, all_correct, all_wrong)


def enough_groups(num_kept: int, train_batch_size: int, num_gen_batches: int, max_num_gen_batches: int) -> bool:
    """Stop drawing generation batches: the train batch is full, or the limit (0 = none) is reached."""
    if num_kept >= train_batch_size:
        return True
    return max_num_gen_batches > 0 and num_gen_batches >= max_num_gen_batches
