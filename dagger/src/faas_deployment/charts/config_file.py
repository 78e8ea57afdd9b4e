"""Reading one config file: bounded YAML, duplicate keys, numbers as written, the user config's shape.

A config (``env/<env>/<component>/cookiecutter-config.yaml``) is a cookiecutter
*user config*: a top-level ``default_context`` mapping holds the values, the
other keys cookiecutter knows (:data:`USER_CONFIG_KEYS`) are accepted and
ignored. This module reads it as cookiecutter does (PyYAML's safe loader) and
reports, as :class:`~faas_deployment.core.errors.Problem` items naming the file as
``shown``, what cookiecutter would read silently: duplicate keys (YAML readers
keep the last one), numbers whose text YAML changes (``0755`` is 493, kept as
:class:`WrittenInt`/:class:`WrittenFloat` so :mod:`.value_rules` can refuse them),
YAML beyond the size, nesting and alias bounds of :mod:`faas_deployment.core.yaml_limits`.
What each value must be is :mod:`.value_rules`'; checking the values against the
template is :mod:`.config`'s. :func:`read_yaml` also reads ``environment.yaml``
(:mod:`faas_deployment.flux.settings`).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..core.errors import Problem
from ..core.yaml_limits import limit_problem

#: Top-level keys of a cookiecutter user config. Only ``default_context`` is
#: used; the others are accepted (cookiecutter knows them) and ignored.
USER_CONFIG_KEYS = ("default_context", "abbreviations", "cookiecutters_dir", "replay_dir")


class WrittenInt(int):
    """An integer YAML read from text that does not write it back (``0755`` is 493): ``written`` is that text."""

    written: str


class WrittenFloat(float):
    """A float YAML read from text that does not write it back (``0.10`` is 0.1): ``written`` is that text."""

    written: str


def _written(number: Any, text: str) -> Any:
    """``number``, or a :class:`WrittenInt`/:class:`WrittenFloat` remembering ``text`` when ``str(number)`` differs."""
    if str(number) == text or isinstance(number, bool):
        return number
    kept = (WrittenInt if isinstance(number, int) else WrittenFloat)(number)
    kept.written = text
    return kept


def plain(value: Any) -> Any:
    """``value`` with :class:`WrittenInt`/:class:`WrittenFloat` turned back into ``int``/``float`` (for dumping)."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, WrittenInt):
        return int(value)
    if isinstance(value, WrittenFloat):
        return float(value)
    return value


if TYPE_CHECKING:  # the mixin is checked against the loader it is mixed into
    _LoaderBase = yaml.SafeLoader
    _FAST_PARSER = yaml.SafeLoader
