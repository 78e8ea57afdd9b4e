"""One overall deadline per verb, shared by every network call the verb makes.

A socket timeout bounds one wait for bytes, not a whole answer: a server that
sends one byte per second never trips it. So a verb's network work runs in
daemon threads that the caller waits for at most until the deadline
(:func:`run_all`); each request also gets connect and read timeouts no longer
than the time left (:meth:`Deadline.request_timeout`), and no request starts
after the deadline (:meth:`Deadline.check`).
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


class Deadline:
    """``seconds`` from now (monotonic clock).

    Raises:
        UserError: ``seconds`` is not a positive number.
    """

    def __init__(self, seconds: float, *, flag: str = "--timeout"):
        if not seconds > 0 or seconds != seconds or seconds == float("inf"):
            raise UserError(f"{flag}: expected a positive number of seconds, got {seconds!r}")
        self.seconds = float(seconds)
        self.flag = flag
        self._end = time.monotonic() + self.seconds

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


def run_all(fns: Sequence[Callable[[], T]], deadline: Deadline, what: str) -> list[tuple[T | None, BaseException | None]]:
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
            f"(raise {deadline.flag} or check that the registry answers); a push in flight may "
            f"still land: run the same command again to see the registry's state"
        )
    return outcomes
