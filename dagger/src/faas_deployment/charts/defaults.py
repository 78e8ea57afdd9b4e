"""Resolve a template's variables: config values are data, defaults render in a sandbox.

Cookiecutter renders *every* string of its context as a Jinja template
(``cookiecutter.prompt.prompt_for_config``), the values a user config sets
included. A config value is data written by whoever edits the configuration
(any merge request), so rendering it would run their code: ``{{ cycler.__init__
.__globals__.os.popen(...) }}`` runs a command, ``{{ ...os.environ.X }}`` copies a
secret. Here:

* a value the config sets is taken as it is, never rendered;
* only the template's own ``cookiecutter.json`` defaults are rendered, in a
  :class:`jinja2.sandbox.ImmutableSandboxedEnvironment` (no attribute starting
  with ``_``, no Python internals, ``range`` capped at 100,000 items by Jinja) whose
  ``*`` and ``**`` are bounded (:data:`MAX_RESULT` items, exponents up to
  :data:`MAX_EXPONENT`), so a default cannot exhaust memory;
* the resolved context is given to cookiecutter's file generation directly
  (``cookiecutter.generate.generate_files``), skipping the prompt step that would
  render the values again (see ``chart.render_chart``).

The shapes follow cookiecutter 2.x's ``prompt_for_config``: choice lists resolve to
their first item, dict variables keep their structure with scalars as strings
(booleans and ``None`` kept), top-level numbers stay numbers.
"""

from __future__ import annotations

import functools
import json
import operator
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: Largest string, list or number of digits a default may build with ``*`` or ``**``.
MAX_RESULT = 100_000
#: Largest exponent ``**`` accepts in a default.
MAX_EXPONENT = 64
#: Largest rendered default, in characters.
MAX_RENDERED = 100_000


class DefaultError(ValueError):
    """A template default cannot be rendered (Jinja error, a bound exceeded)."""


class _Sandbox(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**":
            if isinstance(right, (int, float)) and abs(right) > MAX_EXPONENT:
                raise DefaultError(f"exponent {right!r} above {MAX_EXPONENT}")
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and right > 0
                and left.bit_length() * right > MAX_RESULT
            ):
                raise DefaultError(f"a power of more than {MAX_RESULT} bits")
            return operator.pow(left, right)
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and len(seq) * count > MAX_RESULT:
                raise DefaultError(f"a repetition longer than {MAX_RESULT} items")
        return operator.mul(left, right)


@functools.cache  # one sandbox per process: it holds no state between renders
def _environment() -> _Sandbox:
    env = _Sandbox(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    # cookiecutter's jsonify filter (cookiecutter.extensions.JsonifyExtension), the one
    # its defaults commonly use; tojson is Jinja's own.
    env.filters["jsonify"] = lambda obj, indent=4: json.dumps(obj, sort_keys=True, indent=indent)
    return env


def _render(env: _Sandbox, raw: Any, context: dict[str, Any]) -> Any:
    """A template default, rendered as ``prompt.render_variable`` does, in the sandbox."""
    if raw is None or isinstance(raw, bool):
        return raw
    if isinstance(raw, dict):
        return {_render(env, k, context): _render(env, v, context) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_render(env, v, context) for v in raw]
    if not isinstance(raw, str):
        raw = str(raw)
    if "{" not in raw and "\r" not in raw:
        # no block, variable or comment start (Jinja's default syntax, line statements off) and no
        # line ending Jinja would normalise: the lexer sees only data, which renders as it is; not
        # compiled, so a process whose template is in the bytecode cache compiles nothing
        return _bounded(raw, raw)
    try:
        out = _compiled(env, raw).render(cookiecutter=context)
    except (TemplateError, ArithmeticError, DefaultError, TypeError, ValueError, RecursionError) as err:
        raise DefaultError(f"default {raw[:80]!r} cannot be rendered: {type(err).__name__}: {err}") from err
    return _bounded(raw, out)


def _bounded(raw: str, out: str) -> str:
    if len(out) > MAX_RENDERED:
        raise DefaultError(f"default {raw[:80]!r} renders to more than {MAX_RENDERED} characters")
    return out


@functools.lru_cache(maxsize=1024)
def _compiled(env: _Sandbox, raw: str) -> Template:
    """``raw`` compiled once per process: every chart of a template renders the same defaults."""
    return env.from_string(raw)


def _as_data(value: Any) -> Any:
    """A config value in cookiecutter's shapes, never rendered: nested scalars as strings."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, dict):
        return {_as_data(k): _as_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_data(v) for v in value]
    return value if isinstance(value, str) else str(value)


def resolve(variables: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The public context: ``config``'s values as data, the other defaults rendered.

    Args:
        variables: ``cookiecutter.json``, in file order.
        config: the ``default_context`` of a validated config (keys are public
            variables of ``variables``).

    Returns:
        ``{key: value}`` for every public variable (not starting with ``_``), in
        file order with dict variables after the others (as cookiecutter renders
        them, so a dict default may use any plain value).

    Raises:
        DefaultError: a default of the template fails to render or exceeds a bound.
    """
    env = _environment()
    resolved: dict[str, Any] = {}
    public = [k for k in variables if not k.startswith("_")]
    ordered = [k for k in public if not isinstance(variables[k], dict)] + [
        k for k in public if isinstance(variables[k], dict)
    ]
    for key in ordered:
        default = variables[key]
        if key in config:
            value = config[key]
            resolved[key] = _as_data(value) if isinstance(default, dict) else value
        elif isinstance(default, list):
            resolved[key] = _render(env, default[0], resolved) if default else None
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            resolved[key] = default
        else:
            resolved[key] = _render(env, default, resolved)
    return {k: resolved[k] for k in public}
