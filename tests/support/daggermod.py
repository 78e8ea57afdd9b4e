"""Offline introspection of the Dagger module, in one place.

No Dagger engine runs here, so the module is loaded the way the engine's Python
runtime loads it (the ``dagger.mod`` entry point ``main_object``) and read through
dagger-io's resolver objects. Those are private names of dagger-io 0.21
(``Module._objects``, ``ObjectType.functions``, ``Function.parameters``); every
test goes through this helper so that an SDK change is mended here only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from dagger.mod.cli import get_entry_point

#: The Dagger front end's source files: the entry point ``main.py`` (the main object) and its siblings
#: ``dagger_*.py`` (the other objects, their shared arguments, what every function does around its door call).
MODULES = ("main.py", "dagger_args.py", "dagger_runtime.py", "dagger_environment.py", "dagger_component.py")


@dataclass(frozen=True)
class Param:
    name: str  # Python name; the CLI flag is --<kebab-case>
    type: str  # e.g. "str", "bool", "dagger.Secret | None"
    optional: bool
    default: Any  # decoded from the SDK's JSON default (None when there is none)
    doc: str | None
    default_path: str | None
    ignore: list[str] | None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Fn:
    name: str
    return_type: str
    doc: str | None
    params: dict[str, Param]

    @property
    def cli_name(self) -> str:
        return self.name.replace("_", "-")


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__ if tp.__module__ == "builtins" else f"{tp.__module__.split('.')[0]}.{tp.__name__}"
    return str(tp)


def load():
    """The module as the engine loads it (entry point), returning dagger-io's Module."""
    cls = get_entry_point().load()
    return cls, cls.__dagger_module__


def objects() -> dict[str, dict[str, Fn]]:
    """``{object name: {function name: Fn}}``; the constructor is listed under ``""``."""
    _, module = load()
    result: dict[str, dict[str, Fn]] = {}
    for name, obj in module._objects.items():
        obj.get_constructor(module._converter)
        fns: dict[str, Fn] = {}
        for fn_name, fn in obj.functions.items():
            params = {
                p.name: Param(
                    name=p.name,
                    type=_type_name(p.resolved_type),
                    optional=p.is_optional,
                    default=json.loads(p.default_value) if p.default_value is not None else None,
                    doc=p.doc,
                    default_path=p.default_path,
                    ignore=p.ignore,
                )
                for p in fn.parameters.values()
            }
            fns[fn_name] = Fn(fn_name, _type_name(fn.return_type), fn.doc, params)
        result[name] = fns
    return result


def cache_policy(obj: str, fn: str) -> str | None:
    """The function's cache policy as registered (``"never"`` for ``@function(cache="never")``)."""
    _, module = load()
    return module._objects[obj].functions[fn].cache_policy
