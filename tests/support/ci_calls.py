"""Read ``.gitlab-ci.yml`` and resolve its ``dagger call`` lines against the module, offline.

A ``dagger call`` line is resolved the way the Dagger CLI reads it: flags of the
main object's constructor first, then function names in kebab-case, each with its
own ``--flag value`` / ``--flag=value`` arguments, every function called on the
result of the one before. Module functions come from the offline introspection in
``daggermod``; core functions of ``Directory``, ``File`` and ``Container`` (``export``,
``sync``, ``contents``, ...) from the signatures of dagger-io's generated client, so
both follow the installed versions. A line that does not resolve raises
:class:`CallError` naming the job, the function or the flag, and what was expected.

Rules checked on top of the CLI's own: a secret parameter takes ``env:NAME`` (a
CI/CD variable read by Dagger itself, never expanded by the shell), the chain ends
in a value or a core object (not half-way at a module object), and a line holds one
command (no ``&&``, ``|``, ``;`` or redirections).
"""

from __future__ import annotations

import inspect
import json
import re
import shlex
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import dagger

REPO = Path(__file__).resolve().parents[2]

#: Top-level keys of .gitlab-ci.yml that are not jobs (GitLab CI reference, "Global keywords").
GLOBAL_KEYWORDS = frozenset(
    {"stages", "workflow", "variables", "default", "include", "image", "services",
     "before_script", "after_script", "cache", "spec"}
)
SCRIPT_KEYS = ("before_script", "script", "after_script")

#: Core object types of the Dagger API a chain may continue on, by their Python type name.
CORE_TYPES: dict[str, type] = {
    "dagger.Directory": dagger.Directory,
    "dagger.File": dagger.File,
    "dagger.Container": dagger.Container,
}
SCALARS = frozenset({"str", "int", "float", "bool", "list[str]"})
#: A secret from a CI/CD variable: ``env:NAME`` (its value) or ``file:$NAME`` (a GitLab
#: file variable, whose value is the path of a file holding the secret).
SECRET_VALUE = re.compile(r"env:[A-Z_][A-Z0-9_]*|file:\$[A-Z_][A-Z0-9_]*")
SHELL_OPERATORS = frozenset({"&&", "||", "|", ";", ">", ">>", "<", "&", "2>", "$("})


class CallError(ValueError):
    """A ``dagger call`` line that the module (or the Dagger CLI) would refuse."""


@dataclass(frozen=True)
class Step:
    """One function of a chain: the object type it is called on, its name, the flags given."""

    on: str
    function: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Call:
    job: str
    line: str
    constructor: dict[str, Any]
    steps: tuple[Step, ...]
    result: str  # type name of the last function's result

    def arg(self, function: str, name: str) -> Any:
        """The value given to ``name`` of the (first) step calling ``function``."""
        for step in self.steps:
            if step.function == function:
                return step.args.get(name)
        raise KeyError(function)


# --------------------------------------------------------------------------- the file


def load(path: Path = REPO / ".gitlab-ci.yml", text: str | None = None) -> dict[str, Any]:
    """The parsed file (YAML anchors resolved)."""
    return yaml.safe_load(text if text is not None else path.read_text())


def is_job(name: str, value: Any) -> bool:
    return not name.startswith(".") and name not in GLOBAL_KEYWORDS and isinstance(value, dict)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """GitLab's ``extends`` merge: mappings merge deeply, anything else is replaced."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def expanded(ci: dict[str, Any], name: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """Job (or template) ``name`` with its ``extends`` applied."""
    if name in _seen:
        raise CallError(f".gitlab-ci.yml: extends loop {' -> '.join((*_seen, name))}")
    if name not in ci:
        raise CallError(f".gitlab-ci.yml: {(_seen or ('?',))[-1]} extends {name!r}, which does not exist")
    job = dict(ci[name])
    parents = job.pop("extends", [])
    merged: dict[str, Any] = {}
    for parent in [parents] if isinstance(parents, str) else parents:
        merged = _merge(merged, expanded(ci, parent, (*_seen, name)))
    return _merge(merged, job)


def jobs(ci: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every job, ``extends`` applied, by name."""
    return {name: expanded(ci, name) for name, value in ci.items() if is_job(name, value)}


def script_lines(ci: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """``(job or template, key, line)`` for every script line of every job and template."""
    for name, value in ci.items():
        if not isinstance(value, dict):
            continue
        for key in SCRIPT_KEYS:
            lines = value.get(key) or []
            for line in [lines] if isinstance(lines, str) else lines:
                yield name, key, str(line)


# --------------------------------------------------------------------------- resolving


def _kebab(name: str) -> str:
    return name.replace("_", "-")


def main_object_name(dagger_json: Path = REPO / "dagger.json") -> str:
    """CamelCase of the module name in dagger.json (how the engine names the main object)."""
    name = json.loads(dagger_json.read_text())["name"]
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_\s]+", name) if part)


@dataclass(frozen=True)
class _Param:
    name: str
    type: str
    required: bool
    list: bool


def _module_params(fn: Any) -> dict[str, _Param]:
    return {
        _kebab(p.name): _Param(p.name, p.type, not p.optional, p.type.startswith("list["))
        for p in fn.params.values()
    }


def _core_function(cls: type, cli_name: str) -> tuple[dict[str, _Param], str] | None:
    """Parameters and result type of a core API function, from dagger-io's client class."""
    attr = cli_name.replace("-", "_")
    method = getattr(cls, attr, None)
    if attr.startswith("_") or not callable(method):
        return None
    hints = typing.get_type_hints(method, globalns=vars(sys.modules[method.__module__]))
    signature = inspect.signature(method)
    params: dict[str, _Param] = {}
    for p in list(signature.parameters.values())[1:]:
        tp = hints.get(p.name, Any)
        params[_kebab(p.name)] = _Param(
            p.name, _core_type_name(tp), p.default is inspect.Parameter.empty, typing.get_origin(tp) is list
        )
    returned = hints.get("return", Any)
    result = f"dagger.{cls.__name__}" if returned is typing.Self else _core_type_name(returned)
    return params, result


