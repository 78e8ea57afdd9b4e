"""What a verb gives back: a :class:`Result` (lines for people, JSON-able data, a path, an exit code).

Both front ends print or return it as it is: ``--output text`` (or ``table``) the lines,
``--output json`` the data (one document per verb; its JSON Schema is in ``docs/schemas/``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast, overload

from ..core.errors import UserError

if TYPE_CHECKING:
    from ..core.secrets import SecretValue

#: ``--output`` forms of results.
OUTPUTS = ("text", "table", "json")


def check_output(output: str) -> str:
    """``output`` if it is a form of :data:`OUTPUTS`; else UserError (before the verb runs)."""
    if output not in OUTPUTS:
        raise UserError(f"--output {output!r}: expected one of {', '.join(OUTPUTS)}")
    return output


def jsonable(value: Any) -> Any:
    """``value`` as JSON-able data: dataclasses as objects (with ``line`` when they have one), paths as strings."""
    if is_dataclass(value) and not isinstance(value, type):
        data = {f.name: jsonable(getattr(value, f.name)) for f in fields(value) if not f.name.startswith("_")}
        if hasattr(type(value), "line"):
            data["line"] = cast(Any, value).line
        return data
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


@dataclass(frozen=True)
class Result:
    """What a verb gives back.

    Attributes:
        lines: the result for people, one line each (standard output).
        data: the same as JSON-able data (``--output json``).
        path: the file or directory the verb wrote, if any (the Dagger front end returns it).
        exit_code: 0, or a rollout's code (``rollout_outcome.EXIT_CODES``: 3 failed, 4 superseded, 5 timeout).
    """

    lines: tuple[str, ...] = ()
    data: Any = None
    path: Path | None = None
    exit_code: int = 0

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def render(self, output: str = "text") -> str:
        """The result as ``output``: ``text`` (or ``table``) the lines, ``json`` the data."""
        if output == "json":
            import json

            return json.dumps(self.data, indent=2, sort_keys=False)
        return self.text


def make_result(lines: Sequence[str] | str, data: Any = None, *, path: Path | None = None,
                exit_code: int = 0) -> Result:
    """A result of ``lines`` (a string is split into lines); ``data`` made JSON-able, default ``{"lines": [...]}``."""
    lines = tuple(lines.splitlines()) if isinstance(lines, str) else tuple(lines)
    return Result(lines, jsonable(data) if data is not None else {"lines": list(lines)}, path, exit_code)


def lines_result(items: Sequence[Any]) -> Result:
    """A result of objects that each have a ``line`` (publish results, artifact results)."""
    return make_result([i.line for i in items], list(items))


@overload
def reveal(secret: None) -> None: ...


@overload
def reveal(secret: SecretValue | Callable[[], SecretValue]) -> SecretValue: ...


def reveal(secret: Any) -> SecretValue | None:
    """A secret argument read now: front ends may pass a :class:`SecretValue` or a callable giving one.

    A callable (the CLI's ``env:NAME``/``file:PATH`` reference) is read only when the
    verb needs the value, after the argument rules: a bad command line is reported
    as such, not as a missing variable.
    """
    return secret() if callable(secret) else secret
