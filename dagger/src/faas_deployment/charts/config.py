"""Component configuration: validate a ``cookiecutter-config.yaml`` against its template and resolve its values.

Each deployable component has one file per environment,
``env/<env>/<component>/cookiecutter-config.yaml``. It is a cookiecutter *user
config*: a top-level ``default_context`` mapping holds the values of the chart
template's variables (``chart_name``, ``chart_version``, the image, the PVC and
the Vault secret settings, ...). Where the files are and which environments and
components exist is :mod:`faas_deployment.core.layout`'s concern; they are discovered from
the files present; nothing here names them.

Validation reports every problem of a file in one :class:`ValidationError`, each
naming the file (relative to the source directory) and the dotted key, e.g.
``env/dev/operator/cookiecutter-config.yaml: default_context.chart_version: ...``.
It follows the template's ``cookiecutter.json`` (the keys it declares, its choice
lists and dict variables: :mod:`.cookiecutter_json`) plus the typed rules of
:data:`.value_rules.RULES` for the keys both know, so a user template with its own
variables is validated by its own keys. Reading the file (YAML, duplicate keys,
numbers as written, the user config's shape) is :mod:`.config_file`'s concern.

The resolved values (the docs' word; cookiecutter's and :func:`load_context`'s: *context*:
the config's values as data, never rendered; the template's other defaults
rendered in a Jinja sandbox, see :mod:`faas_deployment.charts.defaults`) are what
:func:`faas_deployment.charts.chart.render_chart` passes to cookiecutter as ``extra_context``.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from ..core.errors import Problem, ValidationError
from ..core.layout import config_path
from . import defaults
from .config_file import plain, read_config
from .cookiecutter_json import EMBEDDED_TEMPLATE, IDENTITY_KEYS, PIPELINE_KEYS, identity_keys, template_variables
from .value_rules import GROUP_MEMBERS, GROUPS, RULES, Finding, as_written, check_template_type, filled

__all__ = ["EMBEDDED_TEMPLATE", "load_context", "template_variables", "validate_config"]


def _choice_default(default: Any) -> Any:
    return default[0] if isinstance(default, list) and default else default


def _check_values(shown: str, values: dict[Any, Any], variables: dict[str, Any],
                  required: tuple[str, ...] = ()) -> list[Problem]:
    """Problems of a ``default_context`` mapping against the template's variables.

    ``required``: the identity keys (:func:`identity_keys`) the mapping must set.
    """
    problems: list[Problem] = []
    public = [k for k in variables if not k.startswith("_")]
    accepted = [*public, *(k for k in PIPELINE_KEYS if k not in variables)]
    flagged: set[str] = set()

    def report(key: str, finding: Finding) -> None:
        flagged.add(key)
        problems.append(Problem(shown, f"default_context.{key}{finding.sub}", finding.message, finding.hint))

    for key, value in values.items():
        if not isinstance(key, str):
            report(str(key), Finding("", f"expected a variable name (a string), got {type(key).__name__}"))
            continue
        if key.startswith("_"):
            report(key, Finding("", "private template setting; it cannot be set from a config",
                                "remove it from default_context"))
            continue
        if key not in accepted:
            close = difflib.get_close_matches(key, accepted, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else f"the template declares: {', '.join(public)}"
            report(key, Finding("", "unknown key", hint))
            continue
        if key in GROUP_MEMBERS and not filled(value):
            continue  # left empty: only required when its flag is "yes" (checked below)
        findings = list(RULES[key](value)) if key in RULES else []
        if key in variables:
            findings = findings or list(check_template_type(value, variables[key]))
            if isinstance(variables[key], dict):  # nested values become strings: they must read as written
                findings += list(as_written(value))
        for finding in findings:
            report(key, finding)
    for key in required:
        if key not in values:
            what = IDENTITY_KEYS.get(key, "an identity key of the template")
            report(key, Finding("", f"missing; it identifies what is deployed ({what}), so the template's "
                                    "default is not used", f"set {key} in this file"))

    resolved = {k: values.get(k, _choice_default(variables[k])) for k in public}
    for flag, members in GROUPS.items():
        if flag not in variables or flag in flagged or resolved[flag] != "yes":
            continue
        for key, is_set in members.items():
            if key not in variables or key in flagged:
                continue
            value = resolved[key]
            if not is_set(value):
                what = "a non-empty \"data\" list of secrets" if key == "external_admin_secret_data" else "a value"
                report(key, Finding("", f"required when {flag} is \"yes\": expected {what}",
                                    f"set it, or set {flag}: \"no\""))
            elif key not in values and key in RULES:
                for finding in RULES[key](value):  # a template default in force
                    report(key, finding)
    return problems


def _resolve(shown: str, template: Path, variables: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """The config's values as data, the template's other defaults rendered in a sandbox (``defaults``)."""
    try:
        resolved = defaults.resolve(variables, values)
    except defaults.DefaultError as err:
        raise ValidationError([Problem(shown, "default_context",
                                       f"cannot be resolved with template {template}: {err}")]) from err
    resolved.update({k: values[k] for k in PIPELINE_KEYS if k in values and k not in variables})
    return resolved


def validate_config(path: Path, template: Path | None = None, *, shown: str | None = None) -> dict[str, Any]:
    """Validate one config file against ``template`` and return its resolved values.

    Args:
        path: a ``cookiecutter-config.yaml``.
        template: a cookiecutter template directory; ``None`` = :data:`EMBEDDED_TEMPLATE`.
        shown: how the file is named in problems (default: ``path`` as given).

    Returns:
        Every public variable of the template (keys not starting with ``_``), in
        ``cookiecutter.json`` order: the config's value or the template default,
        choice lists resolved to the chosen item, Jinja in the template's defaults
        rendered in a sandbox; config values are data and never rendered. Numbers
        stay numbers; nested values of dict variables are strings, as cookiecutter
        renders them. Ready to pass to cookiecutter as ``extra_context``.

    Raises:
        UserError: the template or its ``cookiecutter.json`` is missing or invalid.
        ValidationError: every problem of the file at once (YAML syntax with line
            and column, structure, unknown keys with the closest known one, typed
            rules of :data:`RULES`, keys required by the flags of :data:`GROUPS`).
    """
    template = Path(template) if template is not None else EMBEDDED_TEMPLATE
    shown = shown or str(path)
    variables = template_variables(template)
    required = identity_keys(variables, str(template / "cookiecutter.json"))
    values, problems = read_config(Path(path), shown)
    if values is not None:
        problems += _check_values(shown, values, variables, required)
    if problems:
        raise ValidationError(problems)
    assert values is not None
    return _resolve(shown, template, variables, plain(values))


def load_context(source: Path, env: str, component: str, template: Path | None = None) -> dict[str, Any]:
    """Load, validate and resolve ``env/<env>/<component>/cookiecutter-config.yaml``.

    Problems name the file relative to ``source``. See :func:`validate_config`
    for the returned shape and the errors raised; an unknown env or component
    raises :class:`UserError` listing the known ones.
    """
    path = config_path(source, env, component)
    return validate_config(path, template, shown=path.relative_to(source).as_posix())
