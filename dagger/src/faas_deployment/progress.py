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
