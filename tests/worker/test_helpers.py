"""worker.textio and worker.procgroup: the helpers both launchers and the supervisor share."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from worker.procgroup import signal_group
from worker.textio import decode_utf8_head


def test_a_split_character_is_held_back_for_the_next_slice() -> None:
    data = "ab✓".encode()                        # ✓ is 3 bytes
    assert decode_utf8_head(data) == ("ab✓", 5)
    assert decode_utf8_head(data[:4]) == ("ab", 2)   # the next read starts at the ✓'s first byte
    assert decode_utf8_head(b"") == ("", 0)


def test_invalid_bytes_before_the_end_are_replaced_not_held() -> None:
    assert decode_utf8_head(b"a\xffb") == ("a\ufffdb", 3)


def test_signal_group_reaches_the_group_and_ignores_a_gone_one() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        signal_group(child.pid, signal.SIGTERM)
        assert child.wait(timeout=10) == -signal.SIGTERM
    finally:
        if child.poll() is None:
            child.kill()
    signal_group(child.pid, signal.SIGTERM)          # the group is gone: no error
    assert os.getpgid(os.getpid()) != child.pid
