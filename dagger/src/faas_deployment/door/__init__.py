"""The door: the one core both front ends (``faas-deploy`` and the Dagger module) call.

A verb is a function of one module here, taking a :class:`Workspace` first and
returning a :class:`Result`:

- ``charts``: ``config``, ``chart``, ``rendered_objects``, ``package``, ``publish``, ``release``, ``local_repository``
- ``check``: ``check``
- ``bundle``: ``bundle``, ``upload_bundle``
- ``images``: ``build_image``, ``publish_image`` (and the engine's ``image_recipe``, ``image_build``)
- ``promotion``: ``bump``, ``promote``
- ``plan``: ``plan``, ``plan_against``, ``pipeline_against``
- ``deploy``: ``flux``, ``deploy``, ``wait``
- ``artifacts``: ``publish_artifact``, ``retire_artifact``, ``artifact_objects``

Beside them: ``workspace`` (the source tree, its template, settings and names),
``results`` (:class:`Result`), ``running`` (timeouts, temporary directories,
concurrency, interrupts) and ``defaults`` (what the front ends show in their help).

The front ends translate arguments into these calls and hold no rule, default or
message of their own. The modules here import the domain packages below them
(``core``, ``charts``, ``registry``, ``images``, ``bundle``, ``flux``, ``gitlab``),
never a front end; each verb imports what it needs when it runs, so that
``faas-deploy --help`` loads neither the Helm engine nor an HTTP client.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .results import Result, check_output, reveal
from .running import interrupted, run_tempdir
from .workspace import Registry, Workspace

__all__ = ["Registry", "Result", "Workspace", "check_output", "interrupted", "reveal", "run_tempdir"]

#: The verb modules and the defaults, imported on first use (``door.charts``): a front end that names
#: one loads only that one.
SUBMODULES = ("artifacts", "bundle", "charts", "check", "defaults", "deploy", "images", "plan", "promotion")


def __getattr__(name: str) -> ModuleType:
    if name in SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
