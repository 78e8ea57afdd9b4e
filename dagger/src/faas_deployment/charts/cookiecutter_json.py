"""The chart template's ``cookiecutter.json``: its variables and the keys that identify what is deployed.

A cookiecutter template declares its variables, in order, in ``cookiecutter.json``
(cookiecutter: a variable's default is a string, a number, a boolean, a choice
list or a dict; keys starting with ``_`` are private settings). The pipeline reads
two things from it: the variables a config may set (:func:`template_variables`) and
the identity keys every config must set itself (:func:`identity_keys`). The
template shipped in the package is :data:`EMBEDDED_TEMPLATE`; which template a
repository uses is :mod:`.repository_settings`' concern.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from ..core import repofiles
from ..core.errors import UserError
from .value_rules import shown

#: The chart template shipped inside the package (a cookiecutter template whose
#: project directory is ``{{cookiecutter.chart_name}}/``).
EMBEDDED_TEMPLATE: Path = Path(str(resources.files(__package__).joinpath("template")))


def template_variables(template: Path) -> dict[str, Any]:
    """The variables declared by ``<template>/cookiecutter.json``, in file order.

    Raises:
        UserError: the template directory or its ``cookiecutter.json`` is missing,
            is not valid JSON (line and column given), or is not a JSON object.
    """
    template = Path(template)
    if not template.is_dir():
        raise UserError(f"{template}: template directory not found (expected a cookiecutter template directory)")
    context_file = template / "cookiecutter.json"
    try:
        text = repofiles.read_text(template, "cookiecutter.json")
    except repofiles.NotReadable as err:
        if err.missing:
            raise UserError(f"{context_file}: not found; a cookiecutter template declares its variables in "
                            f"cookiecutter.json") from None
        raise UserError(f"{context_file}: {err.reason}") from None
    try:
        variables = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{context_file}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err
    except RecursionError:
        raise UserError(f"{context_file}: JSON nested too deeply") from None
    if not isinstance(variables, dict):
        raise UserError(f"{context_file}: expected a JSON object of variables, got {type(variables).__name__}")
    return variables


#: Keys the pipeline itself reads from every config (the name and version it
#: publishes, compares and points Flux at), accepted, required and checked whatever
#: the template declares. They are what the packaged chart's ``Chart.yaml`` says,
#: whatever the template writes there (:func:`faas_deployment.charts.chart.set_chart_identity`).
PIPELINE_KEYS = ("chart_name", "chart_version")

#: The keys that identify what is deployed, with what they identify. A config must
#: set each one itself: a template default never stands in for them.
IDENTITY_KEYS = {
    "chart_name": "the chart's name, under which it is published and deployed",
    "chart_version": "the chart version published and deployed",
    "image_repository": "the image the chart deploys",
    "image_tag": "the image the chart deploys",
}

#: The ``cookiecutter.json`` setting in which a template lists its own identity keys.
IDENTITY_SETTING = "_identity_keys"


def identity_keys(variables: dict[str, Any], where: str = "cookiecutter.json") -> tuple[str, ...]:
    """The keys every config of this template must set (see :data:`IDENTITY_KEYS`).

    A template lists them in ``cookiecutter.json`` as ``"_identity_keys": ["chart_name",
    ...]`` (a private variable: cookiecutter ignores it). Without that list, the keys of
    :data:`IDENTITY_KEYS` the template declares. :data:`PIPELINE_KEYS` are always
    included.

    Raises:
        UserError: ``_identity_keys`` is not a list of the template's variable names.
    """
    declared = variables.get(IDENTITY_SETTING)
    if declared is None:
        keys = [k for k in IDENTITY_KEYS if k in variables]
    elif not isinstance(declared, list) or not all(isinstance(k, str) for k in declared):
        raise UserError(f"{where}: {IDENTITY_SETTING}: expected a list of variable names, got {shown(declared)}")
    else:
        unknown = [k for k in declared if k.startswith("_") or (k not in variables and k not in PIPELINE_KEYS)]
        if unknown:
            raise UserError(f"{where}: {IDENTITY_SETTING}: {', '.join(unknown)} is not a public variable of the "
                            "template; list the variables that identify what is deployed")
        keys = list(declared)
    return tuple(dict.fromkeys([*keys, *PIPELINE_KEYS]))
