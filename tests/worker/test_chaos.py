"""The fast chaos scenarios on a real stack (``tests/worker/chaos.py``; all of them: ``bench/chaos.py``).

Heartbeat window shortened to 6 s (reaper every second) so a killed trainer is ``lost`` in seconds;
the web outage is 8 s instead of the bench's 30. Each test asserts the scenario's own verdict and
prints its measured row (``pytest -s``).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.worker import chaos
from tests.worker.stack import LiveStack, live_stack

# Each scenario trains for real; on a loaded 2-core machine one (with the stack's start) can pass 300 s.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

HEARTBEAT_S = 6.0
GRACE_S = 15.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(tmp_path_factory.mktemp("chaos"), tag="chaos", FIPO_HEARTBEAT_TIMEOUT_S=str(HEARTBEAT_S),
                    FIPO_REAP_INTERVAL_S="1", FIPO_CANCEL_GRACE_S=str(GRACE_S)) as s:
        yield s


def _verdict(outcome: chaos.Outcome, stack: LiveStack) -> None:
    print(f"\n{outcome.fault}: {outcome.measured}; lost {outcome.lost}, duplicated {outcome.duplicated}; "
          f"{outcome.notes}")
    assert outcome.ok, f"{outcome}\n--- stack log ---\n{stack.log_tail(60)}"


def test_web_server_killed_mid_run_loses_and_repeats_nothing(stack: LiveStack) -> None:
    _verdict(chaos.web_server_kill(stack, down_s=8, total_steps=30), stack)


def test_killed_trainer_goes_lost_and_resume_continues_without_a_seam(stack: LiveStack) -> None:
    _verdict(chaos.trainer_kill(stack, total_steps=60, heartbeat_s=HEARTBEAT_S), stack)


def test_cancel_stops_within_the_grace_period_and_its_checkpoint_resumes(stack: LiveStack) -> None:
    _verdict(chaos.cancel_mid_run(stack, total_steps=80, grace_s=GRACE_S), stack)