else:
    _LoaderBase = object
    #: libyaml's safe loader when PyYAML was built with it, else the pure-Python one.
    _FAST_PARSER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Noting(_LoaderBase):
    """What a config loader adds to PyYAML's safe loader: it notes duplicate keys and how numbers were written.

    A number whose text is not what ``str()`` gives back (``0755``, ``0.10``,
    ``+12``, ``0x1F``) is kept as :class:`WrittenInt`/:class:`WrittenFloat`, so a
    value that becomes a string (environment variables, nested values of dict
    variables) can be refused instead of silently changed.
    """

    def construct_yaml_int(self, node: yaml.ScalarNode) -> Any:
        return _written(super().construct_yaml_int(node), node.value)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> Any:
        return _written(super().construct_yaml_float(node), node.value)

    def __init__(self, stream: str):
        super().__init__(stream)
        self.duplicates: list[tuple[Any, yaml.Mark]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            try:
                key = self.construct_object(key_node, deep=True)
                hash(key)
            except (TypeError, yaml.YAMLError):
                continue
            if key in seen:
                self.duplicates.append((key, key_node.start_mark))
            seen.add(key)
        return super().construct_mapping(node, deep)


class _Loader(_Noting, yaml.SafeLoader):
    """PyYAML's pure-Python safe loader (as cookiecutter reads user configs), see :class:`_Noting`."""



class _FastLoader(_Noting, _FAST_PARSER):
    """The same on libyaml's parser when PyYAML has it (several times faster); errors are read again by
    :class:`_Loader`."""


for _class in (_Loader, _FastLoader):
    _class.add_constructor("tag:yaml.org,2002:int", _class.construct_yaml_int)
    _class.add_constructor("tag:yaml.org,2002:float", _class.construct_yaml_float)


def _load_fast(text: str) -> tuple[Any, list[tuple[Any, yaml.Mark]]] | None:
    """``text`` read by :class:`_FastLoader` with its duplicates; ``None`` when it fails (then read it again slowly)."""
    loader = _FastLoader(text)
    try:
        return loader.get_single_data(), loader.duplicates
    except (yaml.YAMLError, RecursionError):
        return None
    finally:
        loader.dispose()


def read_yaml(path: Path, shown: str) -> tuple[Any, list[Problem]]:
    """The YAML document of ``path`` (read through :mod:`faas_deployment.core.repofiles`) and its problems.

    Returns ``(data, problems)``: ``data`` is ``None`` when the file cannot be read
    (missing, not a regular file inside the repository, too big or too deep, a YAML
    syntax error with line and column, a character YAML does not allow), then
    ``problems`` says why; otherwise ``problems`` lists the duplicate keys, if any.
    Numbers whose text YAML changes are :class:`WrittenInt`/:class:`WrittenFloat`.
    Never raises for any bytes.
    """
    from ..core import repofiles

    try:
        text = repofiles.read_text(*repofiles.split(path, shown))
    except repofiles.NotReadable as err:
        return None, [Problem(shown, "", "file not found" if err.missing else err.reason)]
    too_big = limit_problem(text, _FAST_PARSER)
    if too_big:
        return None, [Problem(shown, "", too_big)]
    fast = _load_fast(text)
    if fast is not None:
        return fast[0], _duplicate_problems(shown, fast[1])
    loader = None
    try:
        loader = _Loader(text)
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        detail = "; ".join(str(part) for part in (err.context, err.problem) if part)
        return None, [Problem(shown, "", f"YAML syntax error{where}: {detail}", "fix the YAML syntax")]
    except yaml.YAMLError as err:  # e.g. a ReaderError: a character YAML does not allow
        return None, [Problem(shown, "", f"YAML error: {err}", "remove control characters from the file")]
    except RecursionError:
        return None, [Problem(shown, "", "nested too deeply to read; flatten it")]
    finally:
        if loader is not None:
            loader.dispose()
    return data, _duplicate_problems(shown, loader.duplicates)


def _duplicate_problems(shown: str, duplicates: list[tuple[Any, yaml.Mark]]) -> list[Problem]:
    return [
        Problem(shown, str(key), f"duplicate key at line {mark.line + 1}, column {mark.column + 1}",
                "keep one: YAML readers silently use the last one")
        for key, mark in duplicates
    ]


def read_config(path: Path, shown: str) -> tuple[dict[Any, Any] | None, list[Problem]]:
    """The ``default_context`` mapping of a config file and the problems of reading it.

    Returns ``(values, problems)``: ``values`` is ``None`` when there is no mapping to
    check (unreadable YAML, not a mapping, ``default_context`` missing or not a
    mapping); ``problems`` adds unknown top-level keys (with the closest known one).
    """
    data, problems = read_yaml(path, shown)
    if problems and data is None:
        return None, problems
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        return None, [*problems, Problem(shown, "", f"expected a mapping with a default_context key, got {got}")]
    for key in data:
        if key not in USER_CONFIG_KEYS:
            close = difflib.get_close_matches(str(key), USER_CONFIG_KEYS, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "template values go under default_context"
            problems.append(Problem(shown, str(key), "unknown top-level key", hint))
    if "default_context" not in data:
        problems.append(Problem(shown, "default_context", "missing; expected a mapping of template values",
                                "put the chart's values under a top-level default_context: key"))
        return None, problems
    context = data["default_context"]
    if not isinstance(context, dict):
        got = "nothing" if context is None else f"a {type(context).__name__}"
        problems.append(Problem(shown, "default_context", f"expected a mapping of template values, got {got}"))
        return None, problems
    return context, problems


def read_problems(path: Path, shown: str | None = None) -> list[Problem]:
    """The problems of reading a config file as YAML and as a user config, before any rule.

    The first step of :func:`faas_deployment.charts.config.validate_config`, for a tool that edits the file
    (``bump``) and must refuse it exactly as ``check`` does: syntax, characters
    YAML does not allow, duplicate keys, nesting and alias bounds, unknown
    top-level keys, a missing ``default_context``.
    """
    return read_config(Path(path), shown or str(path))[1]
