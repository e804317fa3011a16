"""Answer extraction: pull the final answer out of a free-form response.

Why a module of its own: training rewards, evaluation and majority voting (cons@k) must all see
the *same* extracted answer, so there is exactly one extractor. It follows the DAPO recipe's
``math_dapo`` scorer (docs/spec.md §2.1): only the last ``TAIL_CHARS`` characters are inspected and
the last ``\\boxed{...}`` wins (nested braces matched). If there is no box, a final
``Answer: X`` line (the answer format the DAPO-Math prompts ask for) is used instead.
"""

from __future__ import annotations

import re

TAIL_CHARS = 300  # the recipe inspects only the end of the response (math_dapo: solution_str[-300:])

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_ANSWER_LINE = re.compile(r"(?i)answer\s*:\s*([^\n]+)")


def _matching_brace(text: str, open_index: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_index``; ``None`` when unbalanced (cut off)."""
    depth = 0
    for i in range(open_index, len(text)):
        char = text[i]
        if char == "{" and text[i - 1 : i] != "\\":
            depth += 1
        elif char == "}" and text[i - 1 : i] != "\\":
            depth -= 1
            if depth == 0:
                return i
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed X``) in ``text``.

    >>> last_boxed(r"first \\boxed{1}, finally \\boxed{\\frac{1}{2}}.")
    '\\\\frac{1}{2}'
    """
    best: tuple[int, str] | None = None
    for command in _BOX_COMMANDS:
        start = text.rfind(command)
        while start >= 0:
            after = start + len(command)
            rest = text[after:]
            content: str | None = None
            if rest.startswith("{"):
                close = _matching_brace(text, after)
                if close is not None:
                    content = text[after + 1 : close]
            elif rest.startswith(" "):
                # "\boxed 5" (no braces): up to the next whitespace or '$'
                match = re.match(r"\s+([^\s$]+)", rest)
                content = match.group(1) if match else None
            if content is not None:
                if best is None or start > best[0]:
                    best = (start, content)
                break
            start = text.rfind(command, 0, start)  # this one is cut off: try the previous box
    return best[1].strip() if best else None


def answer_line(text: str) -> str | None:
    """The value of the last ``Answer: X`` line (DAPO-Math prompt format), without a trailing period."""
    matches = _ANSWER_LINE.findall(text)
    if not matches:
        return None
    value = matches[-1].strip().rstrip(".").strip()
    if value.startswith("$") and value.endswith("$") and len(value) > 1:
        value = value.strip("$").strip()
    return value or None


def extract_math_answer(response: str, *, tail_chars: int = TAIL_CHARS) -> str | None:
    """The final answer of a math response: last box in the tail, else the last ``Answer:`` line."""
    tail = response[-tail_chars:] if tail_chars > 0 else response
    boxed = last_boxed(tail)
    if boxed:
        return boxed
    return answer_line(tail)


def _marked_answer(response: str) -> str | None:
    """An answer the response marks itself: the last box, else the last ``Answer:`` line (None: neither)."""
    return last_boxed(response) or answer_line(response)


def extract_plain_answer(response: str) -> str | None:
    """For non-math graders: the boxed content if any, else the ``Answer:`` line, else the last line."""
    marked = _marked_answer(response)
    if marked:
        return marked
    lines = [ln.strip() for ln in response.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else None


_INT = re.compile(r"^[+-]?\d+$")
_DEC = re.compile(r"^[+-]?\d*\.\d+$")


def normalize_answer(answer: str | None) -> str | None:
    """A canonical string for comparing and voting: ``033`` -> ``33``, ``\\dfrac`` -> ``\\frac``, no spaces.

    Used by the ``exact`` grader and by cons@k (majority vote over extracted answers).
    """
    if answer is None:
        return None
    text = answer.strip()
    if len(text) > 1 and text.startswith("$") and text.endswith("$"):
        text = text.strip("$")
    text = text.replace("\\left", "").replace("\\right", "")
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = re.sub(r"\\text\{\s*([^{}]*?)\s*\}", r"\1", text)
    text = text.replace("\\!", "").replace("\\,", "").replace("\\;", "").replace("\\ ", "")
    text = re.sub(r"\s+", "", text).rstrip(".").lower()
    if _INT.match(text):
        return str(int(text))
    if _DEC.match(text):
        stripped = text.rstrip("0").rstrip(".")
        if stripped in ("", "+", "-"):
            return "0"
        if stripped.startswith(("+", "-")) and stripped[1:2] == ".":
            stripped = stripped[0] + "0" + stripped[1:]
        elif stripped.startswith("."):
            stripped = "0" + stripped
        return str(int(stripped)) if _INT.match(stripped) else stripped.lstrip("+")
    return text or None


_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def extract_last_number(response: str) -> str | None:
    """For small chat models that state a result in prose: the boxed content or ``Answer:`` line if any,
    else the last number in the response (``"The result of 4 - 1 is 3."`` gives ``3``).

    Lenient by design (a response that ends on a wrong number is wrong, one that rambles past its
    answer usually ends on another number); only the ``reasoning_gym_last_number`` grader uses it.
    """
    marked = _marked_answer(response)
    if marked:
        return marked
    numbers = _NUMBER.findall(response.replace(",", ""))
    return numbers[-1] if numbers else None