def _core_type_name(tp: Any) -> str:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        tp = args[0]
    if isinstance(tp, type):
        if tp.__module__ == "builtins":
            return tp.__name__
        return f"dagger.{tp.__name__}"
    return str(tp)


def _object_of(type_name: str, objects: dict[str, dict[str, Any]]) -> str | None:
    """The module object a type name refers to (``faas_deployment.Env`` -> ``Env``)."""
    short = type_name.rsplit(".", 1)[-1]
    return short if short in objects and not type_name.startswith("dagger.") else None


def _take_flags(
    tokens: list[str], i: int, params: dict[str, _Param], where: str
) -> tuple[dict[str, Any], int]:
    """Parse ``--flag value`` / ``--flag=value`` / ``--bool-flag`` from ``tokens[i:]``."""
    args: dict[str, Any] = {}
    while i < len(tokens) and tokens[i].startswith("-"):
        token = tokens[i]
        name, has_value, value = token[2:].partition("=") if token.startswith("--") else (token, False, "")
        param = params.get(name)
        if param is None:
            known = ", ".join(f"--{p}" for p in params) or "none"
            raise CallError(f"{where}: unknown flag {token.split('=')[0]!r} (flags: {known})")
        if param.type == "bool":
            # A variable (``--flag="$VAR"``) is expanded by the job's shell; the variable's
            # ``options`` (true/false) are checked by the CI file's own tests.
            if has_value and value not in ("true", "false") and not re.fullmatch(r"\$\{?[A-Z_][A-Z0-9_]*\}?", value):
                raise CallError(f"{where}: --{name} is a boolean: give it alone or as --{name}=true|false")
            value = value != "false" if has_value else True
        elif not has_value:
            i += 1
            if i >= len(tokens) or tokens[i].startswith("--"):
                raise CallError(f"{where}: --{name} needs a value ({param.type})")
            value = tokens[i]
        if name in args and not param.list:
            raise CallError(f"{where}: --{name} given twice")
        if "Secret" in param.type and not SECRET_VALUE.fullmatch(str(value)):
            raise CallError(
                f"{where}: --{name} is a secret: pass it as env:NAME or file:$NAME (a CI/CD variable), not {value!r}"
            )
        if param.type in ("int", "float") and not str(value).startswith("$"):
            try:
                (int if param.type == "int" else float)(value)
            except ValueError:
                raise CallError(f"{where}: --{name} expects a {param.type}, got {value!r}") from None
        args[name] = [*args.get(name, []), value] if param.list else value
        i += 1
    missing = [f"--{flag}" for flag, p in params.items() if p.required and flag not in args]
    if missing:
        raise CallError(f"{where}: required {', '.join(missing)} not given")
    return args, i


def resolve(line: str, job: str = "?", objects: dict[str, dict[str, Any]] | None = None,
            main: str | None = None) -> Call:
    """Resolve one ``dagger call ...`` line; raises :class:`CallError` if the CLI would refuse it."""
    if objects is None:
        from support import daggermod

        objects = daggermod.objects()
    main = main or main_object_name()
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    bad = [t for t in tokens if t in SHELL_OPERATORS or t.startswith(("$(", "`"))]
    if bad:
        raise CallError(f"{job}: one dagger call per line, no shell operators (found {bad[0]!r}): {line}")
    if tokens[:2] != ["dagger", "call"]:
        raise CallError(f"{job}: not a dagger call line: {line}")
    constructor_params = _module_params(objects[main][""])
    # The constructor's Directory defaults (DefaultPath) make them optional on the CLI.
    constructor, i = _take_flags(tokens, 2, constructor_params, f"{job}: dagger call (constructor of {main})")
    current = main
    steps: list[Step] = []
    while i < len(tokens):
        name = tokens[i]
        where = f"{job}: {name}"
        obj = _object_of(current, objects) if current != main else main
        if obj is not None:
            fns = {_kebab(fn_name): fn for fn_name, fn in objects[obj].items() if fn_name}
            fn = fns.get(name)
            if fn is None:
                raise CallError(f"{where}: {obj} has no function {name!r} (functions: {', '.join(sorted(fns))})")
            params, result = _module_params(fn), fn.return_type
        elif current in CORE_TYPES:
            found = _core_function(CORE_TYPES[current], name)
            if found is None:
                raise CallError(f"{where}: {current} has no function {name!r}")
            params, result = found
        else:
            raise CallError(f"{where}: the chain already ended with a {current}; nothing can follow")
        args, i = _take_flags(tokens, i + 1, params, where)
        steps.append(Step(obj or current, name, args))
        current = result
    if not steps:
        raise CallError(f"{job}: dagger call without a function: {line}")
    if _object_of(current, objects) is not None:
        raise CallError(
            f"{job}: the chain ends at the object {current.rsplit('.', 1)[-1]}; call one of its functions"
        )
    return Call(job, line, constructor, tuple(steps), current)


def dagger_calls(ci: dict[str, Any], objects: dict[str, dict[str, Any]] | None = None) -> list[Call]:
    """Every ``dagger call`` line of the file, resolved (raises on the first that does not resolve)."""
    return [resolve(line, job, objects) for job, _, line in script_lines(ci) if line.lstrip().startswith("dagger call")]
