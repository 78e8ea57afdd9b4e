"""User-facing errors shared by every module.

A :class:`UserError` is something the person running the pipeline can fix (bad
config, wrong credentials, a version that needs a bump). Both front ends print its
text without a traceback and exit non-zero; anything else is a bug and keeps its
traceback. Error text never carries a secret value.
"""

from __future__ import annotations

from dataclasses import dataclass


class UserError(Exception):
    """An error the user can fix; its ``str()`` is the whole message shown."""


@dataclass(frozen=True)
class Problem:
    """One validation finding.

    ``path`` is the file (or directory) concerned, ``key`` the dotted key or the
    relative path inside it (``""`` when the whole file is concerned), ``message``
    what is wrong and what was expected, ``hint`` what to do about it.
    """

    path: str
    key: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.path}: {self.key}" if self.key else self.path
        text = f"{where}: {self.message}"
        return printable(f"{text} ({self.hint})" if self.hint else text)


def printable(text: str) -> str:
    """``text`` with control characters (C0, DEL, C1, bidi overrides) written as escapes.

    Keys and paths come from user files; echoed raw, an escape sequence in them
    would drive the terminal or a CI log viewer.
    """
    return "".join(ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii") for ch in text)


class ValidationError(UserError):
    """Every problem found in one run, reported together.

    Attributes:
        problems: the findings, in the order they were found.
    """

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} found:"
        super().__init__("\n".join([head, *(f"  - {p}" for p in self.problems)]))


def error_document(exc: UserError, exit_code: int = 1) -> dict[str, object]:
    """``exc`` as the JSON object ``--output json`` writes on standard error (docs/results.md).

    ``{"message", "file", "key", "hint", "exit_code", "problems"}``: ``file``, ``key``
    and ``hint`` are the first problem's of a :class:`ValidationError` (``null`` for
    other errors), ``problems`` every problem (``[]`` for other errors).
    """
    problems = list(getattr(exc, "problems", []) or [])
    first = problems[0] if problems else None
    return {
        "message": printable(str(exc)) if not problems else str(exc),
        "file": first.path if first else None,
        "key": (first.key or None) if first else None,
        "hint": (first.hint or None) if first else None,
        "exit_code": exit_code,
        "problems": [{"file": p.path, "key": p.key, "message": p.message, "hint": p.hint} for p in problems],
    }
