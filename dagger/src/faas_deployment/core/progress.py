"""Progress lines: one per pipeline step, with its duration in seconds.

Lines go to standard error so that standard output carries only results (a
``pushed ...`` line, a YAML document) and stays usable in scripts.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


@contextmanager
def step(name: str, stream: TextIO | None = None) -> Iterator[None]:
    """Print ``name ...`` when the step ends: ``ok (0.42 s)`` or ``failed (0.42 s)``."""
    out = stream or sys.stderr
    started = time.monotonic()
    try:
        yield
    except BaseException:
        print(f"[faas-deploy] {name}: failed ({time.monotonic() - started:.2f} s)", file=out, flush=True)
        raise
    print(f"[faas-deploy] {name}: ok ({time.monotonic() - started:.2f} s)", file=out, flush=True)


def note(message: str, stream: TextIO | None = None) -> None:
    """Print one progress line ``[faas-deploy] <message>`` on standard error."""
    print(f"[faas-deploy] {message}", file=stream or sys.stderr, flush=True)


def retry(what: str, failure: str, delay: float, attempt: int, stream: TextIO | None = None) -> None:
    """Announce a retry: ``<what>: <failure>; attempt <attempt + 1> in <delay> s``.

    ``failure`` must already be free of secrets (callers pass a status line or an
    exception class and its redacted text); ``delay`` is in seconds.
    """
    note(f"{what}: {failure}; attempt {attempt + 1} in {delay:.1f} s", stream)
