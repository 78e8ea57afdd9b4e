"""One overall deadline per verb, shared by every network call the verb makes.

A socket timeout bounds one wait for bytes, not a whole answer: a server that
sends one byte per second never trips it. So a verb's network work runs in
daemon threads that the caller waits for at most until the deadline
(:func:`run_all`); each request also gets connect and read timeouts no longer
than the time left (:meth:`Deadline.request_timeout`), and no request starts
after the deadline (:meth:`Deadline.check`).

This module is the one home of the deadline rules: what a ``--timeout`` may be
(:func:`valid_seconds`: a finite number above zero; ``inf``, ``nan``, zero and negative
numbers are refused by every verb alike) and how the time left is shared.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from .errors import UserError

#: Default overall deadline of the registry verbs (publish, release, check --registry, publish-image), seconds.
DEFAULT_TIMEOUT = 300.0
#: Longest single connect or read wait, seconds (shorter when less time is left).
REQUEST_TIMEOUT_CAP = 30.0

T = TypeVar("T")


class DeadlineExceeded(UserError):
    """The verb's overall deadline (``--timeout``) passed."""


def valid_seconds(value: object, *, flag: str = "--timeout") -> float:
    """``value`` as a number of seconds a verb may wait: finite and above zero.

    Raises:
        UserError: anything else (``inf``, ``nan``, ``0``, negative numbers, non-numbers),
            the same message for every verb.
    """
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not (0 < number < float("inf")):
        raise UserError(f"{flag}: expected a finite number of seconds above 0, got {value!r}")
    return number


def optional_seconds(value: object, *, flag: str = "--timeout") -> float | None:
    """:func:`valid_seconds`, with ``None`` (not given: the verb's default) passed through."""
    return None if value is None else valid_seconds(value, flag=flag)


class Deadline:
    """``seconds`` from now (monotonic clock).

    Raises:
        UserError: ``seconds`` is not a finite number above zero (:func:`valid_seconds`).
    """

    def __init__(self, seconds: float, *, flag: str = "--timeout"):
        self.seconds = valid_seconds(seconds, flag=flag)
        self.flag = flag
        self.started = time.monotonic()
        self._end = self.started + self.seconds

    def elapsed(self) -> float:
        """Seconds since the deadline was set."""
        return time.monotonic() - self.started

    def remaining(self) -> float:
        """Seconds left, never below 0."""
        return max(0.0, self._end - time.monotonic())

    def expired_error(self, what: str) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"{what}: no answer within the overall deadline of {self.seconds:g} s "
            f"(raise {self.flag} or check that the server answers)"
        )

    def check(self, what: str) -> None:
        """Raise :class:`DeadlineExceeded` when no time is left."""
        if self.remaining() <= 0:
            raise self.expired_error(what)

    def request_timeout(self, cap: float = REQUEST_TIMEOUT_CAP) -> tuple[float, float]:
        """``(connect, read)`` timeouts for one request, each at most ``cap`` and the time left."""
        left = max(0.05, min(cap, self.remaining()))
        return (left, left)


def run_all(fns: Sequence[Callable[[], T]], deadline: Deadline, what: str,
            server: str = "the registry") -> list[tuple[T | None, BaseException | None]]:
    """Run every ``fn`` in its own daemon thread; wait for them until ``deadline``.

    Returns:
        ``(result, None)`` or ``(None, exception)`` per function, in order.

    Raises:
        DeadlineExceeded: some function had not finished at the deadline (its
            thread is abandoned: a request already sent may still complete).
    """
    outcomes: list[tuple[T | None, BaseException | None]] = [(None, None)] * len(fns)

    def runner(index: int, fn: Callable[[], T]) -> None:
        try:
            outcomes[index] = (fn(), None)
        except BaseException as exc:  # handed to the caller
            outcomes[index] = (None, exc)

    threads = [threading.Thread(target=runner, args=(i, fn), daemon=True) for i, fn in enumerate(fns)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(deadline.remaining())
    if any(thread.is_alive() for thread in threads):
        raise DeadlineExceeded(
            f"{what}: not finished within the overall deadline of {deadline.seconds:g} s "
            f"(raise {deadline.flag} or check that {server} answers); a push in flight may "
            f"still land: run the same command again to see the registry's state"
        )
    return outcomes


def run(fn: Callable[[], T], deadline: Deadline, what: str, server: str) -> T:
    """``fn()`` in a daemon thread, waited for until ``deadline``; its exception re-raised here.

    Raises:
        DeadlineExceeded: ``fn`` had not finished at the deadline.
    """
    [(result, error)] = run_all([fn], deadline, what, server)
    if error is not None:
        raise error
    return result  # type: ignore[return-value]
