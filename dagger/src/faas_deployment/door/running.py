"""How a verb runs: its timeout checked, its temporary directories, its concurrent calls, an interrupt.

Every import beyond the standard library's lightest is made when first needed: the
door's start-up stays light (``faas-deploy --help`` loads none of a verb's modules).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TypeVar, cast

from ..core.errors import Problem, UserError

if TYPE_CHECKING:
    from pathlib import Path

    from ..core.deadline import Deadline

T = TypeVar("T")


class _HasLine(Protocol):
    @property
    def line(self) -> str: ...


#: A verb's result with its output line (:class:`PublishResult`, :class:`artifacts.ArtifactResult`).
R = TypeVar("R", bound=_HasLine)


def check_timeout(value: float | None) -> float | None:
    """A verb's ``timeout`` (seconds) checked by the one rule of every verb (:func:`deadline.valid_seconds`);
    ``None``: its default."""
    from ..core.deadline import optional_seconds

    return optional_seconds(value)


def problem_of(shown: str, exc: UserError) -> Problem:
    """``exc`` as a problem of the file ``shown``, its text not repeating that name."""
    return Problem(shown, "", str(exc).removeprefix(f"{shown}: "))


def tempdir(prefix: str):
    """A temporary directory (``tempfile`` imported when first needed: start-up stays light)."""
    import tempfile

    return tempfile.TemporaryDirectory(prefix=prefix)


def run_tempdir() -> contextlib.AbstractContextManager[Path]:
    """Put every temporary file and directory of this process's run under one directory, removed at the end
    (``<TMPDIR>/faas-run-*``, :func:`tempdirs.run_tempdir`); caches that outlive runs stay outside it."""
    from ..core import tempdirs

    return tempdirs.run_tempdir()


def interrupted() -> None:
    """After Ctrl-C or SIGTERM: give back the publish leases this process holds (:func:`lease.release_all`,
    bounded by :data:`lease.INTERRUPT_SECONDS`); nothing to do when no lease was ever taken."""
    import sys

    lease = sys.modules.get(f"{__package__.rpartition('.')[0]}.registry.lease")
    if lease is not None:
        lease.release_all()


def outcome_of(call: Callable[[], T]) -> tuple[T | None, BaseException | None]:
    """``(result, None)`` of ``call()``, or ``(None, exception)``."""
    try:
        return call(), None
    except Exception as exc:
        return None, exc


def run_all(fn: Callable[[str], R], names: list[str], limit: Deadline | None) -> list[R]:
    """Run ``fn`` for every name concurrently (within ``limit``); re-raise the first failure after all finish.

    Raises:
        UserError: every failure's message, and the lines of the calls that succeeded before it.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ..core import deadline

    calls = [functools.partial(fn, name) for name in names]
    if limit is None:
        with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
            futures = [pool.submit(outcome_of, call) for call in calls]
        outcomes = [f.result() for f in futures]
    else:
        outcomes = deadline.run_all(calls, limit, "publishing")
    errors = [error for _, error in outcomes if error is not None]
    if errors:
        results = [result.line for result, error in outcomes if error is None and result is not None]
        message = "\n".join(str(e) for e in errors)
        if results:
            message += "\npublished before the failure:\n" + "\n".join(results)
        if all(isinstance(e, UserError) for e in errors):
            raise UserError(message)
        raise errors[0]  # a bug: keep its traceback
    return [cast(R, result) for result, _ in outcomes]  # no error: every call returned its result
