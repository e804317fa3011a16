"""DAPO dynamic sampling (docs/spec.md §2.2): keep only groups whose outcome varies.

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


# A step whose generation batches keep too few groups would otherwise draw up to
# ``max_num_gen_batches`` batches (the recipe's 10: ten times a normal step) and still not fill.
# Drawing stops early when, at the keep rate seen so far, the remaining batches up to the limit
# would leave the train batch less than this full.
MIN_PROJECTED_FILL = 0.5


def projected_kept(num_kept: int, groups_seen: int, groups_per_batch: int, num_gen_batches: int,
                   max_num_gen_batches: int) -> float:
    """Groups expected to be kept by the time ``max_num_gen_batches`` batches are drawn, at the rate so far."""
    if groups_seen == 0:
        return float(num_kept)
    rate = num_kept / groups_seen
    return num_kept + rate * groups_per_batch * max(0, max_num_gen_batches - num_gen_batches)


def stop_drawing(num_kept: int, groups_seen: int, train_batch_size: int, groups_per_batch: int,
                 num_gen_batches: int, max_num_gen_batches: int) -> str | None:
    """Why to stop drawing generation batches now (``full``, ``limit``, ``hopeless``), or None to draw more.

    ``hopeless``: even all the batches the limit still allows would, at the keep rate seen so far,
    fill less than ``MIN_PROJECTED_FILL`` of the train batch (for instance no group has had mixed
    rewards yet), so they would cost their time for little; the step trains on what it has. With
    no limit (``max_num_gen_batches = 0``) drawing goes on until the batch is full, as asked.
    """
    if num_kept >= train_batch_size:
        return "full"
    if max_num_gen_batches <= 0:
        return None
    if num_gen_batches >= max_num_gen_batches:
        return "limit"
    expected = projected_kept(num_kept, groups_seen, groups_per_batch, num_gen_batches, max_num_gen_batches)
    if expected < MIN_PROJECTED_FILL * train_batch_size:
        return "hopeless"
    return None


def underfill_message(step: int, *, trained: int, train_batch_size: int, num_gen_batches: int, reason: str,
                      kept: int, all_correct: int, all_wrong: int, accuracy: float, group_size: int,
                      max_num_gen_batches: int) -> str:
    """One line saying that a step trained on fewer groups than asked, and why.

    >>> underfill_message(3, trained=2, train_batch_size=16, num_gen_batches=1, reason="hopeless", kept=2,
    ...                   all_correct=0, all_wrong=62, accuracy=0.01, group_size=4, max_num_gen_batches=10)[:70]
    'step 3: trained on 2 of 16 groups: only 2 of 64 groups had mixed rewar'
    """
    seen = kept + all_correct + all_wrong
    batches = f"{num_gen_batches} generation batch{'es' if num_gen_batches != 1 else ''}"
    if reason == "limit":
        why = f"stopped at trainer.max_num_gen_batches={max_num_gen_batches}"
    else:
        why = f"stopped after {batches}: the {max_num_gen_batches} allowed would not fill half of it at this rate"
    if accuracy < 0.05:
        cause = f"accuracy is near 0 on this data ({accuracy:.2f}): too hard for the model"
    elif accuracy > 0.95:
        cause = f"accuracy is near 1 on this data ({accuracy:.2f}): too easy for the model"
    else:
        cause = f"accuracy {accuracy:.2f}, yet groups of {group_size} rarely mix"
    return (f"step {step}: trained on {trained} of {train_batch_size} groups: only {kept} of {seen} groups had "
            f"mixed rewards ({all_wrong} all wrong, {all_correct} all correct); {cause}; {why} "
            f"(sampling/fill_fraction tracks this every step)")
