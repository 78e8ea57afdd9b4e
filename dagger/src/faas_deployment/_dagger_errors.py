"""The one place that reaches into the Dagger SDK's private error type.

A function that raises any other exception makes the SDK log a Python traceback
before the message (``dagger/mod/_module.py``, ``Module.call``); ``FunctionError``
is the SDK's own escape hatch that it re-raises as is, message only. dagger-io 0.21
exports it from ``dagger.mod._exceptions`` and from nowhere public, and it has no
public equivalent with the same result, so it is imported here and nowhere else;
``tests/test_dagger_engine.py`` pins the message a user sees.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dagger.mod._exceptions import FunctionError

from .core.errors import UserError


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a :class:`UserError` raised inside the block into a clean Dagger function error.

    The function error's message is the user error's text, without a cause or a
    traceback; any other exception passes through (a bug keeps its traceback).
    """
    try:
        yield
    except UserError as exc:
        raise FunctionError(str(exc)) from None
