"""Reading a job's log in byte-offset slices without splitting a UTF-8 character.

Both launchers serve the run page's Log card the same way: the page asks for the bytes after the
offset it has, and the next request starts where this one stopped. A slice cut by a byte count can
end inside a multi-byte character; decoding it as-is would show a replacement character and lose
the character for good, since the next slice begins after it.
"""

from __future__ import annotations

import codecs


def decode_utf8_head(data: bytes) -> tuple[str, int]:
    """The text of ``data`` and how many of its bytes that text covers.

    A character split at the end is held back (not counted), so a reader that continues from
    ``offset + consumed`` gets it whole next time; invalid bytes elsewhere become U+FFFD.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=False)
    held_back = decoder.getstate()[0]
    return text, len(data) - len(held_back)
